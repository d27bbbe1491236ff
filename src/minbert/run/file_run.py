"""`minbert train CONFIG`: read the files the config names, fit (run/fitting.py), and write the run directory.

    output_dir/
      config.yaml     the resolved config, input paths absolute (re-run with `minbert train output_dir/config.yaml`)
      metrics.jsonl   every train step and dev evaluation
      results.json    final dev/test metrics, timings
      report.md       the page to read; plots beside it
      train.log
      model/          the best checkpoint (reload with `minbert.load(output_dir)`)
      checkpoint/     while training: the state `--train.resume true` continues from after a kill

A single-task config is a one-entry task list (`RunConfig.task_list`); its metrics keep plain names
(accuracy), a multitask run's are per task (sst_accuracy) plus `overall`. A multitask task whose train
file is missing is reported and left out; the other tasks still train.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from minbert.card import write_card
from minbert.config import RunConfig
from minbert.errors import MinbertError
from minbert.model.task_model import Model
from minbert.run.directory import (
    CHECKPOINT_DIR,
    claim_output_dir,
    finish_checkpoints,
    logged_run,
    resuming,
    start_run,
    write_results,
)
from minbert.run.fitting import Fitted, build_model, fit_run, selection_metric
from minbert.run.inputs import RunData, read_run_data
from minbert.run.report import write_run_report
from minbert.run.result import RunResult
from minbert.tasks.distillation import Distillation
from minbert.training.distributed import is_main
from minbert.training.metrics_log import MetricsLog
from minbert.training.trainer import EvaluationHook


def check_runnable(config: RunConfig) -> None:
    if config.task == "multitask" and not config.tasks:
        raise MinbertError(
            "task multitask needs a tasks: list (name, data, head for each; see configs/cs224n_multitask.yaml)"
        )
    if config.task == "classification" and config.data.train is None:
        raise MinbertError("no training data: set data.train (e.g. --data.train path/to/train.jsonl)")


def train(config: RunConfig, on_evaluate: EvaluationHook | None = None) -> RunResult:
    """Read data, fine-tune, keep the best dev checkpoint, evaluate, save and report.
    `on_evaluate(step, dev_metrics)` is called after each dev evaluation (sweeps prune with it)."""
    check_runnable(config)
    output_dir = Path(config.output_dir)
    if is_main():
        claim_output_dir(output_dir, config.train)
    if not is_main():  # other ranks of a multi-process run: warnings only, no train.log of their own
        logging.getLogger("minbert").setLevel(logging.WARNING)
    with logged_run(output_dir, config.train):
        device = start_run(config, output_dir)
        read = read_run_data(config, config.train.seed)
        model, teacher = build_model(config)
        return fit_and_write(model, config, read, output_dir, device, on_evaluate, teacher)


def fit_and_write(
    model: Model,
    config: RunConfig,
    read: RunData,
    output_dir: Path | None,
    device: torch.device,
    on_evaluate: EvaluationHook | None = None,
    teacher: Distillation | None = None,
) -> RunResult:
    """Fit, then (with an output_dir) save the model, results.json, report.md and the model card. The Python
    API's `fit` comes here too, with or without an output_dir."""
    checkpoints = output_dir / CHECKPOINT_DIR if output_dir is not None else None
    metrics_log = MetricsLog(
        output_dir / "metrics.jsonl" if output_dir is not None else None,
        tensorboard=config.train.tensorboard,
        append=resuming(config.train, checkpoints),
    )
    try:
        fitted = fit_run(model, config, read, metrics_log, device, checkpoints, on_evaluate, teacher)
    finally:
        metrics_log.close()
    if fitted.concluded is None:  # another rank of a multi-process run
        return RunResult(output_dir, model, {}, {})
    if output_dir is not None:
        write_run(model, config, fitted, output_dir, checkpoints)
    return RunResult(output_dir, model, fitted.concluded.results, fitted.summary, metrics_log.records)


def write_run(model: Model, config: RunConfig, fitted: Fitted, output_dir: Path, checkpoints: Path | None) -> None:
    """The run directory's files after training: model/, results.json, report.md and plots, the card."""
    assert fitted.concluded is not None
    _, evaluations, results, rejection = fitted.concluded
    model.save(output_dir / "model")
    if checkpoints is not None:
        finish_checkpoints(config.train, checkpoints)
    metric = selection_metric(config)
    write_results(output_dir, results, fitted.summary)
    write_run_report(config, metric, output_dir, fitted.specs, evaluations, results, fitted.summary, rejection)
    write_card(output_dir)
