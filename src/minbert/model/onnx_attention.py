"""Attention in the ONNX export as ONNX Runtime's fused `com.microsoft.MultiHeadAttention` kernel.

The exporter decomposes scaled_dot_product_attention into a dozen small ops: the heads split and merged
by Transposes, the keys transposed once more through 3-d Reshapes, scale, mask, softmax and a NaN guard.
On MiniLM over MASSIVE dev those Transposes alone were 10-15 % of an ONNX Runtime profile. The fused
kernel takes the projected (batch, length, hidden) queries, keys and values as they are, with the padding
as a (batch, length) int32 mask or an additive (batch or 1, heads, length, length) bias (MPNet's relative
positions), and gives back (batch, length, hidden); one node per layer instead of ~20.

While exporting, `SelfAttention` calls `attention` (a PyTorch custom op whose eager body is the same
attention, so the traced program stays runnable), and `translations()` tells the exporter how to write it.
The file then runs on ONNX Runtime only (as the int8 file already did).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


@torch.library.custom_op("minbert::attention", mutates_args=())
def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    keep: torch.Tensor | None,
    bias: torch.Tensor | None,
    num_heads: int,
) -> torch.Tensor:
    """(batch, length, hidden) queries, keys, values -> attended values; `keep`: (batch, length) 1 for real tokens,
    `bias`: added to the scores."""
    batch, length, hidden = q.shape

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, -1, num_heads, hidden // num_heads).transpose(1, 2)

    mask = bias
    if keep is not None:
        keep_bias = torch.zeros(keep.shape, dtype=q.dtype).masked_fill(keep == 0, float("-inf"))[:, None, None, :]
        mask = keep_bias if mask is None else mask + keep_bias
    context = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask)
    return context.transpose(1, 2).reshape(batch, length, hidden)


@attention.register_fake
def _(q: torch.Tensor, *inputs: object) -> torch.Tensor:
    """For tracing: the result has the queries' shape and dtype, whatever the other inputs."""
    return torch.empty_like(q)


def translations() -> dict[Any, Any]:
    """The exporter's `custom_translation_table` entry: `attention` -> one MultiHeadAttention node."""
    import onnxscript
    from onnx.defs import OpSchema

    optional = OpSchema.FormalParameterOption.Optional
    schema = OpSchema(  # the part of ONNX Runtime's contrib schema we use (onnx itself does not ship it)
        "MultiHeadAttention",
        "com.microsoft",
        1,
        inputs=[
            OpSchema.FormalParameter("query", "T"),
            OpSchema.FormalParameter("key", "T", param_option=optional),
            OpSchema.FormalParameter("value", "T", param_option=optional),
            OpSchema.FormalParameter("bias", "T", param_option=optional),
            OpSchema.FormalParameter("key_padding_mask", "M", param_option=optional),
            OpSchema.FormalParameter("attention_bias", "T", param_option=optional),
        ],
        outputs=[OpSchema.FormalParameter("output", "T")],
        type_constraints=[("T", ["tensor(float)"], "activations"), ("M", ["tensor(int32)"], "1: a real token")],
        attributes=[OpSchema.Attribute("num_heads", OpSchema.AttrType.INT, "attention heads")],
    )
    multi_head_attention = onnxscript.values.Op(onnxscript.values.Opset("com.microsoft", 1), schema.name, schema)

    def write(q: Any, k: Any, v: Any, keep: Any, bias: Any, num_heads: int) -> Any:
        return multi_head_attention(q, k, v, None, keep, bias, num_heads=num_heads)

    return {torch.ops.minbert.attention.default: write}
