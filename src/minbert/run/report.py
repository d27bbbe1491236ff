"""report.md of a run: results per task, training summary, setup, curves, and for every classification
head its confusion matrix, most frequent confusions and per-class scores; the out-of-scope scores and
the reliability diagram when the run has them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from minbert.config import RunConfig
from minbert.evaluation.calibration import probabilities_before_calibration
from minbert.evaluation.metrics import confusion, per_class_report
from minbert.evaluation.multilabel import per_label_report
from minbert.evaluation.plots import (
    plot_confusion,
    plot_learning_curves,
    plot_lr_schedule,
    plot_oos_scores,
    plot_reliability,
)
from minbert.evaluation.report import HEADLINE, write_report
from minbert.model.heads import HeadSpec
from minbert.tasks.head_task import Evaluation
from minbert.tasks.posthoc import OosEvaluation
from minbert.training.metrics_log import read_metrics


def describe_head(spec: HeadSpec, pooling: str) -> str:
    """A single-task classifier's head: 'cls pooling -> 512 hidden (relu) -> 60 labels, dropout 0.1'."""
    return f"{pooling} pooling -> {spec.hidden_size or 'no'} hidden ({spec.activation}) -> {len(spec.labels)} labels, dropout {spec.dropout}"


def write_run_report(
    config: RunConfig,
    metric: str,
    output_dir: Path,
    specs: list[HeadSpec],
    evaluations: dict[str, dict[str, Evaluation]],
    results: dict[str, dict[str, float]],
    summary: dict[str, Any],
    rejection: OosEvaluation | None = None,
) -> Path:
    """report.md for any run: results per task, training summary, setup, curves, and for every
    classification head its confusion matrix, most frequent confusions and per-class scores (a multilabel
    head: per-label scores); the out-of-scope scores and the reliability diagram when the run has them."""
    multitask = config.task == "multitask"
    records = read_metrics(output_dir / "metrics.jsonl")
    plots: dict[str, str] = {}
    if any(r["event"] == "dev" for r in records):
        curve = "accuracy" if not multitask and metric == "loss" else metric
        plots["Learning curves"] = plot_learning_curves(records, output_dir / "learning_curves.png", curve).name
    if any(r["event"] == "train" for r in records):
        plots["Learning-rate schedule"] = plot_lr_schedule(records, output_dir / "lr_schedule.png").name
    split = "test" if "test" in evaluations else "dev" if "dev" in evaluations else ""
    per_class, matrices = {}, {}
    for spec in specs:
        evaluation = evaluations.get(split, {}).get(spec.name)
        if spec.kind != "classification" or evaluation is None:
            continue
        if spec.multilabel:
            per_class[spec.name] = per_label_report(evaluation.y_true, evaluation.y_pred, spec.labels)
            continue
        if spec.temperature != 1.0 and evaluation.probabilities is not None:
            before = probabilities_before_calibration(evaluation.probabilities, spec.temperature)
            plots[f"Reliability diagram ({spec.name}, {split})" if multitask else f"Reliability diagram ({split})"] = (
                plot_reliability(
                    before,
                    evaluation.probabilities,
                    np.asarray(evaluation.y_true),
                    output_dir / "reliability.png",
                    spec.temperature,
                ).name
            )
        matrices[spec.name] = confusion(evaluation.y_true, evaluation.y_pred, len(spec.labels))
        per_class[spec.name] = per_class_report(evaluation.y_true, evaluation.y_pred, spec.labels)
        file, caption = (
            (f"confusion_{spec.name}_{split}.png", f"Confusion matrix ({spec.name}, {split})")
            if multitask
            else (f"confusion_{split}.png", f"Confusion matrix ({split})")
        )
        plots[caption] = plot_confusion(matrices[spec.name], spec.labels, output_dir / file, caption).name
    if rejection is not None:
        plots["Out-of-scope scores (test)"] = plot_oos_scores(
            rejection.in_scores,
            rejection.oos_scores,
            specs[0].oos_threshold if not config.data.oos_train else None,
            output_dir / "oos_scores.png",
            specs[0].oos_method if not config.data.oos_train else f"1 - p({config.oos.label})",
        ).name
    if per_class:  # for the model card, which is rebuilt from the run's files alone
        (output_dir / "per_class.json").write_text(
            json.dumps({"split": split, "heads": per_class}, indent=2) + "\n", encoding="utf-8"
        )
    cfg = config.train
    trained = {s.name for s in specs}
    setup: dict[str, Any] = {"checkpoint": config.model.checkpoint}
    for task in config.task_list():
        if task.name in trained:
            setup[f"data ({task.name})" if multitask else "data"] = f"{task.data.train} ({task.data.format})"
    for spec in specs:
        setup[f"head ({spec.name})" if multitask else "head"] = (
            head_kind(spec) if multitask else describe_head(spec, config.model.pooling)
        )
    if multitask:
        setup["shared"] = (
            f"{config.model.pooling} pooling, projection {config.multitask.projection_size or 'none'}, normalize {config.multitask.normalize}"
        )
        setup["sampling"] = (
            f"{config.multitask.sampling}, {config.multitask.steps_per_epoch or 'all batches'} steps per epoch"
        )
    setup.update(
        {
            "epochs / batch": f"{cfg.epochs} / {cfg.batch_size} x {cfg.grad_accum}",
            "optimiser": f"AdamW lr {cfg.lr:g} (head {cfg.head_lr or cfg.lr:g}), wd {cfg.weight_decay:g}, LLRD {cfg.llrd:g}",
            "objective": cfg.objective
            + (f" (lambda {cfg.scl_lambda:g}, tau {cfg.scl_temperature:g})" if cfg.objective == "ce+scl" else ""),
            "contrastive stage": config.contrastive.objective,
            "schedule": f"{cfg.schedule}, warm-up {cfg.warmup_ratio:g}, clip {cfg.max_grad_norm}",
            "freeze / re-init": f"{cfg.freeze} / top {cfg.reinit_top}",
            "seed": cfg.seed,
        }
    )
    rows = []
    for spec in specs if multitask else []:
        first, second = HEADLINE[spec.kind]
        for split_name, metrics in results.items():
            if f"{spec.name}_{first}" in metrics:
                rows.append(
                    [
                        spec.name,
                        head_kind(spec),
                        split_name,
                        f"{first} {metrics[f'{spec.name}_{first}']:.4f}",
                        f"{second} {metrics[f'{spec.name}_{second}']:.4f}",
                    ]
                )
    return write_report(
        output_dir / "report.md",
        title=f"minbert {'multitask ' if multitask else ''}run: {config.output_dir}",
        setup=setup,
        results=results,
        task_rows=rows if multitask else None,
        training=summary,
        per_class=per_class,
        split=split,
        confusions=matrices,
        labels={s.name: s.labels for s in specs},
        plots=plots,
    )


def head_kind(spec: HeadSpec) -> str:
    """'regression, bi, cosine, cosent': what a head reads and how it trains."""
    return f"{spec.kind}, {spec.input}{', ' + spec.features if spec.input == 'bi' else ''}, {spec.loss}"
