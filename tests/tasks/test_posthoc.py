"""Calibration and out-of-scope rejection end to end on a real CLINC150 slice: train, save, reload, every backend."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import torch
import yaml

from minbert import MinbertError, load, load_config, train
from minbert.cli import main
from minbert.model.backends import OnnxModel, export_onnx, load_backend
from minbert.model.task_model import Model
from minbert.run import refit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clinc(tmp_path_factory, data_dir):
    """10 intents of CLINC150 (100 train, 20 dev, 30 test each) and its out-of-scope val/test, as jsonl."""
    folder = tmp_path_factory.mktemp("clinc")
    full = json.loads((data_dir / "clinc150" / "data_full.json").read_text())
    intents = sorted({label for _, label in full["train"]})[:10]
    for name, split in [
        ("train", "train"),
        ("dev", "val"),
        ("test", "test"),
        ("oos_dev", "oos_val"),
        ("oos_test", "oos_test"),
        ("oos_train", "oos_train"),
    ]:
        rows = [r for r in full[split] if r[1] in intents or split.startswith("oos")][:1000]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    return folder


def config(clinc, out, **sections) -> str:
    data = {f: str(clinc / f"{f}.jsonl") for f in ("train", "dev", "test")} | sections.pop("data", {})
    raw = {
        "output_dir": str(out),
        "data": data,
        "model": {"max_length": 32, "hidden_size": 0},
        "train": {"freeze": "encoder", "epochs": 30, "lr": 3e-3, "progress": False, "seed": 2},
        **sections,
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture(scope="module")
def rejecting(clinc, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "msp"
    data = {"oos_dev": [str(clinc / "oos_dev.jsonl")], "oos_test": [str(clinc / "oos_test.jsonl")]}
    return train(load_config(config(clinc, out, data=data, oos={"method": "msp"}, calibration="temperature")))


def test_a_calibrated_rejecting_run_reports_and_saves_everything(rejecting):
    test, summary = rejecting.results["test"], rejecting.summary
    assert {"oos_auroc", "oos_aupr", "fpr_at_95_tpr", "in_scope_accuracy", "oos_recall", "oos_f1", "ece", "nll"} <= set(
        test
    )
    assert test["oos_auroc"] > 0.85 and test["in_scope_accuracy"] > 0.85
    assert summary["temperature"] != 1.0 and summary["oos_method"] == "msp"
    assert rejecting.results["dev"]["ece"] <= summary["dev_ece_before_calibration"]
    saved = json.loads((rejecting.output_dir / "model" / "minbert.json").read_text())["heads"][0]
    assert saved["oos_method"] == "msp" and saved["oos_threshold"] == summary["oos_threshold"]


def test_torch_and_onnx_reject_the_same_texts_and_eval_reports_the_same(rejecting, clinc, capsys):
    texts = [json.loads(line)["text"] for line in (clinc / "oos_test.jsonl").read_text().splitlines()[:60]]
    texts += [json.loads(line)["text"] for line in (clinc / "test.jsonl").read_text().splitlines()[:60]]
    model_dir = rejecting.output_dir / "model"
    export_onnx(model_dir)
    answers = {b: load_backend(model_dir, b).predict(texts) for b in ("torch", "onnx")}
    assert [p.label for p in answers["torch"]] == [p.label for p in answers["onnx"]]
    assert any(p.label == "oos" for p in answers["torch"]) and any(p.label != "oos" for p in answers["torch"])
    rejected = [p for p in answers["torch"] if p.label == "oos"]
    assert all(p.oos_score < p.oos_threshold for p in rejected)
    arguments = [
        "eval",
        str(rejecting.output_dir),
        "--data",
        str(clinc / "test.jsonl"),
        "--oos-data",
        str(clinc / "oos_test.jsonl"),
    ]
    assert main([*arguments, "--backend", "onnx"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["oos_auroc"] == pytest.approx(rejecting.results["test"]["oos_auroc"], abs=1e-3)
    assert metrics["oos_recall"] == pytest.approx(rejecting.results["test"]["oos_recall"], abs=0.01)


def test_serve_answers_out_of_scope(rejecting):
    from minbert.serving.app import create_app
    from tests.serving.test_app import running

    with running(create_app(rejecting.output_dir)) as url:
        answer = httpx.post(f"{url}/predict", json={"texts": ["what is the meaning of life", "what is my balance"]})
        metrics = httpx.get(f"{url}/metrics").text
    predictions = answer.json()["predictions"]
    rejected = sum(p["label"] == "oos" for p in predictions)
    counted = [
        line for line in metrics.splitlines() if line.startswith('minbert_rejections_total{reason="out_of_scope"}')
    ]
    assert (float(counted[0].split()[-1]) if counted else 0.0) == rejected
    assert all({"oos_score", "oos_threshold"} <= set(p) for p in predictions)
    assert [p["label"] == "oos" for p in predictions] == [p["oos_score"] < p["oos_threshold"] for p in predictions]


def test_oos_as_a_class_and_energy_without_oos_dev(clinc, tmp_path):
    data = {"oos_train": str(clinc / "oos_train.jsonl"), "oos_test": str(clinc / "oos_test.jsonl")}
    extra = train(load_config(config(clinc, tmp_path / "class", data=data)))
    assert extra.summary["labels"] == 11 and "oos" in extra.model.labels
    texts = [json.loads(x)["text"] for x in (clinc / "oos_test.jsonl").read_text().splitlines()]
    caught = sum(p.label == "oos" for p in extra.model.predict(texts)) / len(texts)
    assert extra.results["test"]["oos_recall"] == pytest.approx(caught) and 0 < caught < 1
    energy = train(load_config(config(clinc, tmp_path / "energy", oos={"method": "energy", "in_scope_recall": 0.9})))
    assert energy.summary["oos_method"] == "energy"
    kept = sum(
        p.label != "oos"
        for p in energy.model.predict([json.loads(x)["text"] for x in (clinc / "dev.jsonl").read_text().splitlines()])
    )
    assert kept / 200 == pytest.approx(0.9, abs=0.02)  # the dev share the threshold was chosen to keep


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"oos": {"in_scope_recall": 0.9}}, "oos.in_scope_recall is set but oos.method is none"),
        ({"data": {"oos_dev": "x.jsonl"}}, "data.oos_dev is read by out-of-scope rejection"),
        ({"oos": {"method": "msp"}, "data": {"oos_train": "x.jsonl"}}, "choose one of the two"),
        ({"oos": {"method": "msp", "k": 5}}, "oos.k is read by oos.method knn"),
        ({"oos": {"method": "msp", "criterion": "recall"}}, "oos.criterion chooses among thresholds"),
        ({"oos": {"method": "cosine"}}, "oos.method"),
    ],
)
def test_oos_config_errors(clinc, tmp_path, sections, message):
    with pytest.raises(MinbertError, match=message):
        load_config(config(clinc, tmp_path / "bad", **sections))


def counting(encode: Callable[..., torch.Tensor], encoded: list[int]) -> Callable[..., torch.Tensor]:
    """A backend's `encode(self, ..., inputs, ...)` that first notes how many `inputs` it was given."""
    signature = inspect.signature(encode)

    def counted(*arguments: Any) -> torch.Tensor:
        encoded.append(len(signature.bind(*arguments).arguments["inputs"]))
        return encode(*arguments)

    return counted


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_a_vector_method_rejects_the_same_texts_on_every_backend_after_a_reload(
    clinc, tmp_path, method, capsys, monkeypatch
):
    data = {"oos_dev": [str(clinc / "oos_dev.jsonl")], "oos_test": [str(clinc / "oos_test.jsonl")]}
    run = train(load_config(config(clinc, tmp_path / method, data=data, oos={"method": method})))
    assert run.summary["oos_method"] == method and run.results["test"]["oos_auroc"] > 0.8
    model_dir = run.output_dir / "model"
    saved = json.loads((model_dir / "minbert.json").read_text())["heads"][0]
    assert saved["oos_bank_size"] == (1000 if method == "knn" else 0)  # knn keeps every training vector
    texts = [json.loads(line)["text"] for line in (clinc / "oos_test.jsonl").read_text().splitlines()[:80]]
    texts += [json.loads(line)["text"] for line in (clinc / "test.jsonl").read_text().splitlines()[:80]]
    export_onnx(model_dir, int8=True)
    reloaded = load_backend(model_dir, "torch")
    scores = {b: load_backend(model_dir, b).scored_outputs("main", texts)[1] for b in ("torch", "onnx", "onnx-int8")}
    assert torch.allclose(scores["torch"], run.model.scored_outputs("main", texts)[1], rtol=1e-5, atol=1e-4)
    assert torch.allclose(scores["onnx"], scores["torch"], rtol=1e-4, atol=1e-3)
    assert torch.corrcoef(torch.stack([scores["onnx-int8"], scores["torch"]]))[0, 1] > 0.9  # int8: close, not equal
    labels = {b: [p.label for p in load_backend(model_dir, b).predict(texts)] for b in ("torch", "onnx")}
    assert labels["torch"] == labels["onnx"] == [p.label for p in reloaded.predict(texts)]
    assert 0 < labels["torch"].count("oos") < len(texts)
    encoded: list[int] = []  # the length of each input list a backend encodes
    for backend, method_name in [(Model, "_encode_pooled"), (OnnxModel, "_session_run")]:
        monkeypatch.setattr(backend, method_name, counting(getattr(backend, method_name), encoded))
    sizes = sorted(len((clinc / f"{name}.jsonl").read_text().splitlines()) for name in ("test", "oos_test"))
    for backend, tolerance in [("torch", 1e-4), ("onnx", 1e-3)]:
        encoded.clear()
        data = ["--data", str(clinc / "test.jsonl"), "--oos-data", str(clinc / "oos_test.jsonl")]
        assert main(["eval", str(run.output_dir), *data, "--backend", backend]) == 0
        metrics = json.loads(capsys.readouterr().out)
        assert metrics["oos_auroc"] == pytest.approx(run.results["test"]["oos_auroc"], abs=tolerance)
        assert sorted(encoded) == sizes  # test feeds its metrics and the rejection's from one pass
    report = (run.output_dir / "report.md").read_text()
    assert "oos_scores.png" in report and (run.output_dir / "oos_scores.png").stat().st_size > 10_000


