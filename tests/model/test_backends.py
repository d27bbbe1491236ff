"""ONNX export: same logits as PyTorch, int8 close, the CLI paths, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from minbert.cli import main
from minbert.model.backends import OnnxClassifier, export_onnx, load_classifier
from minbert.model.task_model import SequenceClassifier

pytestmark = pytest.mark.slow

TEXTS = ["wake me up at seven tomorrow", "what's the weather in paris", "play some jazz", "hi", "turn off the lights in the kitchen please"]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    torch.manual_seed(0)
    model = SequenceClassifier.from_checkpoint(None, ["alarm_set", "weather_query", "play_music", "iot_hue_lightoff"], max_length=32)
    directory = tmp_path_factory.mktemp("onnx") / "model"
    model.save(directory)
    return directory


def test_export_matches_pytorch_and_int8_stays_close(saved_model, capsys):
    files = export_onnx(saved_model, int8=True)
    assert files["onnx"].is_file() and files["onnx-int8"].stat().st_size < files["onnx"].stat().st_size / 3
    reference = SequenceClassifier.load(saved_model).logits(TEXTS)
    fp32 = OnnxClassifier(saved_model, "onnx").logits(TEXTS)
    int8 = OnnxClassifier(saved_model, "onnx-int8").logits(TEXTS)
    assert (fp32 - reference).abs().max().item() < 1e-4
    probabilities = [torch.softmax(x, -1) for x in (reference, int8)]
    assert (probabilities[0] - probabilities[1]).abs().max().item() < 0.05
    predictions = OnnxClassifier(saved_model, "onnx").predict(TEXTS)
    assert [p.label for p in predictions] == [SequenceClassifier.load(saved_model).labels[i] for i in reference.argmax(-1).tolist()]


def test_predict_cli_with_onnx_backend(saved_model, capsys):
    export_onnx(saved_model)
    capsys.readouterr()
    assert main(["-q", "predict", str(saved_model), "--backend", "onnx", "--top-k", "4", *TEXTS[:2]]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(np.isclose(sum(p for _, p in line["top"][:4]), 1.0, atol=1e-4) for line in lines)


def test_backend_not_exported_yet(tmp_path, saved_model, capsys):
    fresh = tmp_path / "fresh"
    SequenceClassifier.load(saved_model).save(fresh)
    assert main(["-q", "predict", str(fresh), "--backend", "onnx-int8", "hello"]) == 2
    err = capsys.readouterr().err
    assert "model.int8.onnx: not exported yet; run `minbert export" in err and "--int8` first" in err


def test_torch_compiled_backend_predicts_and_embeds_like_eager(saved_model, tmp_path, capsys):
    eager = SequenceClassifier.load(saved_model)
    compiled = load_classifier(saved_model, "torch-compiled")
    short, long = TEXTS[2:4], TEXTS  # two batch shapes: compiled with dynamic shapes, no recompile error
    for texts in (short, long):
        assert (compiled.logits(texts) - eager.logits(texts)).abs().max().item() < 1e-4
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
