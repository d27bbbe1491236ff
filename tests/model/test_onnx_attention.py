"""The export's attention op computes the encoder's attention (its eager body is what the traced program runs)."""

from __future__ import annotations

import torch

from minbert.model.encoder import EncoderConfig, SelfAttention
from minbert.model.onnx_attention import attention


def test_the_export_op_equals_the_encoders_attention():
    torch.manual_seed(0)
    config = EncoderConfig(hidden_size=16, num_attention_heads=4, intermediate_size=32, num_hidden_layers=1)
    layer = SelfAttention(config).eval()
    x = torch.randn(2, 5, 16)
    keep = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    bias = torch.randn(2, 4, 5, 5).masked_fill(keep[:, None, None, :] == 0, float("-inf"))
    for mask, op_keep, op_bias in [(keep.bool()[:, None, None, :], keep.int(), None), (bias, None, bias)]:
        with torch.no_grad():
            expected = layer(x, mask)
            got = layer.dropout(layer.out(attention(layer.query(x), layer.key(x), layer.value(x), op_keep, op_bias, 4)))
        assert torch.allclose(got[keep.bool()], expected[keep.bool()], atol=1e-6)