def test_a_frozen_run_encodes_each_text_once(clinc, tmp_path, monkeypatch):
    """After training, calibration, the rejector's statistics and threshold and the final evaluation reuse the
    vectors the frozen encoder cached for training, and encode any other input list once: on a frozen probe,
    encoding dev again would cost as much as training the head. The out-of-scope test pass reads the run's
    evaluation batch size (and precision), so it finds the test vectors too."""
    encoded: list[int] = []
    monkeypatch.setattr(Model, "_encode_pooled", counting(Model._encode_pooled, encoded))
    data = {"oos_dev": [str(clinc / "oos_dev.jsonl")], "oos_test": [str(clinc / "oos_test.jsonl")]}
    train_section = {"freeze": "encoder", "epochs": 3, "lr": 3e-3, "progress": False, "seed": 2, "eval_batch_size": 64}
    sections = {"oos": {"method": "mahalanobis"}, "calibration": "temperature", "train": train_section}
    run = train(load_config(config(clinc, tmp_path / "once", data=data, **sections)))
    sizes = {name: len((clinc / f"{name}.jsonl").read_text().splitlines()) for name in ("train", "dev", "test")}
    oos_sizes = [len((clinc / f"{name}.jsonl").read_text().splitlines()) for name in ("oos_dev", "oos_test")]
    assert sorted(encoded) == sorted([*sizes.values(), *oos_sizes])  # train and dev before training only
    assert run.results["dev"]["accuracy"] > 0.5 and 0 < run.summary["temperature"]
    for _ in range(2):  # outside a run's conclusion nothing is remembered
        run.model.pooled_vectors(["what is my balance"])
    assert len(encoded) == len(sizes) + len(oos_sizes) + 2


