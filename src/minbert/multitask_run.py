"""A multitask run (`task: multitask`): one encoder, one head per entry of `tasks:`, one output directory.

Also the way to train a single pair task (a one-entry list). The output directory is laid out like a
classification run's (config.yaml, metrics.jsonl, results.json, report.md, learning_curves.png, model/).
A task whose train file is missing is reported and left out; the other tasks still train.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from minbert.config import RunConfig, TaskConfig
from minbert.data.labels import LabelVocab
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.evaluate.plots import plot_learning_curves, plot_lr_schedule
from minbert.evaluate.report import markdown_table
from minbert.model.encoder import count_parameters
from minbert.model.multitask_model import HeadSpec, MultitaskModel
from minbert.tasks.head_task import HeadTask, score_examples
from minbert.tasks.multitask import MultitaskTask, overall_score
from minbert.train.distributed import is_main
from minbert.train.metrics_log import MetricsLog, read_metrics
from minbert.train.optim import apply_freezing
from minbert.train.trainer import FitResult, Trainer

log = logging.getLogger("minbert")

HEADLINE = {"classification": ("accuracy", "macro_f1"), "regression": ("pearson", "spearman")}


def read_task(task: TaskConfig, seed: int) -> tuple[list[Example], list[Example] | None, list[Example] | None] | str:
    """(train, dev, test) of one task, or why the task cannot train (a missing train file)."""
    from minbert.run import prepare_train, read_splits

    if task.data.train is None:
        raise MinbertError(f"task {task.name!r}: no data.train; set it (--tasks.{task.name}.data.train PATH)")
    if not Path(task.data.train).exists():
        return f"train file {task.data.train} not found"
    train, dev, test = read_splits(task.data, seed)
    return prepare_train(train, task.data, seed), dev, test


def head_spec(task: TaskConfig, train: list[Example]) -> HeadSpec:
    head = task.head
    labels = LabelVocab.from_examples(train).labels if head.kind == "classification" else []
    return HeadSpec(
        name=task.name, kind=head.kind, input=head.input, features=head.features, loss=head.loss, labels=labels,
        hidden_size=head.hidden_size, dropout=head.dropout, target_range=list(head.target_range),
    )


def train_multitask(config: RunConfig, output_dir: Path, on_evaluate: Callable[[int, dict[str, float]], None] | None = None) -> Any:
    from minbert.run import (
        CHECKPOINT_DIR,
        RunResult,
        adapt_encoder,
        finish_checkpoints,
        fit_summary,
        resuming,
        start_run,
        write_results,
    )

    cfg = config.train
    device = start_run(config, output_dir)
    if cfg.metric not in ("overall", "loss"):
        if "metric" in cfg.model_fields_set:
            raise MinbertError(f"train.metric {cfg.metric} is a classification metric; a multitask run selects on overall or loss")
        cfg = cfg.model_copy(update={"metric": "overall"})

    data: dict[str, tuple[list[Example], list[Example] | None, list[Example] | None]] = {}
    skipped: dict[str, str] = {}
    for task in config.tasks:
        read = read_task(task, cfg.seed)
        if isinstance(read, str):
            log.warning("task %s: %s; it is left out of this run (fix tasks.%s.data.train, or remove the task)", task.name, read, task.name)
            skipped[task.name] = read
            continue
        data[task.name] = read
        log.info("task %s: %d train, %d dev, %d test examples", task.name, *(len(part or []) for part in read))
    if not data:
        raise MinbertError(f"no task has training data: {'; '.join(f'{k}: {v}' for k, v in skipped.items())}")
    tasks = [t for t in config.tasks if t.name in data]
    specs = [head_spec(t, data[t.name][0]) for t in tasks]

    model = MultitaskModel.from_checkpoint(
        config.model.checkpoint, specs, pooling=config.model.pooling, projection_size=config.multitask.projection_size,
        normalize=config.multitask.normalize, max_length=config.model.max_length,
    )
    adapt_encoder(model.encoder, config)
    apply_freezing(model, cfg.freeze)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("model: %s, %d parameters (%d trainable), device %s, heads: %s", config.model.checkpoint, count_parameters(model), trainable, device,
             ", ".join(f"{s.name} ({s.kind}, {s.input}, {s.loss})" for s in specs))
    head_tasks = [
        HeadTask(spec, model.tokenizer, data[spec.name][0], data[spec.name][1], batch_size=cfg.batch_size,
                 eval_batch_size=cfg.eval_batch_size, seed=cfg.seed, bucket=cfg.bucket)
        for spec in specs
    ]
    mixed = MultitaskTask(
        head_tasks, weights={t.name: t.weight for t in tasks}, sampling=config.multitask.sampling,
        steps_per_epoch=config.multitask.steps_per_epoch, epochs=cfg.epochs, seed=cfg.seed,
    )
    checkpoints = output_dir / CHECKPOINT_DIR
    metrics_log = MetricsLog(output_dir / "metrics.jsonl", tensorboard=cfg.tensorboard, append=resuming(cfg, checkpoints))
    try:
        if trainable:
            fit = Trainer(model, mixed, cfg, metrics_log, device, checkpoint_dir=checkpoints, on_evaluate=on_evaluate).fit()
        else:
            log.warning("train.freeze %s: nothing is trainable, so nothing trains; the results are the untrained model's", cfg.freeze)
            fit = FitResult(None, 0, 0.0, 0, False, 0.0, 0)
            model.to(device).eval()
        if not is_main():  # multi-process training: rank 0 evaluates, saves and reports
            return RunResult(output_dir, model, {}, {})
        results: dict[str, dict[str, float]] = {}
        for split_index, split in ((1, "dev"), (2, "test")):
            per_task = {}
            for spec in specs:
                examples = data[spec.name][split_index]
                if examples:
                    per_task[spec.name] = score_examples(spec, model, examples, cfg.eval_batch_size)
            if per_task:
                results[split] = {f"{name}_{k}": v for name, m in per_task.items() for k, v in m.items()}
                results[split]["overall"] = overall_score(per_task)
                metrics_log.write(f"final_{split}", fit.steps, **results[split])
    finally:
        metrics_log.close()

    model.save(output_dir / "model")
    finish_checkpoints(cfg, checkpoints)
    before = fit.evaluations[0] if cfg.eval_before and fit.evaluations else None
    summary = {
        "tasks": ", ".join(s.name for s in specs),
        "skipped_tasks": "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "none",
        "train_examples": mixed.num_train_examples,
        f"dev_{cfg.metric}_before_training": before[cfg.metric] if before else None,
        **fit_summary(fit, cfg.metric, trainable, device),
    }
    write_results(output_dir, results, summary)
    write_multitask_report(config, cfg.metric, output_dir, specs, results, summary)
    return RunResult(output_dir, model, results, summary)


def write_multitask_report(
    config: RunConfig, metric: str, output_dir: Path, specs: list[HeadSpec], results: dict[str, dict[str, float]], summary: dict[str, Any]
) -> Path:
    records = read_metrics(output_dir / "metrics.jsonl")
    plots = {"Learning curves": plot_learning_curves(records, output_dir / "learning_curves.png", metric).name} if any(r["event"] == "dev" for r in records) else {}
    if any(r["event"] == "train" for r in records):
        plots["Learning-rate schedule"] = plot_lr_schedule(records, output_dir / "lr_schedule.png").name
    rows = []
    for spec in specs:
        first, second = HEADLINE[spec.kind]
        for split, metrics in results.items():
            if f"{spec.name}_{first}" in metrics:
                rows.append([spec.name, f"{spec.kind}, {spec.input}{', ' + spec.features if spec.input == 'bi' else ''}, {spec.loss}", split,
                             f"{first} {metrics[f'{spec.name}_{first}']:.4f}", f"{second} {metrics[f'{spec.name}_{second}']:.4f}"])
    overall = [[split, m["overall"]] for split, m in results.items()]
    cfg = config.train
    setup = {
        "checkpoint": config.model.checkpoint,
        "shared": f"{config.model.pooling} pooling, projection {config.multitask.projection_size or 'none'}, normalize {config.multitask.normalize}",
        "sampling": f"{config.multitask.sampling}, {config.multitask.steps_per_epoch or 'all batches'} steps per epoch",
        "epochs / batch": f"{cfg.epochs} / {cfg.batch_size} x {cfg.grad_accum}",
        "optimiser": f"AdamW lr {cfg.lr:g} (heads {cfg.head_lr or cfg.lr:g}), wd {cfg.weight_decay:g}, LLRD {cfg.llrd:g}",
        "schedule": f"{cfg.schedule}, warm-up {cfg.warmup_ratio:g}",
        "freeze": cfg.freeze,
        "seed": cfg.seed,
    }
    parts = [f"# minbert multitask run: {config.output_dir}", "", "## Results", "",
             markdown_table(["task", "head", "split", "metric", "metric"], rows), "",
             "Overall = mean over tasks of accuracy or (Pearson + 1) / 2 (the CS224N score for SST + Quora + STS).", "",
             markdown_table(["split", "overall"], overall), "",
             "## Training", "", markdown_table(["", ""], list(summary.items())), "",
             "## Setup", "", markdown_table(["", ""], list(setup.items())), ""]
    for caption, file in plots.items():
        parts += [f"### {caption}", "", f"![{caption}]({file})", ""]
    path = output_dir / "report.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
