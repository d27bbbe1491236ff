"""Train -> save -> load -> predict on a real MASSIVE slice, through the CLI as a user would."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import minbert
from minbert.cli import main
from minbert.training.metrics_log import read_metrics

pytestmark = pytest.mark.slow


def massive_slices(data_dir: Path, train_rows: int, tmp: Path) -> dict[str, str]:
    """A seeded random train slice, and dev/test rows of the intents it covers, written to tmp
    (tests never copy data into the repo)."""

    def rows(split: str) -> list[str]:
        return (data_dir / "massive_en_us" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()

    train = random.Random(0).sample(rows("train"), train_rows)
    intents = {json.loads(r)["label_text"] for r in train}
    chosen = {
        "train": train,
        "dev": [r for r in rows("validation") if json.loads(r)["label_text"] in intents][:200],
        "test": [r for r in rows("test") if json.loads(r)["label_text"] in intents][:300],
    }
    paths = {}
    for split, lines in chosen.items():
        paths[split] = str(tmp / f"{split}.jsonl")
        Path(paths[split]).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def slice_config(tmp: Path, data_dir: Path, train_rows: int) -> Path:
    config = {
        "data": {**massive_slices(data_dir, train_rows, tmp), "format": "massive"},
        "model": {"max_length": 48},
        "train": {
            "epochs": 2,
            "batch_size": 16,
            "lr": 1.5e-4,
            "head_lr": 2e-3,
            "warmup_ratio": 0.05,
            "progress": False,
        },
    }
    path = tmp / "run.yaml"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("massive600")
    config = slice_config(tmp, data_dir, train_rows=600)
    out = tmp / "run"
    assert main(["-q", "train", str(config), "--output_dir", str(out), "--train.seed", "7"]) == 0
    return out


def test_run_writes_everything_a_user_reads(trained_run):
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "results.json",
        "report.md",
        "train.log",
        "learning_curves.png",
        "lr_schedule.png",
        "confusion_test.png",
        "model/minbert.json",
        "model/heads.safetensors",
        "model/encoder/model.safetensors",
        "model/encoder/tokenizer.json",
    ):
        assert (trained_run / name).is_file(), name
    report = (trained_run / "report.md").read_text()
    assert "## Results" in report and "| test |" in report and "Per-class scores" in report
    events = {r["event"] for r in read_metrics(trained_run / "metrics.jsonl")}
    assert {"train", "dev", "final_test"} <= events


def test_accuracy_well_above_chance(trained_run):
    results = json.loads((trained_run / "results.json").read_text())["results"]
    print(f"\n600-row MASSIVE slice, 2 epochs: {results['test']}")
    assert results["test"]["accuracy"] > 0.30  # chance is 1/60 = 0.017
    assert results["dev"]["accuracy"] > 0.30


def test_reload_gives_identical_predictions(trained_run, data_dir, tmp_path, capsys):
    recorded = json.loads((trained_run / "results.json").read_text())["results"]["test"]
    metrics_file = tmp_path / "metrics.json"
    test_file = trained_run.parent / "test.jsonl"
    assert (
        main(
            [
                "-q",
                "eval",
                str(trained_run),
                "--data",
                str(test_file),
                "--format",
                "massive",
                "--out",
                str(metrics_file),
            ]
        )
        == 0
    )
    reloaded = json.loads(metrics_file.read_text())
    assert reloaded["accuracy"] == recorded["accuracy"]
    assert reloaded["macro_f1"] == recorded["macro_f1"]
    assert reloaded["loss"] == pytest.approx(recorded["loss"], abs=1e-6)

    model_a, model_b = minbert.load(trained_run), minbert.load(trained_run / "model")
    texts = ["wake me up at seven tomorrow", "what is the weather like in paris", "play some jazz"]
    a, b = model_a.predict(texts), model_b.predict(texts)
    assert [p.label for p in a] == [p.label for p in b]
    assert all(p.label in model_a.labels for p in a)
    assert [p.probabilities for p in a] == [p.probabilities for p in b]
    assert abs(sum(a[0].probabilities.values()) - 1) < 1e-5
    vectors = model_a.encode(texts)
    assert vectors.shape == (3, 384) and abs(float((vectors[0] ** 2).sum()) - 1) < 1e-5


def test_predict_cli_prints_json_lines(trained_run, capsys):
    capsys.readouterr()
    assert (
        main(["-q", "predict", str(trained_run), "set an alarm for six am", "turn the volume down", "--top-k", "2"])
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["set an alarm for six am", "turn the volume down"]
    assert all(len(line["top"]) == 2 and 0 < line["probability"] <= 1 for line in lines)
    assert lines[0]["label"] == lines[0]["top"][0][0]


def test_frozen_encoder_stays_bit_identical(tmp_path, data_dir):
    config = minbert.load_config(
        slice_config(tmp_path, data_dir, train_rows=64),
        [
            "--train.freeze",
            "encoder",
            "--train.epochs",
            "1",
            "--output_dir",
            str(tmp_path / "frozen"),
            "--train.eval_before",
            "false",
        ],
    )
    run = minbert.train(config)
    original = minbert.Encoder.from_pretrained().state_dict()
    for name, value in run.model.encoder.state_dict().items():
        assert torch.equal(value, original[name]), name
    saved = load_file(str(tmp_path / "frozen" / "model" / "encoder" / "model.safetensors"))
    reference = load_file(str(minbert.model.checkpoint.resolve_checkpoint(None) / "model.safetensors"))
    assert all(torch.equal(saved[k], reference[k]) for k in saved)
    assert run.summary["trainable_parameters"] == sum(p.numel() for p in run.model.heads.parameters())


def test_same_seed_same_loss_curve(tmp_path, data_dir):
    def losses(name: str, seed: int) -> list[float]:
        config = minbert.load_config(
            slice_config(tmp_path, data_dir, train_rows=96),
            [
                "--train.epochs",
                "1",
                "--train.seed",
                str(seed),
                "--output_dir",
                str(tmp_path / name),
                "--train.eval_before",
                "false",
            ],
        )
        config.data.dev = config.data.test = None
        minbert.train(config)
        return [r["loss"] for r in read_metrics(tmp_path / name / "metrics.jsonl") if r["event"] == "train"]

    first, second, other = losses("a", 5), losses("b", 5), losses("c", 6)
    assert len(first) == 6
    assert first == second
    assert first != other


def test_cli_errors_are_one_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("data:\n  train: nowhere/train.jsonl\n")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minbert: error: nowhere/train.jsonl: data file not found") and "\n" not in err
    assert main(["eval", str(tmp_path), "--data", str(config)]) == 2
    assert "not a saved minbert model" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_info_runs_on_default_checkpoint(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "6 layers, hidden 384" in out and "last_hidden_state (1," in out


def test_cached_frozen_features_train_like_the_full_model(tmp_path, data_dir):
    """A frozen probe on cached sentence vectors follows the same loss curve as re-encoding every batch."""

    def losses(name: str, cache: bool) -> list[float]:
        config = minbert.load_config(
            slice_config(tmp_path, data_dir, train_rows=64),
            [
                "--train.freeze",
                "encoder",
                "--train.epochs",
                "2",
                "--train.bucket",
                "false",
                "--train.lr",
                "1e-3",
                "--train.cache_features",
                str(cache).lower(),
                "--output_dir",
                str(tmp_path / name),
            ],
        )
        minbert.train(config)
        return [r["loss"] for r in read_metrics(tmp_path / name / "metrics.jsonl") if r["event"] in ("train", "dev")]

    cached, full = losses("cached", True), losses("full", False)
    assert len(cached) == len(full) == 8 + 3
    assert cached == pytest.approx(full, abs=1e-4)


def test_tensorboard_logging(tmp_path, data_dir):
    config = minbert.load_config(
        slice_config(tmp_path, data_dir, train_rows=32),
        [
            "--train.epochs",
            "1",
            "--train.tensorboard",
            "true",
            "--output_dir",
            str(tmp_path / "tb"),
            "--train.eval_before",
            "false",
        ],
    )
    config.data.test = None
    minbert.train(config)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/lr", "dev/accuracy"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("train/loss")) == 2


def test_training_on_pairs_is_refused_not_silently_half_read(tmp_path, capsys):
    pairs = tmp_path / "sts.csv"
    pairs.write_text(
        "\tid\tsentence1\tsentence2\tsimilarity\n0\ta\tA man plays.\tA man is playing.\t4.6\n1\tb\tA cat.\tA dog runs.\t0.4\n"
    )
    config = tmp_path / "run.yaml"
    config.write_text(f"data:\n  train: {pairs}\n  format: sts\n")
    assert main(["train", str(config), "--output_dir", str(tmp_path / "out")]) == 2
    assert "holds sentence pairs" in capsys.readouterr().err
