"""SetFit beside a minbert run: trained on exactly the rows that run trains on, from the same checkpoint, scored
on the same test rows, one thread on the same CPU. The rows come from minbert's own reading of the run's config
(a published split file, or the seeded per-class sample), so the two contenders never see different data.
Recorded in experiments/results.csv as recipe `setfit_<recipe>` of the run's experiment (accuracy, wall time).
Like minbert's runs it resumes: a SetFit run stopped part-way goes on from its last checkpoint on the same CPU, its
wall time summed over the sittings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from runner import Run, WallClock, append_rows, finished_runs, rehome
from setfit_contender import last_checkpoint, run_setfit

from minbert.config import load_config
from minbert.model.checkpoint import resolve_checkpoint
from minbert.run.inputs import read_run_data
from minbert.runtime import cpu_description


def setfit_rows(run: Run) -> list[dict]:
    """SetFit's test accuracy and wall time on `run`'s training rows (a single-task classification run)."""
    config = rehome(load_config(run.config, [*run.overrides, "--model.checkpoint", run.checkpoint]))
    read = read_run_data(config, run.seed, distill_texts=False)
    task = read.data[read.tasks[0].name]
    if not task.test:
        raise SystemExit(f"{run.config}: SetFit is scored on the test split, and this run has none")
    train = [(e.text, str(e.label)) for e in task.train]
    test = [(e.text, str(e.label)) for e in task.test]
    cpu = cpu_description()
    side = setfit_run(run)
    folder = side.output_dir
    start_afresh_unless(folder, {"checkpoint": run.checkpoint, "seed": run.seed, "cpu": cpu, "rows": [train, test]})
    going_on = last_checkpoint(folder / "checkpoints")
    print(
        f"    {folder}: {f'going on from {going_on.name}' if going_on else 'started'} (progress in setfit.log)",
        flush=True,
    )
    with WallClock(folder / "wall_s.json") as clock:
        result = run_setfit(resolve_checkpoint(run.checkpoint), train, test, seed=run.seed, folder=folder)
    base = {
        "experiment": run.experiment,
        "recipe": side.recipe,
        "checkpoint": run.checkpoint,
        "seed": run.seed,
        "wall_s": round(clock.total(), 1),
        "examples_per_s": "",
        "precision": "fp32",
        "cpu": cpu,
    }
    return [{**base, "split": "test", "metric": "accuracy", "value": round(result["accuracy"], 6)}]


def setfit_recipe(recipe: str) -> str:
    """The results.csv recipe of SetFit's runs beside minbert's `recipe`."""
    return f"setfit_{recipe}"


def setfit_run(run: Run) -> Run:
    """SetFit's side of minbert's `run`: its key in results.csv and its folder beside minbert's run directory."""
    return replace(run, recipe=setfit_recipe(run.recipe))


def start_afresh_unless(folder: Path, sitting: dict) -> None:
    """Empty `folder` unless its earlier sittings trained on the same rows, checkpoint and seed on the same CPU:
    a run goes on only where its wall time and its result would be those of one uninterrupted run."""
    marker = folder / "sitting.sha256"
    digest = hashlib.sha256(json.dumps(sitting, sort_keys=True).encode()).hexdigest()
    if marker.is_file() and marker.read_text() == digest:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    marker.write_text(digest)


def setfit_beside(run: Run) -> None:
    """SetFit on the split minbert's `run` just trained on, unless it is on record already."""
    key = setfit_run(run).key
    if key in finished_runs():
        return
    print(f"SetFit / {run.recipe} / {run.checkpoint} / split {run.seed} ...", flush=True)
    rows = setfit_rows(run)
    append_rows(rows)
    print(f"    test accuracy {rows[0]['value']} ({rows[0]['wall_s']} s)", flush=True)


def test_accuracy_rows(rows: list[dict], recipe: str) -> list[dict]:
    """A recipe's test-accuracy rows (one per split it ran) among results.csv `rows` of one checkpoint."""
    return [r for r in rows if r["recipe"] == recipe and (r["split"], r["metric"]) == ("test", "accuracy")]


def comparable_splits(rows: list[dict], recipe: str, other: str) -> set[str]:
    """The splits both recipes ran on one CPU at one precision: wall times from two CPUs or two precisions do not
    compare (bf16 autocast runs faster where the CPU has it: about 4x on AMX), and fp32 results differ between CPUs
    (AVX2 and AVX-512 kernels round differently)."""
    machine = {r["seed"]: (r.get("cpu"), r.get("precision")) for r in test_accuracy_rows(rows, other)}
    return {
        r["seed"]
        for r in test_accuracy_rows(rows, recipe)
        if r["seed"] in machine and machine[r["seed"]] == (r.get("cpu"), r.get("precision"))
    }


