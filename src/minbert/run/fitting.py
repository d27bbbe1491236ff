"""Fitting a model on in-memory examples: heads from the data, the optional contrastive stage, the
training loop, then the post-hoc steps and dev/test scores. The file-based run (`run/file_run.py`) reads
files into `RunData` and calls `fit_run`; the Python API (`minbert.fit`) builds `RunData` from lists and
frames and calls the same function, so both give the same numbers for the same data and seed."""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import torch

from minbert.config import RunConfig
from minbert.data.prepare import TaskData
from minbert.errors import MinbertError
from minbert.model.encoder import Encoder, count_parameters
from minbert.model.heads import HeadSpec
from minbert.model.task_model import Model
from minbert.run.inputs import RunData, partition_unseen
from minbert.run.posthoc import Concluded, conclude
from minbert.runtime import cpu_description
from minbert.tasks.contrastive import contrastive_stage
from minbert.tasks.distillation import Distillation
from minbert.tasks.head_task import HeadTask, model_inputs, targets_of
from minbert.tasks.multitask import MultitaskTask
from minbert.tasks.specs import head_spec
from minbert.training.distributed import is_main
from minbert.training.metrics_log import MetricsLog
from minbert.training.optim import apply_freezing
from minbert.training.trainer import EvaluationHook, FitResult, Trainer

log = logging.getLogger("minbert")


class Fitted(NamedTuple):
    """A fitted run: its heads, the post-hoc steps and scores (None on the other ranks of a multi-process
    run), and the summary of how it went."""

    specs: list[HeadSpec]
    concluded: Concluded | None
    summary: dict[str, Any]


def selection_metric(config: RunConfig) -> str:
    """The dev metric that picks the checkpoint: train.metric, by default accuracy, or overall for a multitask
    run (which selects on overall or loss). Unset stays unset in a saved config.yaml, so a saved multitask
    config runs again as it ran."""
    metric, multitask = config.train.metric, config.task == "multitask"
    if metric is None:
        return "overall" if multitask else "accuracy"
    if multitask and metric not in ("overall", "loss"):
        raise MinbertError(
            f"train.metric {metric} is a classification metric; a multitask run selects on overall or loss"
        )
    return metric


def adapt_encoder(encoder: Encoder, config: RunConfig) -> None:
    """Re-initialise the top layers and set the encoder's dropout, as the config asks."""
    encoder.reinit_top_layers(config.train.reinit_top)
    if config.model.encoder_dropout is not None:
        encoder.set_dropout(config.model.encoder_dropout)


def build_heads(
    model: Model, config: RunConfig, read: RunData, distill: Distillation | None
) -> tuple[list[HeadSpec], RunData]:
    """Every task's head from its config and training rows, checked against every split before anything
    trains, then set on the model; with the data as data.unseen_labels leaves it. The heads are drawn from
    torch's generator as the run seeded it (start_run), after the encoder was built, as minbert always has: a
    checkpoint named by string gives the same heads from Python and from `minbert train`."""
    specs = [head_spec(t, read.data[t.name].all_train) for t in read.tasks]
    if distill is not None:  # the student predicts the teacher's classes, also those its own rows lack
        specs = [distill.adopt_labels(spec) for spec in specs]
    read = partition_unseen(read, specs)
    for spec in specs:  # fail now, on rows the head cannot read or labels it does not know
        for part in read.data[spec.name][:3]:
            if part:
                model_inputs(spec, part)
                targets_of(spec, part)
    model.set_heads(specs, projection_size=config.multitask.projection_size, normalize=config.multitask.normalize)
    return specs, read


def load_teacher(config: RunConfig) -> Distillation | None:
    """The distillation teacher the config names, loaded before the student is built (the order the run's
    random draws have always followed)."""
    if config.distill.teacher is None:
        return None
    return Distillation.load(config.distill.teacher, config.distill.alpha, config.distill.temperature)


def build_model(config: RunConfig) -> tuple[Model, Distillation | None]:
    """The student (heads come later, in fit_run) and its teacher, from the config: the teacher first, as the
    run's random draws have always followed, so the file run and `minbert.fit` give the same numbers."""
    teacher = load_teacher(config)
    model = Model.from_checkpoint(
        config.model.checkpoint, pooling=config.model.pooling, max_length=config.model.max_length
    )
    return model, teacher


