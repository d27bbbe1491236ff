"""The experiment runner: its wall clock sums a run's sittings, including one that was killed; retargeting
a run keeps its key (so it resumes) and gives training overrides to the run a refit refits; a run retrained
because its model is gone keeps the retrain's rows apart from the rows on record; a finished run missing from
results.csv is recorded from its directory, and one of another config is refused; a script's `before` hook
prepares only the selected runs still to do, and `--only` runs one side of a run and its contender; SetFit
beside a run gets exactly the run's training and test rows and resumes only on the same rows and CPU, and each
of minbert's recipes in a few-shot cell is judged against SetFit on the same splits."""

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


def test_before_prepares_only_the_selected_runs_still_to_do(tmp_path, monkeypatch):
    runs = [Run("exp", recipe, tmp_path / "c.yaml", seed) for recipe in ("a", "b") for seed in (1, 2)]
    monkeypatch.setattr(runner, "finished_runs", lambda: {("exp", "a", runner.DEFAULT_CHECKPOINT, "1")})
    trained: list[tuple] = []
    monkeypatch.setattr(runner, "run_all", lambda todo: trained.extend(run.key for run in todo))
    prepared: list[tuple] = []
    (tmp_path / "table.md").write_text("table")
    monkeypatch.setattr(sys, "argv", ["script", "--recipes", "a"])
    runner.main("doc", runs, lambda: tmp_path / "table.md", before=lambda run: prepared.append(run.key))
    assert prepared == [("exp", "a", runner.DEFAULT_CHECKPOINT, "2")]
    assert [key[1:] for key in trained] == [
        ("a", runner.DEFAULT_CHECKPOINT, "1"),
        ("a", runner.DEFAULT_CHECKPOINT, "2"),
    ]


@pytest.mark.parametrize(
    ("only", "sides"),
    [([], ["minbert", "contender"]), (["--only", "minbert"], ["minbert"]), (["--only", "contender"], ["contender"])],
)
def test_only_runs_one_side_of_each_selected_run(tmp_path, monkeypatch, only, sides):
    runs = [Run("exp", "a", tmp_path / "c.yaml", seed) for seed in (1, 2)]
    monkeypatch.setattr(runner, "finished_runs", lambda: set())
    ran: list[tuple[str, int]] = []
    monkeypatch.setattr(runner, "run_all", lambda todo: ran.extend(("minbert", run.seed) for run in todo))
    (tmp_path / "table.md").write_text("table")
    monkeypatch.setattr(sys, "argv", ["script", "--seeds", "2", *only])
    runner.main(
        "doc",
        runs,
        lambda: tmp_path / "table.md",
        beside=lambda run: ran.append(("contender", run.seed)),
        before=lambda run: ran.append(("before", run.seed)),
    )
    expected = {"minbert": [("before", 2), ("minbert", 2)], "contender": [("contender", 2)]}
    assert ran == [step for side in sides for step in expected[side]]


def test_setfit_beside_trains_on_the_runs_own_rows(tmp_path, monkeypatch):
    import setfit_beside

    lines = [f"{label} ||| {label} text number {i}" for label in range(3) for i in range(6)]
    for name in ("train", "test"):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"task: classification\ndata: {{train: {tmp_path}/train.txt, test: {tmp_path}/test.txt, format: pipe}}\n"
    )
    seen: dict[str, list] = {}

    def fake_setfit(checkpoint, train, test, seed, folder):
        seen.update(train=train, test=test, seed=[seed])
        return {"accuracy": 0.5}

    monkeypatch.setattr(setfit_beside, "run_setfit", fake_setfit)
    monkeypatch.setattr(setfit_beside, "resolve_checkpoint", lambda name: tmp_path)
    sampled = Run("exp", "n2", config, 3, ["--data.shots_per_class", "2", "--data.sample_seed", "3"])
    rows = setfit_beside.setfit_rows(sampled)
    labels = [label for _, label in seen["train"]]
    assert sorted(labels) == ["0", "0", "1", "1", "2", "2"] and seen["seed"] == [3]
    assert len(seen["test"]) == 18 and seen["test"][0] == ("0 text number 0", "0")
    assert [(r["recipe"], r["split"], r["metric"], r["value"]) for r in rows] == [
        ("setfit_n2", "test", "accuracy", 0.5)
    ]
    first = seen["train"]
    setfit_beside.setfit_rows(sampled)
    assert seen["train"] == first  # the same seeded sample every time
    setfit_beside.setfit_rows(Run("exp", "n2", config, 4, ["--data.shots_per_class", "2", "--data.sample_seed", "4"]))
    assert seen["train"] != first
    setfit_beside.setfit_rows(Run("exp", "all", config, 1))
    assert len(seen["train"]) == 18


