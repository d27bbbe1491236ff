"""Multi-label heads end to end on a real GoEmotions slice: train, thresholds on dev, save, every backend, serve."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
import yaml

from minbert import MinbertError, load_config, train
from minbert.data.readers import read_examples
from minbert.model.backends import export_onnx, load_backend
from minbert.model.heads import HeadSpec
from minbert.model.hf_export import export_transformers
from minbert.model.task_model import Model, ModelDescription
from tests.helpers import classifier

pytestmark = pytest.mark.slow

TEXTS = ["thank you so much, this is wonderful", "I hate this, it is disgusting", "what? I don't get it", "ok"]


@pytest.fixture(scope="module")
def goemotions(tmp_path_factory, data_dir):
    """The first 1,200 / 300 / 300 rows of GoEmotions train / dev / test, with labels.txt beside them."""
    folder = tmp_path_factory.mktemp("goemotions")
    source = data_dir / "goemotions"
    for name, rows in (("train", 1200), ("dev", 300), ("test", 300)):
        lines = (source / f"{name}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:rows]
        (folder / f"{name}.tsv").write_text("".join(lines), encoding="utf-8")
    (folder / "labels.txt").write_text((source / "labels.txt").read_text())
    return folder


def config(folder, out, **sections) -> str:
    raw = {
        "output_dir": str(out),
        "data": {f: str(folder / f"{f}.tsv") for f in ("train", "dev", "test")}
        | {"format": "goemotions"}
        | sections.pop("data", {}),
        "model": {"max_length": 40, "hidden_size": 0, "pooling": "mean"} | sections.pop("model", {}),
        "train": {"freeze": "encoder", "epochs": 20, "lr": 3e-3, "progress": False, "seed": 3, "metric": "macro_f1"}
        | sections.pop("train", {}),
        **sections,
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture(scope="module")
def tagged(goemotions, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "per_label"
    return train(load_config(config(goemotions, out, model={"multilabel_threshold": "per_label"})))


def test_the_goemotions_format_makes_a_multilabel_run_with_tuned_thresholds(tagged, goemotions):
    spec = tagged.model.spec("main")
    assert spec.multilabel and spec.loss == "bce" and len(spec.labels) == 28
    assert len(spec.thresholds) == 28 and len(set(spec.thresholds)) > 3  # tuned per label, not all 0.5
    test = tagged.results["test"]
    assert {"micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss"} <= set(test)
    from minbert.evaluation.multilabel import multilabel_metrics
    from minbert.tasks.head_task import targets_of

    truth = targets_of(spec, read_examples(goemotions / "test.tsv", "goemotions")).numpy()
    everything = multilabel_metrics(truth, truth * 0 + 1)  # the untrained head's answer: every label
    assert test["macro_f1"] > everything["macro_f1"] + 0.03 and test["micro_f1"] > everything["micro_f1"] + 0.05
    assert tagged.summary["best_step"] > 0
    saved = json.loads((tagged.output_dir / "model" / "minbert.json").read_text())["heads"][0]
    assert saved["thresholds"] == spec.thresholds and saved["multilabel"] is True
    report = (tagged.output_dir / "report.md").read_text()
    assert "## Per-label scores (test, worst F1 first)" in report and "| neutral |" in report


def test_per_label_thresholds_beat_one_half_on_dev(tagged, goemotions):
    spec = tagged.model.spec("main")
    tuned = tagged.results["dev"]["macro_f1"]
    half = HeadSpec(**{**spec.__dict__, "thresholds": [0.5] * 28})
    from minbert.tasks.head_task import score_raw, targets_of

    dev = read_examples(goemotions / "dev.tsv", "goemotions")
    raw = tagged.model.raw_outputs("main", [e.text for e in dev])
    assert tuned == pytest.approx(score_raw(spec, raw, targets_of(spec, dev)).metrics["macro_f1"])
    assert tuned > score_raw(half, raw, targets_of(half, dev)).metrics["macro_f1"]


def test_label_sets_are_the_same_on_torch_onnx_and_the_server(tagged):
    model_dir = tagged.output_dir / "model"
    export_onnx(model_dir)
    torch_sets = [p.labels for p in load_backend(model_dir, "torch").predict(TEXTS)]
    assert torch_sets == [p.labels for p in load_backend(model_dir, "onnx").predict(TEXTS)]
    assert all(labels for labels in torch_sets)
    from minbert.serving.app import create_app
    from tests.serving.test_app import running

    with running(create_app(tagged.output_dir)) as url:
        answer = httpx.post(f"{url}/predict", json={"texts": TEXTS}).json()["predictions"]
    assert [p["labels"] for p in answer] == torch_sets
    assert all(isinstance(p["none_above_threshold"], bool) for p in answer)


def test_label_lists_in_jsonl_and_a_separator_make_a_run_multilabel_by_themselves(goemotions, tmp_path):
    rows = [
        json.loads(json.dumps({"text": t, "label": labels.split(",")}))
        for t, labels, _ in (line.split("\t") for line in (goemotions / "train.tsv").read_text().splitlines()[:300])
    ]
    for name in ("train", "dev"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp_path / f"{name}.csv").write_text(
            "text,label\n" + "".join(f'"{r["text"].replace(chr(34), "")}",{"#".join(r["label"])}\n' for r in rows)
        )
    lists = {
        "train": str(tmp_path / "train.jsonl"),
        "dev": str(tmp_path / "dev.jsonl"),
        "test": None,
        "format": "jsonl",
    }
    run = train(load_config(config(goemotions, tmp_path / "lists", data=lists, train={"epochs": 2})))
    assert run.model.spec("main").multilabel
    separated = {
        "train": str(tmp_path / "train.csv"),
        "dev": str(tmp_path / "dev.csv"),
        "test": None,
        "format": "csv",
        "label_separator": "#",
    }
    run = train(load_config(config(goemotions, tmp_path / "sep", data=separated, train={"epochs": 2})))
    assert run.model.spec("main").multilabel and run.model.spec("main").labels == [
        str(i) for i in sorted({int(x) for r in rows for x in r["label"]})
    ]


def test_supcon_positives_share_a_label_set_and_ce_scl_is_refused(goemotions, tmp_path):
    stage = {"objective": "supcon", "epochs": 1, "batch_size": 16, "lr": 1e-5}
    run = train(
        load_config(
            config(
                goemotions,
                tmp_path / "supcon",
                data={"max_train_examples": 96},
                contrastive=stage,
                train={"epochs": 1, "freeze": "none", "lr": 1e-5},
            )
        )
    )
    assert run.model.spec("main").multilabel and run.summary["steps"] > 0
    with pytest.raises(MinbertError, match=r"no head has loss ce \(a multilabel head trains with bce"):
        train(load_config(config(goemotions, tmp_path / "scl", train={"objective": "ce+scl", "freeze": "none"})))
    with pytest.raises(MinbertError, match="oos.method and calibration apply to a single-label classifier"):
        load_config(config(goemotions, tmp_path / "oos", model={"multilabel": True}, calibration="temperature"))
    single = tmp_path / "one.tsv"
    single.write_text("text\tlabel\nit is fine\tx\nnot at all\ty\n")
    data = {"train": str(single), "dev": None, "test": None, "format": "tsv"}
    with pytest.raises(MinbertError, match="model.multilabel_threshold is read by a multilabel head"):
        train(load_config(config(goemotions, tmp_path / "single", data=data, model={"multilabel_threshold": 0.3})))


def test_a_multilabel_classifier_exports_to_transformers_as_multi_label(tmp_path):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = classifier(["joy", "anger", "fear"], pooling="pooler", hidden_size=0, max_length=32)
    spec = model.spec("main")
    spec.loss, spec.multilabel = "bce", True
    multi = Model(model.encoder, model.tokenizer, ModelDescription([spec], "pooler", max_length=32))
    multi.save(tmp_path / "model")
    out = export_transformers(tmp_path / "model", tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["problem_type"] == "multi_label_classification"
    theirs = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    batch = multi.tokenizer(TEXTS)
    with torch.no_grad():
        logits = theirs(**batch.as_kwargs()).logits
    assert torch.allclose(torch.sigmoid(logits), torch.tensor(multi.predict_proba(TEXTS)), atol=1e-5)