def fit_run(
    model: Model,
    config: RunConfig,
    read: RunData,
    metrics_log: MetricsLog,
    device: torch.device,
    checkpoints: Path | None = None,
    on_evaluate: EvaluationHook | None = None,
    distill: Distillation | None = None,
) -> Fitted:
    """Train `model` (its heads built here) on `read`, keep the best dev state, then conclude. `distill`: the
    teacher, when the caller loaded it already (see load_teacher)."""
    multitask = config.task == "multitask"
    metric = selection_metric(config)
    cfg = config.train.model_copy(update={"metric": metric})
    distill = distill if distill is not None else load_teacher(config)
    specs, read = build_heads(model, config, read, distill)
    adapt_encoder(model.encoder, config)
    data = read.data
    resumed_past_stage = cfg.resume and checkpoints is not None and (checkpoints / "trainer.pt").is_file()
    if config.contrastive.objective != "none" and not resumed_past_stage:
        contrastive_stage(model, specs, data, config, metrics_log, device, checkpoints)
    apply_freezing(model, cfg.freeze)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "model: %s, %d parameters (%d trainable), device %s, heads: %s",
        config.model.checkpoint,
        count_parameters(model),
        trainable,
        device,
        ", ".join(f"{s.name} ({s.kind}, {s.input}, {s.loss})" for s in specs),
    )
    scl = (cfg.scl_lambda, cfg.scl_temperature) if cfg.objective == "ce+scl" else None
    if scl is not None and not any(s.loss == "ce" for s in specs):
        multilabel = (
            " (a multilabel head trains with bce: use train.objective ce)" if any(s.multilabel for s in specs) else ""
        )
        raise MinbertError(
            f"train.objective ce+scl adds a contrastive term to cross-entropy heads, and no head has loss ce{multilabel}"
        )
    head_tasks = [
        HeadTask(
            spec,
            model,
            data[spec.name].train,
            data[spec.name].dev,
            batch_size=cfg.batch_size,
            eval_batch_size=cfg.eval_batch_size,
            seed=cfg.seed,
            bucket=cfg.bucket,
            bf16=cfg.bf16,
            cache_features=cfg.cache_features,
            scl=scl if spec.loss == "ce" else None,
            distill=distill,
            unlabelled=read.unlabelled,
            weights=cfg.class_weights,
        )
        for spec in specs
    ]
    mixed = MultitaskTask(
        head_tasks,
        weights={t.name: t.weight for t in read.tasks},
        sampling=config.multitask.sampling,
        steps_per_epoch=config.multitask.steps_per_epoch,
        epochs=cfg.epochs,
        seed=cfg.seed,
        prefixed=multitask,
    )
    advise_small_data(specs, data, cfg.epochs, cfg.batch_size * cfg.grad_accum, cfg.patience)
    if trainable:
        fit = Trainer(model, mixed, cfg, metrics_log, device, checkpoint_dir=checkpoints, on_evaluate=on_evaluate).fit()
        advise_after_fit(specs, data, fit, metric, cfg.epochs, cfg.batch_size * cfg.grad_accum)
    else:
        log.warning(
            "train.freeze %s: nothing is trainable, so nothing trains; the results are the untrained model's",
            cfg.freeze,
        )
        fit = FitResult(None, 0, 0.0, 0, False, 0.0, 0)
        model.to(device).eval()
    if not is_main():  # multi-process training: rank 0 evaluates, saves and reports
        return Fitted(specs, None, {})
    known = [encoded for task in head_tasks for encoded in task.encoded()]
    concluded = conclude(model, specs, read, config, metrics_log, fit.steps, known)
    summary = run_summary(config, read, specs, mixed.num_train_examples, concluded.posthoc)
    before = fit.evaluations[0] if cfg.eval_before and fit.evaluations else None
    before_metric = metric if multitask else "accuracy"
    summary[f"dev_{before_metric}_before_training"] = before.get(before_metric) if before else None
    summary.update(fit_summary(fit, metric, trainable, device))
    return Fitted(specs, concluded, summary)


# Below these, a classifier usually underfits: few examples per class and few optimizer steps in all.
SMALL_DATA_PER_CLASS = 20
ENOUGH_STEPS = 300