def test_a_stopped_setfit_run_resumes_only_on_the_same_rows_and_cpu(tmp_path, monkeypatch):
    import setfit_beside

    (tmp_path / "train.txt").write_text("".join(f"{i % 2} ||| text {i}\n" for i in range(8)))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"task: classification\ndata: {{train: {tmp_path}/train.txt, test: {tmp_path}/train.txt, format: pipe}}\n"
    )
    monkeypatch.setenv("MINBERT_EXPERIMENT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(setfit_beside, "resolve_checkpoint", lambda name: tmp_path)
    sittings: list[bool] = []  # per sitting: whether the folder held the earlier sitting's checkpoint

    def stopped_once(checkpoint, train, test, seed, folder):
        sittings.append((folder / "checkpoint-500").is_dir())
        if len(sittings) == 1:
            (folder / "checkpoint-500").mkdir()
            raise KeyboardInterrupt  # the session ended part-way
        return {"accuracy": 0.75}

    monkeypatch.setattr(setfit_beside, "run_setfit", stopped_once)
    run = Run("exp", "all", config, 1)
    with pytest.raises(KeyboardInterrupt):
        setfit_beside.setfit_rows(run)
    rows = setfit_beside.setfit_rows(run)
    folder = setfit_beside.setfit_run(run).output_dir
    assert sittings == [False, True] and rows[0]["value"] == 0.75
    assert len(json.loads((folder / "wall_s.json").read_text())) == 2  # the wall time sums both sittings
    monkeypatch.setattr(setfit_beside, "cpu_description", lambda: "another CPU")
    setfit_beside.setfit_rows(run)
    assert sittings[-1] is False and len(json.loads((folder / "wall_s.json").read_text())) == 1
    (folder / "checkpoint-500").mkdir(exist_ok=True)
    setfit_beside.setfit_rows(Run("exp", "all", config, 1, ["--data.shots_per_class", "2"]))
    assert sittings[-1] is False  # other rows: started afresh


def test_setfit_resumes_from_the_last_checkpoint_it_finished_writing(tmp_path):
    from setfit_contender import last_checkpoint

    assert last_checkpoint(tmp_path) is None
    for step, finished in ((500, True), (1000, True), (1500, False), (2000, True)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if finished:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-2000" / "trainer_state.json").write_text('{"global_st')  # stopped while saving it
    (tmp_path / "checkpoint-best").mkdir()
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-1000"


def test_versus_compares_on_the_splits_both_ran():
    from setfit_beside import versus

    minbert = {"1": (0.50, 60.0), "2": (0.40, 60.0), "3": (0.90, 10.0)}
    assert versus(minbert, {"1": (0.45, 200.0), "2": (0.40, 100.0)}) == "+2.50 pts, 0.40x wall (2 splits): met"
    assert versus(minbert, {"1": (0.45, 100.0)}) == "+5.00 pts, 0.60x wall (1 split): missed"  # not half the time
    assert versus(minbert, {"2": (0.41, 1000.0)}).endswith("missed")  # less accurate
    assert versus(minbert, {"4": (0.1, 1.0)}) == ""


def test_a_second_minbert_recipe_is_judged_against_the_same_setfit_splits():
    from setfit_beside import contenders

    def row(recipe: str, seed: str, value: float, wall: float, cpu: str = "cpu", precision: str = "fp32") -> dict:
        return {"recipe": recipe, "seed": seed, "split": "test", "metric": "accuracy", "value": str(value),
                "wall_s": str(wall), "precision": precision, "cpu": cpu}  # fmt: skip

    rows = [row("n8", "1", 0.30, 150.0), row("n8_pairs", "1", 0.36, 90.0), row("setfit_n8", "1", 0.35, 200.0)]
    labels = {c.label: c.against for c in contenders(rows, "n8", {"pairs": "n8_pairs", "unrun": "n8_other"})}
    assert labels == {
        "minbert": "-5.00 pts, 0.75x wall (1 split): missed",
        "pairs": "+1.00 pts, 0.45x wall (1 split): met",
        "SetFit": "",
    }  # a recipe with no run yet gets no row
    # a split minbert ran on another CPU than SetFit is left out of the comparison (but stays in minbert's row)
    rows += [row("n8_pairs", "2", 0.90, 1.0, cpu="other"), row("setfit_n8", "2", 0.10, 1000.0)]
    pairs = next(c for c in contenders(rows, "n8", {"pairs": "n8_pairs"}) if c.label == "pairs")
    assert pairs.against == "+1.00 pts, 0.45x wall (1 split): met" and len(pairs.splits) == 2
    # so is a split minbert ran in bf16 on SetFit's CPU: its wall time is not at SetFit's precision (fp32)
    rows += [row("n8_pairs", "3", 0.90, 1.0, precision="bf16"), row("setfit_n8", "3", 0.10, 1000.0)]
    pairs = next(c for c in contenders(rows, "n8", {"pairs": "n8_pairs"}) if c.label == "pairs")
    assert pairs.against == "+1.00 pts, 0.45x wall (1 split): met" and len(pairs.splits) == 3
    # and a recipe whose every split is such a one says why it has no verdict
    rows += [row("n8_other", "3", 0.50, 1.0, precision="bf16")]
    other = next(c for c in contenders(rows, "n8", {"other": "n8_other"}) if c.label == "other")
    assert other.against == "not judged: no split both ran on one CPU at one precision"


def test_protocol_wall_projects_each_cell_to_every_split():
    from setfit_beside import protocol_wall

    cells = [{"0": (0.8, 1800.0), "1": (0.8, 3600.0)}, {"0": (0.9, 360.0)}]
    # measured 1.6 h; projected 6 x 0.75 h + 6 x 0.1 h = 5.1 h
    assert protocol_wall(cells, 6) == "1.6 h measured over 3 of 12 runs; all of them: 5.1 h"
    assert protocol_wall([*cells, {}], 6).endswith("for the cells with a run (1 of 3 cells not run yet)")
    assert protocol_wall([{}, {}], 6) == "no run yet"