def test_a_calibrated_run_shows_its_reliability_diagram(rejecting):
    assert "![Reliability diagram (test)](reliability.png)" in (rejecting.output_dir / "report.md").read_text()
    assert (rejecting.output_dir / "reliability.png").stat().st_size > 10_000


def test_refit_reproduces_a_run_and_fits_another_method_without_touching_it(rejecting, tmp_path, capsys):
    source = rejecting.output_dir
    saved = (source / "model" / "minbert.json").read_bytes()
    same = refit(source, ["--output_dir", str(tmp_path / "same")])
    assert same.results["test"] == pytest.approx(rejecting.results["test"], abs=1e-6)  # same model, same fits
    assert same.summary["refitted_from"] == str(source) and same.summary["steps"] == rejecting.summary["steps"]
    assert main(["refit", str(source), "--oos.method", "energy", "--output_dir", str(tmp_path / "energy")]) == 0
    energy = json.loads((tmp_path / "energy" / "results.json").read_text())
    assert energy["summary"]["oos_method"] == "energy" and energy["summary"]["temperature"] == pytest.approx(
        rejecting.summary["temperature"]
    )
    assert energy["results"]["test"]["accuracy"] == pytest.approx(rejecting.results["test"]["accuracy"])
    assert (source / "model" / "minbert.json").read_bytes() == saved  # the trained run is as it was
    assert load(tmp_path / "energy").spec("main").oos_method == "energy"
    with pytest.raises(MinbertError, match="train.epochs changes the training: train a new run instead"):
        refit(source, ["--output_dir", str(tmp_path / "x"), "--train.epochs", "3"])
    with pytest.raises(MinbertError, match="give another --output_dir"):
        refit(source, ["--output_dir", str(source)])
    assert main(["refit", str(source), "--oos.method", "knn"]) == 2
    assert "give --output_dir DIR" in capsys.readouterr().err
