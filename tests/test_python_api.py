"""The Python API (`minbert.fit`) against the command line's `minbert train` on the same data and seed:
the same numbers, step for step, for a classifier, a pair model, a multi-label model and a multitask model;
then what only Python has (in-memory forms, no disk output, callbacks, keyword checks)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import minbert
from minbert.data.readers import read_examples
from minbert.training.metrics_log import read_metrics

pytestmark = pytest.mark.slow

# Small and quick, but every part of training runs: warm-up, LLRD, two epochs, dev selection, test scoring.
TRAIN = {"epochs": 2, "batch_size": 16, "lr": 1e-4, "head_lr": 1e-3, "warmup_ratio": 0.1, "llrd": 0.9}
RUN = {"threads": 1, "progress": False, "seed": 3}


def cli_run(tmp: Path, config: dict[str, Any]) -> tuple[dict, list[float]]:
    """Train through `minbert train` (the file-based run) and return its results and per-step losses."""
    tmp.mkdir(exist_ok=True)
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    out = tmp / "cli_run"
    minbert.train(minbert.load_config(path, ["--output_dir", str(out)]))
    results = json.loads((out / "results.json").read_text())["results"]
    return results, [r["loss"] for r in read_metrics(out / "metrics.jsonl") if r["event"] == "train"]


def losses(result: minbert.RunResult) -> list[float]:
    return [r["loss"] for r in result.history if r["event"] == "train"]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def intents(data_dir) -> dict[str, list[dict]]:
    """A seeded slice of MASSIVE: 96 training rows, dev and test rows of the intents they cover."""
    folder = data_dir / "massive_en_us"
    train = random.Random(0).sample(read_examples(folder / "train.jsonl", "massive"), 96)
    known = {e.label for e in train}

    def rows(examples) -> list[dict]:
        return [{"text": e.text, "intent": e.label} for e in examples if e.label in known]

    return {
        "train": rows(train),
        "dev": rows(read_examples(folder / "validation.jsonl", "massive"))[:80],
        "test": rows(read_examples(folder / "test.jsonl", "massive"))[:80],
    }


def test_a_classifier_from_a_dataframe_equals_the_cli_run(tmp_path, intents):
    files = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows) for split, rows in intents.items()}
    config = {
        "data": {**files, "format": "jsonl", "label_column": "intent"},
        "model": {"max_length": 32},
        "train": {**TRAIN, **RUN},
    }
    cli_results, cli_losses = cli_run(tmp_path, config)

    frames = {split: pd.DataFrame(rows) for split, rows in intents.items()}
    result = minbert.fit(
        "all-MiniLM-L6-v2",
        train=frames["train"],
        dev=frames["dev"],
        test=frames["test"],
        label_column="intent",
        max_length=32,
        **TRAIN,
        **RUN,
    )
    assert result.results == cli_results
    assert losses(result) == cli_losses and len(cli_losses) == 12
    assert result.output_dir is None

    texts = [r["text"] for r in intents["test"][:20]]
    before = result.model.predict_proba(texts)
    result.model.save(tmp_path / "saved")
    again = minbert.load(tmp_path / "saved")
    assert (again.predict_proba(texts) == before).all()
    assert [p.label for p in again.predict(texts)] == [p.label for p in result.model.predict(texts)]


def sts_rows(data_dir: Path, split: str, n: int) -> list[dict]:
    with open(data_dir / "cs224n_multitask" / f"sts-{split}.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:n]
    return [{"sentence1": r["sentence1"], "sentence2": r["sentence2"], "similarity": r["similarity"]} for r in rows]


@pytest.mark.parametrize("encoding", ["cross", "bi"])
def test_a_pair_regressor_equals_the_cli_run(tmp_path, data_dir, encoding):
    train, dev = sts_rows(data_dir, "train", 64), sts_rows(data_dir, "dev", 48)
    head = {"kind": "regression", "input": encoding, "loss": "mse", "target_range": [0, 5]}
    columns = {"text_column": "sentence1", "text_pair_column": "sentence2", "label_column": "similarity"}
    files = {"train": write_jsonl(tmp_path / "train.jsonl", train), "dev": write_jsonl(tmp_path / "dev.jsonl", dev)}
    config = {
        "task": "multitask",
        "model": {"max_length": 32, "pooling": "mean"},
        "tasks": [{"name": "main", "data": {**files, "format": "jsonl", **columns}, "head": head}],
        "train": {**TRAIN, **RUN},
    }
    cli_results, cli_losses = cli_run(tmp_path, config)

    pairs = ([(r["sentence1"], r["sentence2"]) for r in train], [float(r["similarity"]) for r in train])
    result = minbert.fit(
        "all-MiniLM-L6-v2",
        train=pairs,
        dev=dev,
        head=head,
        pooling="mean",
        max_length=32,
        **columns,
        **TRAIN,
        **RUN,
    )
    assert result.results == cli_results and "main_pearson" in result.results["dev"]
    assert losses(result) == cli_losses
    scores = result.model.predict([("a man plays a guitar", "a man is playing a guitar")])
    assert isinstance(scores[0], float) and 0.0 <= scores[0] <= 5.0


def test_a_multilabel_model_and_a_multitask_model_equal_the_cli_runs(tmp_path, intents, data_dir):
    # multi-label: intents joined two by two into label sets, as label lists in memory and in jsonl
    def joined(rows: list[dict]) -> list[dict]:
        return [
            {"text": f"{a['text']} and {b['text']}", "label": sorted({a["intent"], b["intent"]})}
            for a, b in zip(rows[::2], rows[1::2], strict=False)
        ]

    multi = {split: joined(rows) for split, rows in intents.items()}
    files = {split: write_jsonl(tmp_path / f"ml_{split}.jsonl", rows) for split, rows in multi.items()}
    config = {"data": {**files, "format": "jsonl"}, "model": {"max_length": 48}, "train": {**TRAIN, **RUN}}
    cli_results, cli_losses = cli_run(tmp_path / "ml", config)
    result = minbert.fit(
        None, train=multi["train"], dev=multi["dev"], test=multi["test"], max_length=48, **TRAIN, **RUN
    )
    assert result.results == cli_results and "micro_f1" in result.results["test"]
    assert losses(result) == cli_losses
    assert result.model.spec("main").multilabel

    # multitask: intents and similarity, one encoder, two named heads
    sts_train, sts_dev = sts_rows(data_dir, "train", 48), sts_rows(data_dir, "dev", 32)
    sts_columns = {"text_column": "sentence1", "text_pair_column": "sentence2", "label_column": "similarity"}
    sts_head = {"kind": "regression", "input": "bi", "features": "cosine", "loss": "cosent", "target_range": [0, 5]}
    task_files = {
        "intent": {
            "train": write_jsonl(tmp_path / "i_train.jsonl", intents["train"]),
            "dev": write_jsonl(tmp_path / "i_dev.jsonl", intents["dev"]),
            "format": "jsonl",
            "label_column": "intent",
        },
        "sts": {
            "train": write_jsonl(tmp_path / "s_train.jsonl", sts_train),
            "dev": write_jsonl(tmp_path / "s_dev.jsonl", sts_dev),
            "format": "jsonl",
            **sts_columns,
        },
    }
    config = {
        "task": "multitask",
        "model": {"max_length": 32, "pooling": "mean"},
        "tasks": [
            {"name": "intent", "data": task_files["intent"], "head": {"hidden_size": 64}},
            {"name": "sts", "data": task_files["sts"], "head": sts_head, "weight": 0.5},
        ],
        "multitask": {"sampling": "round_robin"},
        "train": {**TRAIN, **RUN},
    }
    cli_results, cli_losses = cli_run(tmp_path / "mt", config)
    result = minbert.fit(
        "all-MiniLM-L6-v2",
        train={"intent": pd.DataFrame(intents["train"]), "sts": sts_train},
        dev={"intent": intents["dev"], "sts": sts_dev},
        tasks={
            "intent": {"head": {"hidden_size": 64}, "data": {"label_column": "intent"}},
            "sts": {"head": sts_head, "weight": 0.5, "data": sts_columns},
        },
        multitask={"sampling": "round_robin"},
        pooling="mean",
        max_length=32,
        **TRAIN,
        **RUN,
    )
    assert result.results == cli_results and {"intent_accuracy", "sts_pearson", "overall"} <= set(result.results["dev"])
    assert losses(result) == cli_losses
    assert result.model.tasks == ["intent", "sts"]


def test_fit_writes_nothing_without_an_output_dir_and_a_run_directory_with_one(tmp_path, monkeypatch, intents):
    monkeypatch.chdir(tmp_path)
    seen: list[tuple[int, float]] = []
    texts, labels = [r["text"] for r in intents["train"]], [r["intent"] for r in intents["train"]]
    model = minbert.Model.from_pretrained("all-MiniLM-L6-v2", max_length=32)
    assert model.tasks == [] and model.config.pooling == "mean"  # the checkpoint's sentence-transformers pooling
    result = minbert.fit(
        model,
        train=(texts, labels),
        dev=intents["dev"],
        label_column="intent",
        epochs=1,
        on_evaluate=lambda step, metrics: seen.append((step, metrics["accuracy"])),
        **{k: v for k, v in RUN.items()},
    )
    assert result.model is model and model.tasks == ["main"]
    assert seen and seen[-1][1] == result.results["dev"]["accuracy"]
    assert list(tmp_path.iterdir()) == []  # nothing written: no run directory, log or checkpoint

    out = tmp_path / "run"
    minbert.fit(
        minbert.Model.from_pretrained(max_length=32),
        train=(texts, labels),
        dev=intents["dev"],
        label_column="intent",
        epochs=1,
        output_dir=out,
        **RUN,
    )
    assert {"config.yaml", "metrics.jsonl", "results.json", "report.md", "model", "train.log"} <= {
        p.name for p in out.iterdir()
    }
    assert minbert.load(out).predict(texts[:2])[0].label in set(labels)


def test_a_datasets_dataset_gives_its_class_names(intents):
    datasets = pytest.importorskip("datasets", reason="datasets is an optional dependency (the test extra has it)")
    names = sorted({r["intent"] for r in intents["train"]})
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    table = datasets.Dataset.from_dict(
        {"text": [r["text"] for r in intents["train"]], "label": [names.index(r["intent"]) for r in intents["train"]]},
        features=features,
    )
    result = minbert.fit(None, train=table, epochs=1, max_length=32, eval_before=False, **RUN)
    assert result.model.labels == names  # names, not the integers 0..n-1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (dict(epoch=2), "unknown option 'epoch'; did you mean epochs?"),
        (dict(lr=-1.0), "train.lr: input should be greater than 0"),
        (dict(train_file="x"), "unknown option 'train_file'"),
        (dict(oos={"method": "msp", "k": 3}), "oos.k is read by oos.method knn"),
        (dict(oos_dev=["what is love"]), "set oos={'method': 'msp'}"),
        (dict(data={"dev": "dev.jsonl"}), "dev names a file; in Python pass the data itself"),
        (dict(head={"kind": "regresion"}), "tasks.main.head.kind: input should be 'classification' or 'regression'"),
    ],
)
def test_options_are_checked_by_the_config_rules(call, message):
    with pytest.raises(minbert.MinbertError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        minbert.fit(None, train=(["a", "b"], ["x", "y"]), **call)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ((["a", "b"], ["x"]), "train: 2 texts but 1 labels"),
        ((["a", " "], ["x", "y"]), "train row 1: empty text"),
        ([{"sentence": "a", "label": "x"}], "train: no column 'text' \\(columns: sentence, label\\); set text_column"),
        ([{"text": "a", "intent": "x"}], "no column 'label' \\(columns: text, intent\\); set label_column"),
        ((["a", "b"], ["x", None]), "train row 1: missing label"),
        (42, "train: cannot read a int; give \\(texts, labels\\)"),
    ],
)
def test_bad_rows_in_memory_name_the_split_and_row(train, message):
    with pytest.raises(minbert.MinbertError, match=message):
        minbert.fit(None, train=train, epochs=1)
