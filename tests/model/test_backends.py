"""ONNX export: same logits as PyTorch, int8 close, the CLI paths, and clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from minbert.cli import main
from minbert.errors import MinbertError
from minbert.model.backends import OnnxModel, export_onnx, load_backend
from minbert.model.layout import description_content, read_description, write_description
from minbert.model.task_model import Model
from tests.helpers import classifier

pytestmark = pytest.mark.slow

TEXTS = [
    "wake me up at seven tomorrow",
    "what's the weather in paris",
    "play some jazz",
    "hi",
    "turn off the lights in the kitchen please",
]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    torch.manual_seed(0)
    model = classifier(["alarm_set", "weather_query", "play_music", "iot_hue_lightoff"], max_length=32)
    directory = tmp_path_factory.mktemp("onnx") / "model"
    model.save(directory)
    return directory


def test_export_matches_pytorch_and_int8_stays_close(saved_model, capsys):
    files = export_onnx(saved_model, int8=True)
    assert files["onnx"].is_file() and files["onnx-int8"].stat().st_size < files["onnx"].stat().st_size / 3
    reference = Model.load(saved_model).raw_outputs("main", TEXTS)
    fp32 = OnnxModel(saved_model, "onnx").raw_outputs("main", TEXTS)
    int8 = OnnxModel(saved_model, "onnx-int8").raw_outputs("main", TEXTS)
    assert (fp32 - reference).abs().max().item() < 1e-4
    probabilities = [torch.softmax(x, -1) for x in (reference, int8)]
    assert (probabilities[0] - probabilities[1]).abs().max().item() < 0.05
    predictions = OnnxModel(saved_model, "onnx").predict(TEXTS)
    assert [p.label for p in predictions] == [Model.load(saved_model).labels[i] for i in reference.argmax(-1).tolist()]
    # attention is one fused node per layer in both files
    layers = Model.load(saved_model).encoder.config.num_hidden_layers
    for file in files.values():
        ops = [node.op_type for node in onnx.load(str(file)).graph.node]
        assert ops.count("MultiHeadAttention") == layers
        assert "Softmax" not in ops and "Transpose" not in ops  # nothing of the decomposed attention is left


def test_an_int8_export_of_an_older_minbert_is_refused(saved_model, tmp_path):
    """Its 8-bit activations overflow on CPUs without VNNI: re-exporting is the fix, running it is not."""
    directory = tmp_path / "model"
    shutil.copytree(saved_model, directory)
    files = export_onnx(directory, int8=True)
    assert OnnxModel(directory, "onnx-int8").predict(TEXTS[:1])
    older = onnx.load(str(files["onnx-int8"]))
    del older.metadata_props[:]
    onnx.save(older, str(files["onnx-int8"]))
    write_description(directory, description_content(read_description(directory)))  # its manifest matched it
    with pytest.raises(MinbertError, match=r"older minbert.*minbert export .* --int8"):
        OnnxModel(directory, "onnx-int8")


def test_predict_cli_with_onnx_backend(saved_model, capsys):
    export_onnx(saved_model)
    capsys.readouterr()
    assert main(["-q", "predict", str(saved_model), "--backend", "onnx", "--top-k", "4", *TEXTS[:2]]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(np.isclose(sum(p for _, p in line["top"][:4]), 1.0, atol=1e-4) for line in lines)


def test_backend_not_exported_yet(tmp_path, saved_model, capsys):
    fresh = tmp_path / "fresh"
    Model.load(saved_model).save(fresh)
    assert main(["-q", "predict", str(fresh), "--backend", "onnx-int8", "hello"]) == 2
    err = capsys.readouterr().err
    assert "model.int8.onnx: not exported yet; run `minbert export" in err and "--int8` first" in err


def test_torch_compiled_backend_predicts_and_embeds_like_eager(saved_model, tmp_path, capsys):
    eager = Model.load(saved_model)
    compiled = load_backend(saved_model, "torch-compiled")
    short, long = TEXTS[2:4], TEXTS  # two batch shapes: compiled with dynamic shapes, no recompile error
    for texts in (short, long):
        assert (compiled.raw_outputs("main", texts) - eager.raw_outputs("main", texts)).abs().max().item() < 1e-4
    capsys.readouterr()
    assert main(["-q", "predict", str(saved_model), "--backend", "torch-compiled", *TEXTS[:2]]) == 0
    labels = [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()]
    assert labels == [p.label for p in eager.predict(TEXTS[:2])]
    out = tmp_path / "emb.npy"
    assert main(["-q", "embed", str(saved_model), *TEXTS, "--backend", "torch-compiled", "--out", str(out)]) == 0
    assert np.allclose(np.load(out), eager.encode(TEXTS), atol=1e-5)


def test_cli_backend_names_match_the_backends_module():
    from minbert import cli
    from minbert.model import backends

    assert cli.TORCH_BACKENDS == backends.TORCH_BACKENDS
    assert cli.BACKENDS == (*backends.TORCH_BACKENDS, *backends.FILES)


def test_per_row_int8_by_hand_on_one_matmul(tmp_path):
    """y_r = s_r * ((q_r - 64) @ W_q) * w, s_r = max|x_r| / 63, W_q per output column: computed here in numpy.

    Exact to float rounding on every CPU: with 8-bit activations the u8 x s8 kernel of a CPU without VNNI
    saturates its 16-bit pair sums and this comparison fails there (AVX2: errors of ~1 in 20)."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    from minbert.model.quantize import quantize_per_row

    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 5)).astype(np.float32)
    bias = rng.normal(size=5).astype(np.float32) * 10  # a linear layer's bias: added unscaled
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"), helper.make_node("Add", ["m", "b"], ["y"])],
        "one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "t", 5])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), tmp_path / "fp32.onnx")
    assert quantize_per_row(tmp_path / "fp32.onnx", tmp_path / "int8.onnx") == 1
    x = (rng.normal(size=(2, 3, 8)) * np.array([[[1.0]], [[50.0]]])).astype(np.float32)  # very different rows
    session = onnxruntime.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x})[0]
    rows = x.reshape(-1, 8)
    s = np.abs(rows).max(1, keepdims=True) / 63
    q = np.round(rows / s)
    w_scale = np.abs(w).max(0) / 127
    expected = (s * (q @ np.round(w / w_scale)) * w_scale).reshape(2, 3, 5) + bias
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert np.allclose(got, x @ w + bias, rtol=0.05, atol=0.05 * np.abs(x @ w).max())  # and close to fp32
    alone = session.run(None, {"x": x[:1]})[0]  # the first text without the 50x larger second one
    assert np.array_equal(alone, got[:1])


def test_int8_answers_do_not_depend_on_the_batch(saved_model):
    export_onnx(saved_model, int8=True)
    model = OnnxModel(saved_model, "onnx-int8")
    texts = [*TEXTS, "set an alarm", "what is the time in tokyo right now and tomorrow morning", "lights"] * 3
    together = model.raw_outputs("main", texts, batch_size=64)
    one_by_one = torch.cat([model.raw_outputs("main", [t], batch_size=1) for t in texts])
    in_threes = model.raw_outputs("main", texts, batch_size=3)
    assert torch.allclose(together, one_by_one, atol=1e-5) and torch.allclose(together, in_threes, atol=1e-5)
    assert [p.label for p in model.predict(texts, batch_size=64)] == [
        p.label for p in model.predict(texts, batch_size=1)
    ]
