"""Resumable experiment runs: each finished run appends rows to experiments/results.csv.

A run is identified by (experiment, recipe, checkpoint, seed); one already in results.csv is
skipped, so a sweep interrupted anywhere continues where it stopped when started again. A run
killed part-way resumes from its last epoch checkpoint (train.resume) instead of starting over;
one that finished but never reached results.csv is recorded from its directory (see finished_rows).
Its wall time is the sum over every sitting, killed ones included (see WallClock).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from minbert.config import RunConfig, load_config
from minbert.run import refit, selection_metric, train
from minbert.runtime import cpu_description

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results.csv"
COLUMNS = [
    *("experiment", "recipe", "checkpoint", "seed", "split", "metric", "value", "wall_s", "examples_per_s"),
    *("precision", "cpu"),  # empty in rows from before these were recorded
]
DEFAULT_CHECKPOINT = "all-MiniLM-L6-v2"
RETRAINED_SUFFIX = "_retrained"  # recipe of a run's retrain (see ensure_model)
DATA_DIR = Path(os.environ.get("MINBERT_DATA", REPO.parent / "shared" / "data"))


def runs_dir() -> Path:
    """Where run directories (and their resumable checkpoints) live: MINBERT_EXPERIMENT_RUNS set outside the work
    tree lets a later checkout of the repository resume a long run."""
    return Path(os.environ.get("MINBERT_EXPERIMENT_RUNS", HERE / "runs"))


@dataclass
class Run:
    experiment: str
    recipe: str
    config: Path
    seed: int
    overrides: list[str] = field(default_factory=list)
    checkpoint: str = DEFAULT_CHECKPOINT
    metrics: dict[str, str] | None = None  # results key -> results.csv metric name (default: accuracy, macro_f1)
    refit_of: Run | None = None  # no training: refit this run's trained model's post-hoc steps (`minbert refit`)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.experiment, self.recipe, self.checkpoint, str(self.seed))

    @property
    def output_dir(self) -> Path:
        """runs/<experiment>/<recipe>/seed<n>, with the checkpoint's name inserted for a non-default checkpoint
        (so a base-model run never resumes from a small-model run's checkpoint)."""
        base = runs_dir() / self.experiment / self.recipe
        return (base if self.checkpoint == DEFAULT_CHECKPOINT else base / self.checkpoint) / f"seed{self.seed}"


class WallClock:
    """Wall seconds of one run summed over its sittings. A background thread rewrites this sitting's
    elapsed time to `wall_s.json` in the run directory every `every` seconds, so a sitting that is
    killed still counts (to within `every`) when the run is resumed and finished later."""

    def __init__(self, path: Path, every: float = 30.0) -> None:
        self.path, self.every = path, every
        self.earlier = json.loads(path.read_text()) if path.is_file() else []
        self.started = time.perf_counter()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> WallClock:
        self._write()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self._write()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def total(self) -> float:
        return sum(self.earlier) + self.elapsed()

    def _beat(self) -> None:
        while not self.stopped.wait(self.every):
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps([*self.earlier, round(self.elapsed(), 1)]))
        os.replace(temporary, self.path)


def finished_runs(path: Path = RESULTS) -> set[tuple[str, str, str, str]]:
    if not path.is_file():
        return set()
    with path.open(newline="") as handle:
        return {(r["experiment"], r["recipe"], r["checkpoint"], r["seed"]) for r in csv.DictReader(handle)}


def append_rows(rows: Iterable[dict], path: Path = RESULTS) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")  # the file's own line ends
        if new:
            writer.writeheader()
        writer.writerows(rows)


