"""One training run = one output directory.

    output_dir/
      config.yaml     the resolved config (re-run with `minbert train output_dir/config.yaml`)
      metrics.jsonl   every train step and dev evaluation
      results.json    final dev/test metrics, timings
      report.md       the page to read; plots beside it
      train.log
      model/          the best checkpoint (reload with `minbert.load(output_dir)`)
      checkpoint/     while training: the state `--train.resume true` continues from after a kill
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from minbert.config import DataConfig, RunConfig, TrainConfig
from minbert.data.labels import LabelVocab
from minbert.data.overlap import drop_overlap
from minbert.data.readers import Example, read_examples, subsample
from minbert.data.sampling import few_shot_sample, inject_label_noise, split_examples
from minbert.errors import MinbertError
from minbert.evaluate.metrics import confusion, per_class_report, regression_metrics
from minbert.evaluate.plots import plot_confusion, plot_learning_curves, plot_lr_schedule
from minbert.evaluate.report import write_report
from minbert.model.backends import TORCH_BACKENDS, load_classifier, load_torch
from minbert.model.encoder import Encoder, count_parameters
from minbert.model.multitask_model import MultitaskModel
from minbert.model.sentence_encoder import SentenceEncoder
from minbert.model.task_model import SequenceClassifier
from minbert.runtime import resolve_device, seed_everything, set_threads
from minbert.tasks.classification import ClassificationTask, Evaluation, evaluate_examples
from minbert.tasks.contrastive import ContrastiveModel, ContrastiveTask
from minbert.tasks.head_task import score_examples
from minbert.train.distributed import is_main
from minbert.train.metrics_log import MetricsLog, read_metrics
from minbert.train.optim import apply_freezing
from minbert.train.trainer import FitResult, Trainer

log = logging.getLogger("minbert")
CHECKPOINT_DIR = "checkpoint"  # output_dir/checkpoint/: the resumable training state (see train/resume.py)


@dataclass
class RunResult:
    output_dir: Path
    model: SequenceClassifier | MultitaskModel
    results: dict[str, dict[str, float]]
    summary: dict[str, Any]

    @property
    def report_path(self) -> Path:
        return self.output_dir / "report.md"


def read_split(data: DataConfig, split: str, require_labels: bool = True) -> list[Example] | None:
    path = getattr(data, split)
    if path is None:
        return None
    return read_examples(
        path,
        data.format,
        text_column=data.text_column,
        label_column=data.label_column,
        text_pair_column=data.text_pair_column,
        split=split,
        require_labels=require_labels,
        skip_bad_rows=data.skip_bad_rows,
    )


def read_splits(data: DataConfig, seed: int) -> tuple[list[Example], list[Example] | None, list[Example] | None]:
    """(all of train, dev, test): from their files, or (data.split) seeded parts of the train file."""
    train = read_split(data, "train")
    assert train is not None
    if data.split is None:
        return train, read_split(data, "dev"), read_split(data, "test")
    if data.dev is not None or data.test is not None:
        raise MinbertError("data.split makes dev/test from the train file; leave data.dev and data.test unset (or drop data.split)")
    parts = split_examples(train, data.split, data.sample_seed if data.sample_seed is not None else seed)
    log.info("data.split %s of %s (seed %s): %s examples", data.split, data.train, data.sample_seed if data.sample_seed is not None else seed, [len(p) for p in parts])
    return parts[0], parts[1] or None, (parts[2] or None) if len(parts) > 2 else None


def prepare_train(examples: list[Example], data: DataConfig, seed: int) -> list[Example]:
    """Drop excluded texts, then subsample, few-shot sample and/or corrupt labels, as the config asks (all seeded)."""
    seed = seed if data.sample_seed is None else data.sample_seed
    if data.exclude:
        examples = exclude_texts(examples, data)
    examples = subsample(examples, data.max_train_examples, seed)
    if data.few_shot:
        examples = few_shot_sample(examples, data.few_shot, seed)
        log.info("few-shot: %d training examples sampled with the label distribution (seed %d)", len(examples), seed)
    if data.label_noise:
        examples = inject_label_noise(examples, data.label_noise, seed)
        log.info("label noise: %.0f%% of training labels flipped (seed %d)", 100 * data.label_noise, seed)
    return examples


def exclude_texts(examples: list[Example], data: DataConfig) -> list[Example]:
    """data.exclude: training rows whose text is in another file are dropped, and the log says how many and which."""
    for source in data.exclude:
        held = read_examples(source.path, source.format, text_column=source.text_column, require_labels=False)
        texts = [text for e in held for text in (e.text, e.text_pair) if text is not None]
        examples, dropped = drop_overlap(examples, texts)
        shown = "; ".join(f"{e.where} {e.text!r}" for e in dropped[:3])
        log.info("data.exclude %s: dropped %d training rows whose text it holds%s", source.path, len(dropped), f" (first: {shown})" if dropped else "")
    if not examples:
        raise MinbertError(f"data.exclude dropped every training row of {data.train}; check the exclude files")
    return examples


def contrastive_stage(
    model: SequenceClassifier, labels: LabelVocab, examples: list[Example], config: RunConfig, metrics_log: MetricsLog, device: torch.device
) -> None:
    """Stage one of the two-stage protocol: contrastive training of the encoder (the projection is discarded)."""
    stage = config.contrastive
    stage_model = ContrastiveModel(model.encoder, model.pooling, stage.projection_size)
    task = ContrastiveTask(
        model.tokenizer, labels, examples,
        objective=stage.objective, temperature=stage.temperature, batch_size=stage.batch_size, views=stage.views, seed=config.train.seed, bucket=config.train.bucket,
    )
    stage_config = config.train.model_copy(update={
        "epochs": stage.epochs, "batch_size": stage.batch_size, "lr": stage.lr, "head_lr": None, "warmup_ratio": stage.warmup_ratio,
        "schedule": stage.schedule, "llrd": 1.0, "eval_before": False, "patience": None, "eval_every": 0,
    })
    log.info("contrastive stage: %s, tau %g, %d view(s), %d epochs of %d examples", stage.objective, stage.temperature, stage.views, stage.epochs, len(examples))
    fit = Trainer(stage_model, task, stage_config, metrics_log, device, stage="contrastive_", checkpoint_dir=Path(config.output_dir) / CHECKPOINT_DIR).fit()
    log.info("contrastive stage done in %.0f s (%.0f examples/s)", fit.train_seconds, fit.examples_per_second)


def has_checkpoint(checkpoints: Path) -> bool:
    """A trainer state of any stage (trainer.pt, contrastive_trainer.pt) to resume from."""
    return any(checkpoints.glob("*trainer.pt"))


def resuming(cfg: TrainConfig, checkpoints: Path) -> bool:
    """A resumed run keeps its metrics.jsonl and train.log; without a checkpoint, --resume starts over."""
    found = cfg.resume and has_checkpoint(checkpoints)
    if cfg.resume and not found:
        log.warning("train.resume: no checkpoint in %s; starting the run from the beginning", checkpoints)
    return bool(found)


def finish_checkpoints(cfg: TrainConfig, checkpoints: Path) -> None:
    """A finished run's model is in model/; the (large) resumable state is deleted unless asked to keep it."""
    if not cfg.keep_checkpoint and checkpoints.is_dir():
        shutil.rmtree(checkpoints)


