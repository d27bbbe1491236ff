"""Broken checkpoints give one clear MinbertError naming the path, never a deep traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from minbert import Encoder, MinbertError
from minbert.model.checkpoint import hf_to_minbert_name, minbert_to_hf_name


@pytest.fixture()
def copied_checkpoint(tmp_path, checkpoint_dir):
    target = tmp_path / "ckpt"
    target.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        shutil.copy(checkpoint_dir / name, target / name)
    return target


def test_missing_directory(tmp_path):
    with pytest.raises(MinbertError, match=r"nope.*does not exist"):
        Encoder.from_pretrained(tmp_path / "nope")


def test_directory_without_weights(tmp_path, checkpoint_dir):
    shutil.copy(checkpoint_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(MinbertError, match=r"no weights found.*model\.safetensors"):
        Encoder.from_pretrained(tmp_path)


def test_directory_without_config(tmp_path):
    with pytest.raises(MinbertError, match=r"config\.json: missing"):
        Encoder.from_pretrained(tmp_path)


def test_config_of_another_architecture(copied_checkpoint):
    config = json.loads((copied_checkpoint / "config.json").read_text())
    config["model_type"] = "gpt2"
    (copied_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(MinbertError, match=r"config\.json: model_type is 'gpt2', not 'bert'"):
        Encoder.from_pretrained(copied_checkpoint)


def test_truncated_safetensors(copied_checkpoint):
    weights = copied_checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1_000_000])
    with pytest.raises(MinbertError, match=r"model\.safetensors: cannot read the weights.*truncated or corrupted"):
        Encoder.from_pretrained(copied_checkpoint)


def test_corrupted_safetensors(copied_checkpoint):
    (copied_checkpoint / "model.safetensors").write_bytes(b"\x07garbage" * 100)
    with pytest.raises(MinbertError, match=r"model\.safetensors: cannot read the weights"):
        Encoder.from_pretrained(copied_checkpoint)


def test_weights_that_do_not_fit_the_config(copied_checkpoint):
    config = json.loads((copied_checkpoint / "config.json").read_text())
    config["hidden_size"], config["intermediate_size"] = 768, 3072
    (copied_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(MinbertError, match=r"has shape .* do not belong together"):
        Encoder.from_pretrained(copied_checkpoint)


def test_invalid_json_config(copied_checkpoint):
    (copied_checkpoint / "config.json").write_text("{ not json")
    with pytest.raises(MinbertError, match=r"config\.json: line 1: not valid JSON"):
        Encoder.from_pretrained(copied_checkpoint)


@pytest.mark.parametrize(
    "hf",
    [
        "embeddings.word_embeddings.weight",
        "encoder.layer.11.attention.self.query.bias",
        "encoder.layer.0.attention.output.LayerNorm.weight",
        "encoder.layer.3.output.dense.weight",
        "pooler.dense.bias",
    ],
)
def test_name_mapping_round_trips(hf):
    assert minbert_to_hf_name(hf_to_minbert_name(hf)) == hf


def test_legacy_gamma_beta_names():
    assert hf_to_minbert_name("embeddings.LayerNorm.gamma") == "embeddings.norm.weight"
    assert hf_to_minbert_name("encoder.layer.2.output.LayerNorm.beta") == "layers.2.feed_forward_norm.bias"
