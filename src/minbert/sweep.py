"""Hyperparameter search (`minbert sweep`): Optuna trials, each a full training run.

    output_dir/
      sweep.db          the Optuna study (default SQLite; any SQLAlchemy URL via sweep.storage, e.g.
                        PostgreSQL, so several machines can run trials of one study at once)
      trial_000/ ...    each trial's run directory (report, metrics; model/ only for the best unless keep_models)
      trials.csv        every trial: number, state, value, parameters, wall time
      sweep.md          the table, best first, and the plot
      sweep.png         dev metric per trial, and the running best

The search space is the config's `sweep.params` (dotted config fields). Each trial reports its dev
metric after every evaluation; the median pruner stops trials that fall behind earlier ones.
Running the command again adds trials to the same study.

Several workers (processes or machines) share one study through a database URL: trial numbers,
parameters, intermediate values (so pruning decisions) come from it. A running trial beats a
heartbeat; a worker killed mid-trial stops beating, and the next worker to start a trial marks
that one failed. A worker only ever deletes the models of finished trials, never a running one's.
"""

from __future__ import annotations

import csv
import difflib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minbert.config import ParamSpec, RunConfig, build_config, field_paths, merge
from minbert.errors import MinbertError
from minbert.evaluation.report import markdown_table
from minbert.run import selection_metric, train

log = logging.getLogger("minbert")


@dataclass
class SweepResult:
    output_dir: Path
    best_value: float | None
    best_params: dict[str, Any]
    trials: int

    @property
    def report_path(self) -> Path:
        return self.output_dir / "sweep.md"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise MinbertError("minbert sweep needs Optuna: pip install 'minbert[sweep]'") from None
    return optuna


def suggest(trial: Any, name: str, spec: ParamSpec) -> Any:
    if spec.type == "categorical":
        return trial.suggest_categorical(name, spec.choices)
    if spec.type == "int":
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)  # type: ignore[arg-type]
    return trial.suggest_float(name, spec.low, spec.high, log=spec.log)


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        section = out
        *parents, leaf = key.split(".")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[leaf] = value
    return out


def trial_config(config: RunConfig, params: dict[str, Any], output_dir: Path) -> RunConfig:
    raw = merge(config.model_dump(mode="json"), nested(params))
    raw["output_dir"] = str(output_dir)
    return build_config(raw, source=f"sweep trial {output_dir.name}")


def sampler_seed(config: RunConfig) -> int:
    """train.seed for a lone worker; workers sharing a study must not share a seed, or they would all
    propose the same parameters (the random start-up trials first)."""
    sweep = config.sweep
    if sweep.worker is not None:
        return config.train.seed + sweep.worker
    if sweep.storage is None:  # the study file in output_dir: one worker
        return config.train.seed
    seed = config.train.seed + os.getpid()
    log.warning(
        "sweep.storage is shared and sweep.worker is unset: this worker's sampler is seeded from its process id (%d); "
        "give each worker --sweep.worker 0, 1, ... for reproducible proposals",
        seed,
    )
    return seed


def open_storage(url: str, heartbeat_s: int, attempts: int = 5) -> Any:
    """The study database, or a one-line error. Workers that start together on an empty database race to
    create Optuna's tables (one gets a duplicate-key error): the loser retries and finds them made."""
    optuna = _optuna()
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_s, grace_period=2 * heartbeat_s)
        except ModuleNotFoundError as e:
            raise MinbertError(
                f"sweep.storage {url}: its database driver {e.name!r} is not installed "
                "(PostgreSQL: pip install 'psycopg[binary]')"
            ) from None
        except Exception as e:  # SQLAlchemy's errors: a bad URL, a refused connection, a missing database, the race
            if attempt + 1 < attempts:
                time.sleep(0.5 * (attempt + 1))
                continue
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MinbertError(f"sweep.storage {url}: cannot open the study database ({reason})") from None
    raise AssertionError("unreachable")


