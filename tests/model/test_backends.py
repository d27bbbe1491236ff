"""ONNX export: same logits as PyTorch, int8 close, the CLI paths, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from minbert.cli import main
from minbert.model.backends import OnnxModel, export_onnx, load_backend
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
