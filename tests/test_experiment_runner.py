"""The experiment runner: its wall clock sums a run's sittings, including one that was killed; retargeting
a run keeps its key (so it resumes) and gives training overrides to the run a refit refits; a run retrained
because its model is gone keeps the retrain's rows apart from the rows on record; a finished run missing from
results.csv is recorded from its directory, and one of another config is refused."""

from __future__ import annotations

import json
import multiprocessing
import sys
import time

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "experiments"))

import runner  # noqa: E402
from runner import Run, WallClock, ensure_model, execute, finished_runs, read_rows, retarget  # noqa: E402


def sit_until_killed(path: str) -> None:
    from pathlib import Path

    with WallClock(Path(path), every=0.05):
        time.sleep(60)


def test_wall_clock_counts_a_killed_sitting_and_the_finished_one(tmp_path):
    ledger = tmp_path / "run" / "wall_s.json"
    killed = multiprocessing.get_context("spawn").Process(target=sit_until_killed, args=(str(ledger),))
    killed.start()
    deadline = time.time() + 60
    while time.time() < deadline and not (ledger.is_file() and json.loads(ledger.read_text())[-1] >= 0.5):
        time.sleep(0.05)
    killed.kill()
    killed.join()
    first = json.loads(ledger.read_text())
    assert len(first) == 1 and first[0] >= 0.5

    with WallClock(ledger, every=0.05) as clock:
        time.sleep(0.3)
    sittings = json.loads(ledger.read_text())
    assert len(sittings) == 2 and sittings[0] == first[0] and sittings[1] >= 0.3
    assert abs(clock.total() - sum(sittings)) < 0.05


def test_retarget_keeps_the_key_and_passes_training_overrides_to_the_refitted_run(tmp_path):
    trained = Run("exp", "msp", tmp_path / "c.yaml", seed=1, overrides=["--train.epochs", "2"])
    refit = Run("exp", "knn", tmp_path / "c.yaml", seed=1, refit_of=trained)
    moved = retarget(trained, "all-mpnet-base-v2", True, ["--train.patience", "3"])
    assert moved.key == ("exp", "msp", "all-mpnet-base-v2", "1")
    assert moved.overrides == ["--train.epochs", "2", "--train.bf16", "true", "--train.patience", "3"]
    moved_refit = retarget(refit, "all-mpnet-base-v2", True, ["--train.patience", "3"])
    assert moved_refit.overrides == [] and moved_refit.refit_of is not None
    assert moved_refit.refit_of.overrides == moved.overrides
    assert moved_refit.output_dir.parent.name == "all-mpnet-base-v2"


def test_a_retrain_is_recorded_apart_and_fills_the_run_only_when_it_has_no_rows(tmp_path, monkeypatch):
    results = tmp_path / "results.csv"
    trained = Run("exp", "msp", tmp_path / "c.yaml", seed=1, checkpoint="enc")
    calls = []

    def fake_execute(run: Run, data_dir) -> list[dict]:
        calls.append(run.overrides)
        row = {"experiment": run.experiment, "recipe": run.recipe, "checkpoint": run.checkpoint, "seed": run.seed}
        return [{**row, "split": "test", "metric": "accuracy", "value": 0.9 + len(calls) / 100, "wall_s": 1.0}]

    monkeypatch.setattr(runner, "execute", fake_execute)
    first = ensure_model(trained, results=results)
    assert first is not None and calls == [["--train.overwrite", "true"]]
    assert finished_runs(results) == {("exp", "msp", "enc", "1"), ("exp", "msp_retrained", "enc", "1")}

    ensure_model(trained, retrained_as=("other", "teacher_retrained"), results=results)
    rows = read_rows(results, checkpoint=None)
    assert [float(r["value"]) for r in rows if r["recipe"] == "msp"] == [0.91]  # the run's rows stay the first ones
    assert [float(r["value"]) for r in rows if r["recipe"] == "msp_retrained"] == [0.91]
    assert [float(r["value"]) for r in rows if r["experiment"] == "other"] == [0.92]
    assert {(r["experiment"], r["recipe"]) for r in rows} == {
        ("exp", "msp"),
        ("exp", "msp_retrained"),
        ("other", "teacher_retrained"),
    }


def test_a_finished_run_missing_from_results_is_recorded_without_training(tmp_path, monkeypatch):
    config = REPO / "configs" / "goemotions.yaml"
    run = Run("exp", "per_label", config, seed=1, checkpoint="enc", metrics={"macro_f1": "macro_f1"})
    monkeypatch.setattr(runner, "HERE", tmp_path)
    out = run.output_dir
    (out / "model").mkdir(parents=True)
    (out / "model" / "minbert.json").write_text("{}")
    overrides = ["--output_dir", str(out), "--model.checkpoint", "enc", "--train.threads", "2"]
    (out / "config.yaml").write_text(runner.load_config(config, overrides).to_yaml())
    summary = {"train_examples_per_second": 16.5, "train_seconds": 9000.0, "cpu": "the CPU it trained on"}
    results = {"dev": {"macro_f1": 0.51}, "test": {"macro_f1": 0.5, "micro_f1": 0.6}}
    (out / "results.json").write_text(json.dumps({"results": results, "summary": summary}))
    monkeypatch.setattr(runner, "train", lambda config: pytest.fail("a finished run was trained again"))

    rows = execute(run)
    assert [(r["split"], r["metric"], r["value"]) for r in rows] == [
        ("dev", "macro_f1", 0.51),
        ("test", "macro_f1", 0.5),
    ]
    assert {(r["wall_s"], r["examples_per_s"], r["checkpoint"], r["cpu"]) for r in rows} == {
        (9000.0, 16.5, "enc", "the CPU it trained on")
    }
    (out / "wall_s.json").write_text("[100.0, 20.5]")
    assert {r["wall_s"] for r in execute(run)} == {120.5}

    with pytest.raises(SystemExit, match="another config"):
        execute(Run("exp", "per_label", config, seed=1, overrides=["--train.epochs", "1"], checkpoint="enc"))