def contender_splits(rows: list[dict], recipe: str) -> tuple[dict[str, tuple[float, float]], str]:
    """A contender's {split: (test accuracy, wall s)} among results.csv `rows` of one checkpoint, and the precision
    and CPU it ran with: what `versus` and the few-shot tables read."""
    done = test_accuracy_rows(rows, recipe)
    machine = "; ".join(sorted({f"{r['precision']}, {r['cpu']}" for r in done if r.get("cpu")}))
    return {r["seed"]: (float(r["value"]), float(r["wall_s"])) for r in done}, machine


def versus(minbert: dict[str, tuple[float, float]], setfit: dict[str, tuple[float, float]]) -> str:
    """minbert against SetFit on the splits both ran ({split: (test accuracy, wall s)}): the accuracy difference in
    points and the wall-time ratio; met when minbert is at least as accurate in at most half the time (the
    few-shot issue's bar)."""
    common = sorted(set(minbert) & set(setfit))
    if not common:
        return ""
    gain = 100 * statistics.mean(minbert[s][0] - setfit[s][0] for s in common)
    ratio = sum(minbert[s][1] for s in common) / sum(setfit[s][1] for s in common)
    verdict = "met" if gain >= 0 and ratio <= 0.5 else "missed"
    return f"{gain:+.2f} pts, {ratio:.2f}x wall ({len(common)} split{'s' if len(common) > 1 else ''}): {verdict}"


@dataclass(frozen=True)
class Contender:
    """One contender's row of a few-shot table: its splits, the machine they ran on, and (minbert) its standing
    against SetFit on the splits both ran."""

    label: str
    splits: dict[str, tuple[float, float]]
    machine: str
    against: str

    @property
    def accuracy(self) -> list[float]:
        return [value for value, _ in self.splits.values()]

    @property
    def wall_text(self) -> str:
        walls = [wall for _, wall in self.splits.values()]
        return f"{statistics.mean(walls) / 60:.1f} min" if walls else ""


def contenders(rows: list[dict], recipe: str, variants: dict[str, str] | None = None) -> list[Contender]:
    """minbert's and SetFit's rows of a few-shot cell, from results.csv `rows` of one checkpoint: minbert's `recipe`,
    then each of its other recipes on the same rows (`variants`, label -> recipe) that has run, then SetFit. A
    minbert recipe is judged against SetFit on the splits both ran on one CPU at one precision
    (`comparable_splits`)."""
    setfit_side = setfit_recipe(recipe)
    setfit, setfit_machine = contender_splits(rows, setfit_side)
    judged = []
    for label, own in [("minbert", recipe), *(variants or {}).items()]:
        splits, machine = contender_splits(rows, own)
        if splits or label == "minbert":
            comparable = comparable_splits(rows, own, setfit_side)
            against = versus({s: v for s, v in splits.items() if s in comparable}, setfit)
            if not against and set(splits) & set(setfit):
                against = "not judged: no split both ran on one CPU at one precision"
            judged.append(Contender(label, splits, machine, against))
    return [*judged, Contender("SetFit", setfit, setfit_machine, "")]


def protocol_wall(cells: list[dict[str, tuple[float, float]]], splits: int) -> str:
    """A contender's wall time for a whole few-shot protocol (`cells`, each {split: (test accuracy, wall s)}, with
    `splits` runs each): measured over the runs done, and projected to every run from each cell's mean run, so a
    reader sees what the full protocol costs on this CPU before launching it."""
    ran = [cell for cell in cells if cell]
    if not ran:
        return "no run yet"
    done = sum(wall for cell in ran for _, wall in cell.values())
    projected = sum(splits * statistics.mean(wall for _, wall in cell.values()) for cell in ran)
    text = (
        f"{done / 3600:.1f} h measured over {sum(map(len, ran))} of {splits * len(cells)} runs; "
        f"all of them: {projected / 3600:.1f} h"
    )
    if len(ran) < len(cells):
        text += f" for the cells with a run ({len(cells) - len(ran)} of {len(cells)} cells not run yet)"
    return text


def protocol_walls(
    cells: dict[tuple[str, str], list[dict[str, tuple[float, float]]]], splits: int, shape: str
) -> list[str]:
    """The few-shot tables' closing lines: `protocol_wall` for each (contender, checkpoint) in `cells`."""
    lines = ["", f"Wall time of the whole protocol ({shape}) on this CPU, one thread per run:"]
    return lines + [
        f"- {label}, {checkpoint}: {protocol_wall(done, splits)}" for (label, checkpoint), done in cells.items()
    ]
