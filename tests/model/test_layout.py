"""The saved model directory: every format so far loads with identical predictions, a damaged or mixed
directory is refused, and a save that fails part-way leaves the previous model intact."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_file

import minbert
from minbert import MinbertError
from minbert.model.heads import HeadSpec
from minbert.model.layout import UNVERIFIED_FLAG, description_digest
from minbert.model.task_model import Model
from minbert.model.tokenizer import Tokenizer
from tests.helpers import classifier

TEXTS = ["wake me up at seven", "what's the weather like", "play some jazz please"]
PAIRS = [("A man plays a guitar.", "A man is playing guitar."), ("A cat sleeps.", "Markets fell today.")]


def write_encoder(model: Model, directory) -> None:
    model.encoder.save_pretrained(directory / "encoder")
    model.tokenizer.save_pretrained(directory / "encoder")


def test_format_1_classifier_written_by_hand_loads_with_identical_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv(UNVERIFIED_FLAG, "1")  # format 1 had no manifest: loaded only when the user says so
    torch.manual_seed(3)
    model = classifier(["alarm_set", "weather_query", "play_music"], hidden_size=32, max_length=32).eval()
    old = tmp_path / "old"
    write_encoder(model, old)
    save_file(
        {k: v.contiguous() for k, v in model.heads["main"].mlp.state_dict().items()}, str(old / "head.safetensors")
    )
    (old / "minbert.json").write_text(
        json.dumps(
            {
                "labels": model.labels,
                "pooling": "cls",
                "hidden_size": 32,
                "activation": "relu",
                "dropout": 0.1,
                "max_length": 32,
                "task": "classification",
                "base_checkpoint": "all-MiniLM-L6-v2",
                "format_version": 1,
            }
        )
    )
    loaded = minbert.load(old)
    assert loaded.tasks == ["main"] and loaded.labels == model.labels
    assert [p.probabilities for p in loaded.predict(TEXTS)] == [p.probabilities for p in model.predict(TEXTS)]


def test_format_1_multitask_written_by_hand_loads_with_identical_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv(UNVERIFIED_FLAG, "1")
    torch.manual_seed(4)
    specs = [
        HeadSpec("sst", labels=["0", "1", "2"], hidden_size=16),
        HeadSpec("sts", kind="regression", input="bi", features="cosine", loss="cosent", target_range=[0.0, 5.0]),
    ]
    model = Model.from_checkpoint(None, specs, pooling="mean", projection_size=24, normalize=True, max_length=32).eval()
    old = tmp_path / "old"
    write_encoder(model, old)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("encoder.")},
        str(old / "heads.safetensors"),
    )
    heads = [
        {k: v for k, v in asdict(s).items() if k != "activation"} for s in specs
    ]  # format 1 heads had no activation
    (old / "minbert.json").write_text(
        json.dumps(
            {
                "heads": heads,
                "pooling": "mean",
                "projection_size": 24,
                "normalize": True,
                "max_length": 32,
                "task": "multitask",
                "base_checkpoint": "all-MiniLM-L6-v2",
                "format_version": 1,
            }
        )
    )
    loaded = minbert.load(old)
    assert loaded.tasks == ["sst", "sts"]
    assert loaded.predict(PAIRS, task="sts") == model.predict(PAIRS, task="sts")
    assert [p.probabilities for p in loaded.predict(TEXTS, task="sst")] == [
        p.probabilities for p in model.predict(TEXTS, task="sst")
    ]


def test_saved_directory_carries_a_manifest_and_a_changed_file_is_refused(tmp_path):
    model = classifier(["a", "b"], hidden_size=0, max_length=16)
    directory = model.save(tmp_path / "model")
    files = json.loads((directory / "minbert.json").read_text())["files"]
    assert {"heads.safetensors", "encoder/model.safetensors", "encoder/tokenizer.json", "encoder/config.json"} <= set(
        files
    )
    assert all(len(entry["sha256"]) == 64 and entry["bytes"] > 0 for entry in files.values())
    vocab = directory / "encoder" / "vocab.txt"
    vocab.write_text("")  # the 0-byte vocab.txt of a save killed half-way
    with pytest.raises(MinbertError, match=r"vocab.txt: does not match the manifest .*save or train it again"):
        minbert.load(directory)
    vocab.unlink()
    with pytest.raises(MinbertError, match=r"vocab.txt: missing; the model directory is incomplete"):
        minbert.load(directory)


def test_a_save_that_fails_part_way_leaves_the_previous_model(tmp_path, monkeypatch):
    directory = tmp_path / "model"
    torch.manual_seed(1)
    first = classifier(["a", "b"], hidden_size=0, max_length=16)
    first.save(directory)
    before = minbert.load(directory).predict(TEXTS)
    second = classifier(["a", "b"], hidden_size=0, max_length=16)
    with torch.no_grad():
        second.heads["main"].mlp.layers[-1].weight.add_(1.0)

    def broken(self, target) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Tokenizer, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        second.save(directory)
    assert [p.probabilities for p in minbert.load(directory).predict(TEXTS)] == [p.probabilities for p in before]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial directory left beside it


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: "{not json", "minbert.json: not valid JSON"),
        (lambda raw: {**raw, "format_version": "2"}, "format_version '2' is not a whole number"),
        (lambda raw: {**raw, "format_version": 99}, "saved by a newer minbert"),
        (lambda raw: {**raw, "max_length": 4096}, "max_length 4096 is longer than the encoder's 512 positions"),
        (lambda raw: [raw], "holds a list, not the model's description"),
    ],
)
def test_a_broken_description_is_a_one_line_error(tmp_path, change, message):
    directory = classifier(["a", "b"], hidden_size=0, max_length=16).save(tmp_path / "model")
    raw = json.loads((directory / "minbert.json").read_text())
    changed = change(raw)
    if isinstance(changed, dict):  # edited with the digest kept in step: the checks behind it must still hold
        changed["description_sha256"] = description_digest(changed)
    (directory / "minbert.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(MinbertError, match=message):
        minbert.load(directory)


def test_an_edited_description_or_a_removed_manifest_is_refused(tmp_path, monkeypatch):
    directory = classifier(["alarm", "music"], hidden_size=0, max_length=16).save(tmp_path / "model")
    raw = json.loads((directory / "minbert.json").read_text())
    renamed = {**raw, "heads": [{**raw["heads"][0], "labels": ["music", "alarm"]}]}  # two labels swapped
    (directory / "minbert.json").write_text(json.dumps(renamed))
    with pytest.raises(MinbertError, match="does not match the digest it was saved with"):
        minbert.load(directory)
    unmanifested = {k: v for k, v in raw.items() if k not in ("files", "description_sha256")}
    (directory / "minbert.json").write_text(json.dumps(unmanifested))
    with pytest.raises(MinbertError, match=f"no files manifest.*set {UNVERIFIED_FLAG}=1 to load it unverified"):
        minbert.load(directory)
    monkeypatch.setenv(UNVERIFIED_FLAG, "1")
    assert minbert.load(directory).labels == ["alarm", "music"]