def _log_to_file(output_dir: Path, append: bool = False) -> logging.Handler:
    if not is_main():
        return logging.NullHandler()
    handler = logging.FileHandler(output_dir / "train.log", mode="a" if append else "w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("minbert").addHandler(handler)
    logging.getLogger("minbert").setLevel(logging.INFO)
    return handler


def train(config: RunConfig, on_evaluate: Callable[[int, dict[str, float]], None] | None = None) -> RunResult:
    """Read data, fine-tune, keep the best dev checkpoint, evaluate, save and report.
    `on_evaluate(step, dev_metrics)` is called after each dev evaluation (sweeps prune with it)."""
    if config.task == "multitask" and not config.tasks:
        raise MinbertError("task multitask needs a tasks: list (name, data, head for each; see configs/cs224n_multitask.yaml)")
    if config.task == "classification" and config.data.train is None:
        raise MinbertError("no training data: set data.train (e.g. --data.train path/to/train.jsonl)")
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if not is_main():  # other ranks of a multi-process run: warnings only, no train.log of their own
        logging.getLogger("minbert").setLevel(logging.WARNING)
    handler = _log_to_file(output_dir, append=config.train.resume and has_checkpoint(output_dir / CHECKPOINT_DIR))
    try:
        if config.task == "multitask":
            from minbert.multitask_run import train_multitask

            return train_multitask(config, output_dir, on_evaluate)
        return _train(config, output_dir, on_evaluate)
    finally:
        logging.getLogger("minbert").removeHandler(handler)
        handler.close()


def start_run(config: RunConfig, output_dir: Path) -> torch.device:
    """What every run does first: record the resolved config, seed everything, pick threads and device."""
    if is_main():
        (output_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    seed_everything(config.train.seed)
    set_threads(config.train.threads)
    return resolve_device(config.train.device)


def adapt_encoder(encoder: Encoder, config: RunConfig) -> None:
    """Re-initialise the top layers and set the encoder's dropout, as the config asks."""
    encoder.reinit_top_layers(config.train.reinit_top)
    if config.model.encoder_dropout is not None:
        encoder.set_dropout(config.model.encoder_dropout)


def _train(config: RunConfig, output_dir: Path, on_evaluate: Callable[[int, dict[str, float]], None] | None = None) -> RunResult:
    cfg = config.train
    device = start_run(config, output_dir)

    all_train, dev_examples, test_examples = read_splits(config.data, cfg.seed)
    if any(e.text_pair is not None for e in all_train):
        raise MinbertError(
            f"{config.data.train}: holds sentence pairs, and a single-sentence classifier would read only the first one. "
            "Train pairs with `task: multitask` and a cross or bi head (see configs/sts_bi.yaml, configs/quora_cross.yaml)"
        )
    labels = LabelVocab.from_examples(all_train)  # the whole file's labels, also when training on a sample
    train_examples = prepare_train(all_train, config.data, cfg.seed)
    for split in (dev_examples, test_examples):
        if split:
            labels.encode_all(split)
    log.info("data: %d train, %d dev, %d test examples, %d labels", len(train_examples), len(dev_examples or []), len(test_examples or []), len(labels))

    model = SequenceClassifier.from_checkpoint(
        config.model.checkpoint,
        labels.labels,
        pooling=config.model.pooling,
        hidden_size=config.model.hidden_size,
        activation=config.model.activation,
        dropout=config.model.dropout,
        max_length=config.model.max_length,
    )
    adapt_encoder(model.encoder, config)
    checkpoints = output_dir / CHECKPOINT_DIR
    metrics_log = MetricsLog(output_dir / "metrics.jsonl", tensorboard=cfg.tensorboard, append=resuming(cfg, checkpoints))
    try:
        if config.contrastive.objective != "none" and not (cfg.resume and (checkpoints / "trainer.pt").is_file()):
            contrastive_stage(model, labels, train_examples, config, metrics_log, device)
        apply_freezing(model, cfg.freeze)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log.info("model: %s, %d parameters (%d trainable), device %s", config.model.checkpoint, count_parameters(model), trainable, device)
        task = ClassificationTask(
            model, labels, train_examples, dev_examples,
            batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size, seed=cfg.seed, bucket=cfg.bucket, bf16=cfg.bf16,
            cache_features=cfg.cache_features, objective=cfg.objective, scl_lambda=cfg.scl_lambda, scl_temperature=cfg.scl_temperature,
        )
        fit = Trainer(model, task, cfg, metrics_log, device, checkpoint_dir=checkpoints, on_evaluate=on_evaluate).fit()
        if not is_main():  # multi-process training: rank 0 evaluates, saves and reports
            return RunResult(output_dir, model, {}, {})
        evaluations: dict[str, Evaluation] = {}
        for split, examples in (("dev", dev_examples), ("test", test_examples)):
            if examples:
                started = time.perf_counter()
                evaluations[split] = evaluate_examples(model, examples, labels, cfg.eval_batch_size, cfg.bf16)
                metrics_log.write(f"final_{split}", fit.steps, seconds=time.perf_counter() - started, **evaluations[split].metrics)
    finally:
        metrics_log.close()

    model.save(output_dir / "model")
    finish_checkpoints(cfg, checkpoints)
    results = {split: e.metrics for split, e in evaluations.items()}
    before = fit.evaluations[0] if cfg.eval_before and fit.evaluations else None
    summary = {
        "train_examples": len(train_examples),
        "labels": len(labels),
        "dev_accuracy_before_training": before["accuracy"] if before else None,
        **fit_summary(fit, cfg.metric, trainable, device),
    }
    write_results(output_dir, results, summary)
    _write_report(config, output_dir, model, labels, evaluations, results, summary)
    return RunResult(output_dir, model, results, summary)


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
    }


def write_results(output_dir: Path, results: dict[str, dict[str, float]], summary: dict[str, Any]) -> None:
    (output_dir / "results.json").write_text(json.dumps({"results": results, "summary": summary}, indent=2) + "\n", encoding="utf-8")


def _write_report(
    config: RunConfig,
    output_dir: Path,
    model: SequenceClassifier,
    labels: LabelVocab,
    evaluations: dict[str, Evaluation],
    results: dict[str, dict[str, float]],
    summary: dict[str, Any],
) -> None:
    records = read_metrics(output_dir / "metrics.jsonl")
    plots = {
        "Learning curves": plot_learning_curves(records, output_dir / "learning_curves.png", config.train.metric if config.train.metric != "loss" else "accuracy").name,
        "Learning-rate schedule": plot_lr_schedule(records, output_dir / "lr_schedule.png").name,
    }
    split = "test" if "test" in evaluations else "dev" if "dev" in evaluations else None
    matrix = per_class = None
    if split:
        evaluation = evaluations[split]
        matrix = confusion(evaluation.y_true, evaluation.y_pred, len(labels))
        per_class = per_class_report(evaluation.y_true, evaluation.y_pred, labels.labels)
        plots[f"Confusion matrix ({split})"] = plot_confusion(matrix, labels.labels, output_dir / f"confusion_{split}.png", f"Confusion matrix ({split})").name
    cfg = config.train
    setup = {
        "checkpoint": config.model.checkpoint,
        "data": f"{config.data.train} ({config.data.format})",
        "head": f"{config.model.pooling} pooling -> {config.model.hidden_size or 'no'} hidden ({config.model.activation}) -> {len(labels)} labels, dropout {config.model.dropout}",
        "epochs / batch": f"{cfg.epochs} / {cfg.batch_size} x {cfg.grad_accum}",
        "optimiser": f"AdamW lr {cfg.lr:g} (head {cfg.head_lr or cfg.lr:g}), wd {cfg.weight_decay:g}, LLRD {cfg.llrd:g}",
        "schedule": f"{cfg.schedule}, warm-up {cfg.warmup_ratio:g}, clip {cfg.max_grad_norm}",
        "freeze / re-init": f"{cfg.freeze} / top {cfg.reinit_top}",
        "seed": cfg.seed,
    }
    write_report(
        output_dir / "report.md",
        title=f"minbert run: {config.output_dir}",
        setup=setup,
        results=results,
        training=summary,
        per_class=per_class,
        per_class_split=split or "",
        confusion=matrix,
        labels=labels.labels,
        plots=plots,
    )


def evaluate(
    model_dir: str | Path, data: str | Path, format: str = "jsonl", *, text_column: str | None = None,
    label_column: str | None = None, batch_size: int = 128, backend: str = "torch", task: str | None = None,
) -> dict[str, float]:
    """Score a saved classifier (PyTorch or its ONNX export) on a labelled file; or, for sentence pairs
    and a sentence encoder (any checkpoint), the cosine similarity of the two embeddings against the gold score."""
    model = load_torch(model_dir, backend) if backend in TORCH_BACKENDS else load_classifier(model_dir, backend)
    examples = read_examples(data, format, text_column=text_column, label_column=label_column, split="test")
    if isinstance(model, MultitaskModel):
        spec = model.spec(task or model.default_task())
        return {**score_examples(spec, model, examples, batch_size), "examples": len(examples)}
    if task is not None:
        raise MinbertError(f"{model_dir}: --task is for multitask models; this one has a single task")
    if isinstance(model, SentenceEncoder):
        if any(e.text_pair is None for e in examples):
            raise MinbertError(f"{data}: a sentence encoder is scored on sentence pairs (formats sts, stsb, quora, or a text_pair_column)")
        try:
            gold = [float(e.label) for e in examples]  # type: ignore[arg-type]
        except ValueError as e:
            raise MinbertError(f"{data}: pair labels must be numbers (similarity or 0/1) to correlate with cosine: {e}") from None
        first = model.encode([e.text for e in examples], batch_size, normalize=True)
        second = model.encode([e.text_pair for e in examples], batch_size, normalize=True)  # type: ignore[misc]
        cosine = (first * second).sum(axis=1)
        metrics = regression_metrics(gold, cosine)
        return {"pearson": metrics["pearson"], "spearman": metrics["spearman"], "examples": len(examples)}
    return {**evaluate_examples(model, examples, LabelVocab(model.labels), batch_size).metrics, "examples": len(examples)}
