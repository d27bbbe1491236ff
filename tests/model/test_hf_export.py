"""`minbert export --to transformers`: transformers loads the directory and answers as minbert does."""

from __future__ import annotations

import pytest
import torch

import minbert
from minbert import MinbertError
from minbert.cli import main
from minbert.model.encoder import Encoder
from minbert.model.heads import HeadSpec
from minbert.model.hf_export import HF_HEADS, export_transformers
from minbert.model.task_model import Model, ModelDescription, load
from tests.helpers import classifier
from tests.model.test_families import saved  # noqa: F401  (the tiny family checkpoints, one per family)

TEXTS = [
    "wake me up at seven tomorrow",
    "will it rain in paris",
    "play some jazz",
    "hi",
    "what is on my calendar today",
]
LABELS = ["alarm_set", "weather_query", "play_music", "calendar_query"]


def test_a_bert_classifier_loads_in_the_pipeline_with_the_same_labels_and_probabilities(tmp_path, capsys):
    from transformers import pipeline

    torch.manual_seed(0)
    model = classifier(LABELS, pooling="pooler", hidden_size=0, max_length=32)
    model.spec("main").temperature = 1.7  # a calibrated model: the export must fold it in
    model.save(tmp_path / "model")
    assert main(["export", str(tmp_path / "model"), "--to", "transformers", "--out", str(tmp_path / "hf")]) == 0
    ours = load(tmp_path / "model").predict(TEXTS)
    theirs = pipeline("text-classification", model=str(tmp_path / "hf"), top_k=None, device="cpu")(TEXTS)
    for mine, their in zip(ours, theirs, strict=True):
        probabilities = {row["label"]: row["score"] for row in their}
        assert max(probabilities, key=probabilities.get) == mine.label
        assert all(abs(probabilities[k] - v) < 1e-4 for k, v in mine.probabilities.items())


def test_every_family_exports_its_own_head_with_the_same_logits(saved, tmp_path):  # noqa: F811
    from transformers import AutoModelForSequenceClassification

    family, _, directory = saved
    layout = HF_HEADS[family]
    encoder = Encoder.from_pretrained(directory)
    width = encoder.config.hidden_size
    head = HeadSpec(
        "main",
        labels=LABELS,
        hidden_size=0 if layout.activation is None else width,
        activation=layout.activation or "relu",
    )
    torch.manual_seed(1)
    model = Model(
        encoder,
        minbert.Tokenizer.from_pretrained(max_length=32),
        ModelDescription([head], layout.pooling, max_length=32),
    )
    model.save(tmp_path / "model")
    export_transformers(tmp_path / "model", tmp_path / "hf")
    reference = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    batch = model.tokenizer(TEXTS)
    with torch.no_grad():
        inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if family == "bert":
            inputs["token_type_ids"] = batch.token_type_ids
        theirs = reference(**inputs).logits
    assert reference.config.architectures == [layout.architecture]
    assert (theirs - model.eval().raw_outputs("main", TEXTS)).abs().max().item() < 1e-4


def test_a_head_transformers_cannot_express_is_refused_with_the_config_that_exports(tmp_path, capsys):
    classifier(LABELS, pooling="mean", hidden_size=512, max_length=32).save(tmp_path / "model")
    with pytest.raises(MinbertError, match="train with --model.pooling pooler --model.hidden_size 0 to export"):
        export_transformers(tmp_path / "model", tmp_path / "hf")
    assert main(["export", str(tmp_path / "model"), "--to", "transformers"]) == 2
    assert "--to transformers needs --out DIR" in capsys.readouterr().err