def few_per_class(spec: HeadSpec, data: dict[str, TaskData]) -> tuple[int, int] | None:
    """(rows, median examples per class) of a single-label classifier trained on small data, else None."""
    if spec.kind != "classification" or spec.multilabel:
        return None
    rows = data[spec.name].train
    counts = sorted(Counter(str(e.label) for e in rows).values())
    per_class = counts[len(counts) // 2] if counts else 0
    return (len(rows), per_class) if per_class < SMALL_DATA_PER_CLASS else None


def epochs_for_enough_steps(rows: int, batch: int) -> int:
    """The epochs that give `rows` examples at `batch` about ENOUGH_STEPS optimizer steps (at most 100)."""
    return min(100, math.ceil(ENOUGH_STEPS / max(1, math.ceil(rows / batch))))


def longer(epochs: int) -> str:
    """The remedy both small-data warnings name, for the command line and the Python API."""
    return (
        f"train longer: --train.epochs {epochs} with early stopping on dev (--train.patience 3) "
        f"(Python: epochs={epochs}, patience=3)"
    )


def advise_small_data(
    specs: list[HeadSpec], data: dict[str, TaskData], epochs: int, batch: int, patience: int | None
) -> None:
    """Say in the log, before training, what to change when a classifier has few examples per class and a
    fixed-length recipe gives it few optimizer steps (10 per class for 3 epochs at batch 32 is a few dozen steps:
    the model underfits). With early stopping on, `advise_after_fit` judges from the dev curve instead: a fast
    learning rate can fit small data in fewer steps than this rule of thumb assumes."""
    for spec in specs:
        small = few_per_class(spec, data)
        if small is None or (patience and data[spec.name].dev):
            continue
        rows, per_class = small
        steps = epochs * math.ceil(rows / batch)
        if steps >= ENOUGH_STEPS:
            continue
        log.warning(
            "task %s: small data (%d rows, about %d per class) and %d epochs give only %d optimizer steps, so the "
            "model will likely underfit; %s",
            spec.name,
            rows,
            per_class,
            epochs,
            steps,
            longer(epochs_for_enough_steps(rows, batch)),
        )


def advise_after_fit(
    specs: list[HeadSpec], data: dict[str, TaskData], fit: FitResult, metric: str, epochs: int, batch: int
) -> None:
    """Say in the log when a small-data classifier was still improving on dev when its epochs ran out: the
    observed sign of underfitting, which the step-count rule before training can only guess at."""
    if fit.best_metric is None or fit.stopped_early or fit.best_step < fit.steps:
        return
    for spec in specs:
        small = few_per_class(spec, data)
        if small is not None:
            log.warning(
                "task %s: small data (%d rows, about %d per class) and dev %s still improved at the last "
                "evaluation (epoch %d of %d), so the model likely underfit; %s",
                spec.name,
                *small,
                metric,
                epochs,
                epochs,
                longer(max(2 * epochs, epochs_for_enough_steps(small[0], batch))),
            )


def run_summary(
    config: RunConfig,
    read: RunData,
    specs: list[HeadSpec],
    train_examples: int,
    posthoc: dict[str, Any],
) -> dict[str, Any]:
    """What the run trained on and what the post-hoc steps chose, for results.json and the report."""
    multitask = config.task == "multitask"
    summary: dict[str, Any] = {}
    if multitask:
        summary["tasks"] = ", ".join(s.name for s in specs)
        summary["skipped_tasks"] = "; ".join(f"{k}: {v}" for k, v in read.skipped.items()) or "none"
    summary["train_examples"] = train_examples
    for split_index, split in ((1, "dev"), (2, "test")):
        rows = sum(len(read.data[s.name][split_index] or []) for s in specs)
        if rows:
            summary[f"{split}_examples"] = rows
    summary |= {k: v for k, v in posthoc.items() if not k.startswith("dev_")}
    if "dev_ece_before_calibration" in posthoc:
        summary["dev_ece_before_calibration"] = posthoc["dev_ece_before_calibration"]
    if config.distill.teacher is not None:
        summary["distilled_from"] = (
            f"{config.distill.teacher} (alpha {config.distill.alpha:g}, T {config.distill.temperature:g}"
            + (f", {len(read.unlabelled)} unlabelled texts" if read.unlabelled else "")
            + ")"
        )
    if not multitask:
        summary["labels"] = len(specs[0].labels)
    return summary


def fit_summary(fit: FitResult, metric: str, trainable: int, device: torch.device) -> dict[str, Any]:
    """How training went, for results.json and the report (the same keys for every kind of run)."""
    return {
        "steps": fit.steps,
        "best_step": fit.best_step,
        "best_epoch": round(fit.best_epoch, 2),
        f"best_dev_{metric}": fit.best_metric,
        "stopped_early": fit.stopped_early,
        "train_seconds": round(fit.train_seconds, 1),
        "train_examples_per_second": round(fit.examples_per_second, 1),
        "trainable_parameters": trainable,
        "device": str(device),
        "cpu": cpu_description(),
    }