def read_rows(path: Path = RESULTS, checkpoint: str | None = DEFAULT_CHECKPOINT) -> list[dict]:
    """Rows of one checkpoint (None: all), so a table written for one checkpoint never averages in another's."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if checkpoint is None or row["checkpoint"] == checkpoint]


def checkpoints_in(rows: list[dict]) -> list[str]:
    """The checkpoints that have rows, the default first: the order of a side-by-side table."""
    return sorted({row["checkpoint"] for row in rows}, key=lambda name: (name != DEFAULT_CHECKPOINT, name))


def rehome(config: RunConfig, data_dir: Path = DATA_DIR) -> RunConfig:
    """Configs name ../shared/data; the config with every such path (splits and exclusions, of every task) under
    data_dir instead."""

    def moved(path: Path) -> Path:
        return data_dir / str(path).split("shared/data/", 1)[1] if "shared/data/" in str(path) else path

    return config.map_paths(moved)


def ensure_model(
    run: Run, data_dir: Path = DATA_DIR, retrained_as: tuple[str, str] | None = None, results: Path = RESULTS
) -> list[dict] | None:
    """Train `run` again when its trained model is gone (run directories are not committed).

    Whatever uses the model from now on (a refit, a distillation student) uses the retrain, which may differ
    from the rows on record (another CPU, another precision), so its rows are kept under `retrained_as`
    (experiment, recipe; default the run's own experiment and `<recipe>_retrained`), and as the run's own
    rows if it has none yet. Returns them, or None when the model is there."""
    if (run.output_dir / "model" / "minbert.json").is_file():
        return None
    print(f"    {run.recipe}'s trained model is not in {run.output_dir}: training it first", flush=True)
    rows = execute(replace(run, overrides=[*run.overrides, "--train.overwrite", "true"]), data_dir)
    experiment, recipe = retrained_as or (run.experiment, f"{run.recipe}{RETRAINED_SUFFIX}")
    append_rows([{**r, "experiment": experiment, "recipe": recipe} for r in rows], results)
    if run.key not in finished_runs(results):
        append_rows(rows, results)
    print("    retrained: " + ", ".join(f"{r['split']} {r['metric']} {r['value']}" for r in rows), flush=True)
    return rows


def execute(run: Run, data_dir: Path = DATA_DIR) -> list[dict]:
    """Train one run (or refit another run's model) and return its result rows (dev and test metrics, accuracy
    before training). A refit whose source model is gone (run directories are not committed) trains it first."""
    if run.refit_of is not None:
        source = run.refit_of
        ensure_model(source, data_dir)
        refit_overrides = ["--output_dir", str(run.output_dir), "--train.overwrite", "true", *run.overrides]
        with WallClock(run.output_dir / "wall_s.json") as clock:
            result = refit(source.output_dir, refit_overrides)
        return result_rows(
            run, load_config(run.output_dir / "config.yaml"), result.results, result.summary, clock.total()
        )
    out = run.output_dir
    overrides = [
        "--output_dir",
        str(out),
        "--train.seed",
        str(run.seed),
        "--train.progress",
        "false",
        "--train.resume",
        "true",
        "--model.checkpoint",
        run.checkpoint,
        *run.overrides,
    ]
    config = rehome(load_config(run.config, overrides), data_dir)
    if (out / "results.json").is_file() and (out / "model" / "minbert.json").is_file():
        return finished_rows(run, config, data_dir)
    with WallClock(out / "wall_s.json") as clock:
        result = train(config)
    return result_rows(run, config, result.results, result.summary, clock.total())


# Train settings that change how a run is managed, not what it trains.
RUN_MANAGEMENT = {
    *("resume", "overwrite", "progress", "threads", "device", "eval_batch_size"),
    *("checkpoint_every", "checkpoint_interval_s", "keep_checkpoint"),
}


def finished_rows(run: Run, config: RunConfig, data_dir: Path) -> list[dict]:
    """The rows of a run that finished but never reached results.csv (killed between the two, or trained
    by hand into the run's directory with the recipe's config), read from its results.json instead of
    training it again. Its wall time is wall_s.json's sittings when the runner kept them, else the run's
    own training seconds. A finished run of another config is refused rather than recorded as this recipe."""
    out = run.output_dir
    trained = rehome(load_config(out / "config.yaml"), data_dir)
    # train.metric is compared as the metric it selects on: older config.yaml files wrote the default out
    ignored: dict[str, Any] = {"output_dir": True, "train": {*RUN_MANAGEMENT, "metric"}}
    same = trained.with_absolute_paths().model_dump(exclude=ignored) == config.with_absolute_paths().model_dump(
        exclude=ignored
    ) and selection_metric(trained) == selection_metric(config)
    if not same:
        raise SystemExit(
            f"{out} holds a finished run of another config than recipe {run.recipe!r}'s; move it away or delete it"
        )
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    walls = out / "wall_s.json"
    wall = sum(json.loads(walls.read_text())) if walls.is_file() else float(saved["summary"]["train_seconds"])
    print(f"    {out} holds a finished run: recording it without training again", flush=True)
    return result_rows(run, trained, saved["results"], saved["summary"], wall)


def result_rows(
    run: Run, config: RunConfig, results: dict[str, dict[str, float]], summary: dict[str, Any], wall: float
) -> list[dict]:
    rate = summary["train_examples_per_second"]
    base = {
        "precision": "bf16" if config.train.bf16 else "fp32",
        "cpu": summary.get("cpu") or cpu_description(),  # where it trained (a recorded run may be from elsewhere)
        "experiment": run.experiment,
        "recipe": run.recipe,
        "checkpoint": run.checkpoint,
        "seed": run.seed,
        "wall_s": round(wall, 1),
        "examples_per_s": rate,
    }
    wanted = run.metrics or {"accuracy": "accuracy", "macro_f1": "macro_f1"}
    rows = [
        {**base, "split": split, "metric": name, "value": round(metrics[key], 6)}
        for split, metrics in results.items()
        for key, name in wanted.items()
        if key in metrics
    ]
    if summary.get("dev_accuracy_before_training") is not None:
        rows.append(
            {
                **base,
                "split": "dev",
                "metric": "accuracy_before_finetuning",
                "value": round(summary["dev_accuracy_before_training"], 6),
            }
        )
    return rows


def run_all(runs: list[Run], data_dir: Path = DATA_DIR) -> None:
    done = finished_runs()
    todo = [r for r in runs if r.key not in done]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already in {RESULTS.name}; {len(todo)} to go", flush=True)
    for i, run in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {run.experiment} / {run.recipe} / {run.checkpoint} / seed {run.seed} ...", flush=True)
        rows = execute(run, data_dir)
        append_rows(rows)
        shown = ", ".join(f"{r['split']} {r['metric']} {r['value']}" for r in rows if "macro_f1" not in r["metric"])
        print(f"    {shown} ({rows[0]['wall_s']} s)", flush=True)


def mean_sd(values: list[float]) -> str:
    """Fractions as 'mean ± sd' in percent (just the value for one run)."""
    if not values:
        return "not run yet"
    mean = 100 * statistics.mean(values)
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def write_markdown(name: str, lines: list[str]) -> Path:
    out = HERE / name
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def retarget(run: Run, checkpoint: str | None, bf16: bool, extra: list[str] | None = None) -> Run:
    """The run (and the run it refits) with another checkpoint, bf16 autocast and/or extra config
    overrides (`--train.patience 3`; training settings, so a refit passes them to the run it refits)."""
    if run.refit_of is not None:
        return replace(
            run, checkpoint=checkpoint or run.checkpoint, refit_of=retarget(run.refit_of, checkpoint, bf16, extra)
        )
    added = [*(["--train.bf16", "true"] if bf16 else []), *(extra or [])]
    return replace(run, checkpoint=checkpoint or run.checkpoint, overrides=[*run.overrides, *added])


def main(
    description: str,
    runs: list[Run],
    render: Callable[[], Path],
    beside: Callable[[Run], None] | None = None,
    before: Callable[[Run], None] | None = None,
) -> None:
    """The command line shared by the experiment scripts: run what is missing, re-render after each run.
    `before(run)`, when given, prepares what a selected run that is still to do needs (a teacher, a file);
    `beside(run)` runs a contender on the same split right after each selected run (`--only` runs one side)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--render", action="store_true", help="only render the table from results.csv")
    parser.add_argument("--recipes", nargs="*", help="only these recipes")
    parser.add_argument("--seeds", nargs="*", type=int, help="only these seeds")
    parser.add_argument(
        "--checkpoint", help=f"run with this encoder instead (e.g. all-mpnet-base-v2; default {DEFAULT_CHECKPOINT})"
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (for CPUs with avx512_bf16 or AMX)")
    parser.set_defaults(only=None)
    if beside is not None:
        parser.add_argument(
            "--only",
            choices=["minbert", "contender"],
            help="run only minbert's runs, or only the contender beside them: on a 2-core CPU, one process of each "
            "(in two checkouts, one thread each) halves the wall of a cell whose contender is slow",
        )
    parser.epilog = (
        "Any other arguments are config overrides added to every run, e.g. `--train.patience 3`; a run keeps\n"
        "its results.csv key, so an interrupted run resumes with them (its config.yaml records them)."
    )
    args, extra = parser.parse_known_args()
    if len(extra) % 2 or any(not key.startswith("--") or "." not in key for key in extra[::2]):
        parser.error(f"unrecognized arguments: {' '.join(extra)} (config overrides come in pairs: --train.patience 3)")
    if args.checkpoint or args.bf16 or extra:
        runs = [retarget(run, args.checkpoint, args.bf16, extra) for run in runs]
    if not args.render:
        for run in runs:
            if (not args.recipes or run.recipe in args.recipes) and (not args.seeds or run.seed in args.seeds):
                if args.only != "contender":
                    if before is not None and run.key not in finished_runs():
                        before(run)
                    run_all([run])
                if beside is not None and args.only != "minbert":
                    beside(run)
                render()
    print(render().read_text())
