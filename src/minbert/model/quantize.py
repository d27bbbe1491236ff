"""int8 for the ONNX export with one activation scale per row: a text's answer never depends on its batch.

ONNX Runtime's dynamic quantisation computes one activation scale per tensor at run time, the largest |x|
of the whole batch (padding included), so the same text could get another label in another batch: 2-3 %
of MASSIVE labels changed between the server's micro-batches and offline batches. Here every MatMul with a
constant weight matrix W (K x N) becomes

    s_r = max|x_r| / 63                one scale per row r of the activations (a token's vector)
    q_r = round(x_r / s_r) + 64        uint8 in [1, 127], zero point 64
    y_r = s_r * ((q_r - 64) @ W_q) * w    int32 products; W_q = round(W / w), w = max|W| / 127 per output column

so each row's result depends on that row alone. The product and both scales run in one ONNX Runtime
kernel (`com.microsoft.MatMulIntegerToFloat`, which takes a per-row scale for A), so the file is for
minbert's ONNX Runtime backend; the layer's bias stays a separate Add, because with a per-row scale that
kernel scales its bias input too.

Why 7-bit activations: on CPUs without VNNI (AVX2, AVX-512 without VNNI) the u8 x s8 kernel adds two
products in 16 bits with saturation (`vpmaddubsw`), so 255 x 127 x 2 overflows and the result is wrong
there and right on VNNI. With activations in [1, 127], 127 x 127 x 2 = 32,258 fits, and the same file gives
exact int32 products on every CPU and keeps the fast u8 x s8 kernel (PyTorch's x86 dynamic quantisation
narrows its activations for the same reason). Measured on an AVX2 CPU, a MASSIVE MiniLM model: test
accuracy 88.30 as in fp32, 24 of 2,974 labels differ from fp32 (the overflowing 8-bit activations: 88.40,
20); on two SST-5 models, whose five classes tie often, 102 and 95 of 2,210 (8-bit: 90 and 88; an exact
non-VNNI u8 x u8 product: 81 and 86). Embedding tables (a Gather on a constant matrix) are stored as int8, one
scale per row (token), dequantised right after the lookup. Nodes named in `exclude` (an out-of-scope
score's statistics) stay fp32.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ACTIVATION_RANGE = 63  # |q_r - ZERO_POINT| <= 63: two u8 x s8 products fit in int16 (see the module docstring)
ZERO_POINT = 64
# Written into the file's metadata: an int8 file of an older minbert (8-bit activations, wrong without VNNI)
# lacks it, and the ONNX Runtime backend refuses such a file instead of running it.
FORMAT_KEY, FORMAT = "minbert_int8", "per-row, 7-bit activations"


def symmetric_int8(values: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """`values` as int8 in [-127, 127] with one scale per slice along `axis` (max |value| / 127; keepdims), so
    that values ~= int8 * scale: the format of both the embedding tables (per row) and the weights (per column)."""
    scale = np.maximum(np.abs(values).max(axis=axis, keepdims=True), 1e-12) / 127.0
    return np.clip(np.round(values / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


def quantize_per_row(source: str | Path, target: str | Path, exclude: Collection[str] = ()) -> int:
    """Write `source`'s graph with per-row int8 MatMuls and embedding tables to `target`; returns how many nodes
    it quantised."""
    model = onnx.load(str(source))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    added: list[onnx.TensorProto] = []
    quantised: dict[str, tuple[str, str]] = {}  # weight name -> (int8 weight, column scales), shared by its users
    inputs: dict[str, tuple[str, str, str]] = {}  # activation -> (uint8 rows, their scales, leading dims), shared

    def constant(name: str, value: np.ndarray) -> str:
        added.append(numpy_helper.from_array(value, name))
        return name

    shared = {
        "zero_point": constant("rowq_zero_point", np.array(ZERO_POINT, np.uint8)),
        "weight_zero_point": constant("rowq_weight_zero_point", np.array(0, np.int8)),
        "inverse_range": constant("rowq_inverse_range", np.array(1 / ACTIVATION_RANGE, np.float32)),
        "tiny": constant("rowq_tiny", np.array(1e-12, np.float32)),
        "rows_axis": constant("rowq_rows_axis", np.array([1], np.int64)),
        "flat": constant("rowq_flat", np.array([-1], np.int64)),
        "first": constant("rowq_first", np.array([0], np.int64)),
        "last": constant("rowq_last", np.array([-1], np.int64)),
    }

    def add(op: str, inputs: list[str], output: str, domain: str = "", **attributes: int) -> None:
        made = helper.make_node(op, inputs, [output], name=output, domain=domain)
        made.attribute.extend(helper.make_attribute(key, value) for key, value in attributes.items())
        nodes.append(made)

    count = 0
    for node in graph.node:
        table = weights.get(node.input[0]) if node.op_type == "Gather" else None
        if (
            table is not None
            and len(table.dims) == 2
            and not any(a.name == "axis" and a.i != 0 for a in node.attribute)
        ):
            count += 1
            p = f"rowq{count}_"
            table_int8, row_scales = symmetric_int8(numpy_helper.to_array(table).astype(np.float32), axis=1)
            add("Gather", [constant(p + "table", table_int8), node.input[1]], p + "q", axis=0)
            add("Gather", [constant(p + "scales", row_scales), node.input[1]], p + "row_scale", axis=0)
            add("Cast", [p + "q"], p + "float", to=TensorProto.FLOAT)
            add("Mul", [p + "float", p + "row_scale"], node.output[0])
            continue
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or node.name in exclude or len(weight.dims) != 2:
            nodes.append(node)
            continue
        count += 1
        k, n = weight.dims
        if weight.name not in quantised:
            weight_int8, column_scales = symmetric_int8(numpy_helper.to_array(weight).astype(np.float32), axis=0)
            quantised[weight.name] = (
                constant(f"{weight.name}_int8", weight_int8),
                constant(f"{weight.name}_scale", column_scales),
            )
        w_int8, w_scale = quantised[weight.name]
        p = f"rowq{count}_"
        width = constant(p + "width", np.array([n], np.int64))

        x, y = node.input[0], node.output[0]
        if x not in inputs:  # quantised once for all its readers (a layer's Q, K and V projections share one)
            q = f"rowq_in{len(inputs) + 1}_"
            add("Reshape", [x, constant(q + "shape_2d", np.array([-1, k], np.int64))], q + "x")
            add("Abs", [q + "x"], q + "abs")
            add("ReduceMax", [q + "abs", shared["rows_axis"]], q + "max", keepdims=1)
            add("Mul", [q + "max", shared["inverse_range"]], q + "scale_raw")
            add("Max", [q + "scale_raw", shared["tiny"]], q + "scale")  # an all-zero row: any scale, q = 64
            add("Reshape", [q + "scale", shared["flat"]], q + "row_scales")
            add("Shape", [q + "row_scales"], q + "rows")
            add("Expand", [shared["zero_point"], q + "rows"], q + "row_zero_points")
            add("QuantizeLinear", [q + "x", q + "row_scales", q + "row_zero_points"], q + "q", axis=0)
            add("Shape", [x], q + "x_shape")
            add("Slice", [q + "x_shape", shared["first"], shared["last"]], q + "leading")
            inputs[x] = (q + "q", q + "scale", q + "leading")
        x_int8, x_scale, leading = inputs[x]
        products = [x_int8, w_int8, x_scale, w_scale, shared["zero_point"], shared["weight_zero_point"]]
        add("MatMulIntegerToFloat", products, p + "y", domain="com.microsoft")
        add("Concat", [leading, width], p + "y_shape", axis=0)
        add("Reshape", [p + "y", p + "y_shape"], y)
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in [*graph.initializer, *added] if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, FORMAT_KEY: FORMAT})
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return count