def run_sweep(config: RunConfig, trials: int | None = None) -> SweepResult:

    optuna = _optuna()
    sweep = config.sweep
    if not sweep.params:
        raise MinbertError(
            "sweep.params is empty: give the search space, e.g. sweep: {params: {train.lr: {type: float, low: 1e-5, high: 1e-4, log: true}}}"
        )
    known = field_paths()
    for name in sweep.params:
        if name not in known or name.startswith("sweep."):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else " (dotted names such as train.lr, model.hidden_size)"
            raise MinbertError(f"sweep.params: {name!r} is not a config field{hint}")
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metric = selection_metric(config)
    storage = open_storage(sweep.storage or f"sqlite:///{(output_dir / 'sweep.db').resolve()}", sweep.heartbeat_s)
    seed = sampler_seed(config)
    sampler = (
        optuna.samplers.TPESampler(seed=seed) if sweep.sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2) if sweep.pruner == "median" else optuna.pruners.NopPruner()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=sweep.study_name or output_dir.name,
        storage=storage,
        direction=sweep.direction,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )

    def objective(trial: Any) -> float:
        params = {name: suggest(trial, name, spec) for name, spec in sweep.params.items()}
        run_dir = output_dir / f"trial_{trial.number:03d}"
        log.info("trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in params.items()))

        def report(step: int, metrics: dict[str, float]) -> None:
            trial.report(metrics[metric], step)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"dev {metric} {metrics[metric]:.4f} at step {step} is below the median of earlier trials"
                )

        started = time.perf_counter()
        result = train(trial_config(config, params, run_dir), on_evaluate=report)
        trial.set_user_attr("wall_s", round(time.perf_counter() - started, 1))
        value = result.summary.get(f"best_dev_{metric}")
        if value is None:
            raise MinbertError("sweep trials need a dev set to score: set data.dev (or data.split)")
        return float(value)

    study.optimize(objective, n_trials=trials or sweep.trials, catch=())
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if finished else None
    if best is not None and not sweep.keep_models:
        for trial in study.trials:  # another worker's running trial may be about to become the best: leave it
            model_dir = output_dir / f"trial_{trial.number:03d}" / "model"
            if trial.state.is_finished() and trial.number != best.number and model_dir.is_dir():
                shutil.rmtree(model_dir)
    write_sweep_report(study, output_dir, metric, sweep.direction)
    return SweepResult(output_dir, best.value if best else None, best.params if best else {}, len(study.trials))


def write_sweep_report(study: Any, output_dir: Path, metric: str, direction: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({name for t in study.trials for name in t.params})
    rows = [
        [t.number, t.state.name.lower(), t.value, *(t.params.get(n) for n in names), t.user_attrs.get("wall_s")]
        for t in study.trials
    ]
    with (output_dir / "trials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trial", "state", f"dev_{metric}", *names, "wall_s"])
        writer.writerows(rows)
    done = [t for t in study.trials if t.value is not None]
    fig, axis = plt.subplots(figsize=(7, 4))
    if done:
        values = [t.value for t in done]
        running = [
            max(values[: i + 1]) if direction == "maximize" else min(values[: i + 1]) for i in range(len(values))
        ]
        axis.plot([t.number for t in done], values, "o", label=f"trial dev {metric}")
        axis.step([t.number for t in done], running, where="post", label="best so far")
    pruned = [t for t in study.trials if t.state.name == "PRUNED" and t.intermediate_values]
    if pruned:
        axis.plot(
            [t.number for t in pruned],
            [list(t.intermediate_values.values())[-1] for t in pruned],
            "x",
            color="grey",
            label="pruned (last report)",
        )
    axis.set(xlabel="trial", ylabel=f"dev {metric}", title="Sweep")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output_dir / "sweep.png", dpi=110)
    plt.close(fig)
    ordered = sorted(rows, key=lambda r: (r[2] is None, -(r[2] or 0) if direction == "maximize" else (r[2] or 0)))
    lines = [
        f"# Sweep: {output_dir}",
        "",
        f"{len(study.trials)} trials, dev {metric} ({direction}), best first.",
        "",
        markdown_table(
            ["trial", "state", f"dev {metric}", *names, "wall s"],
            [["" if v is None else v for v in r] for r in ordered],
        ),
        "",
        "![sweep](sweep.png)",
        "",
    ]
    path = output_dir / "sweep.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
