"""One training run = one output directory, whatever the config holds (one head or several).

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

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from minbert.card import write_card
from minbert.config import SINGLE_TASK, RunConfig, TaskConfig, TrainConfig, load_config
from minbert.data.labels import LabelVocab, label_names
from minbert.data.prepare import TaskData, read_oos, read_task, read_unlabelled
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.evaluate.calibration import expected_calibration_error, probabilities_before_calibration
from minbert.evaluate.metrics import confusion, per_class_report
from minbert.evaluate.multilabel import per_label_report
from minbert.evaluate.plots import (
    plot_confusion,
    plot_learning_curves,
    plot_lr_schedule,
    plot_oos_scores,
    plot_reliability,
)
from minbert.evaluate.report import HEADLINE, write_report
from minbert.model.encoder import Encoder, count_parameters
from minbert.model.heads import HeadSpec
from minbert.model.task_model import Model
from minbert.runtime import cpu_description, resolve_device, seed_everything, set_threads
from minbert.tasks.contrastive import ContrastiveModel, ContrastiveTask
from minbert.tasks.distillation import Distillation
from minbert.tasks.head_task import Evaluation, HeadTask, evaluate_examples, model_inputs, targets_of
from minbert.tasks.multitask import MultitaskTask, flatten
from minbert.tasks.posthoc import (
    OosEvaluation,
    calibrate,
    clear_posthoc,
    oos_evaluation,
    set_label_thresholds,
    set_oos_threshold,
)
from minbert.train.distributed import is_main
from minbert.train.metrics_log import MetricsLog, read_metrics
from minbert.train.optim import apply_freezing
from minbert.train.trainer import FitResult, Trainer

log = logging.getLogger("minbert")
CHECKPOINT_DIR = "checkpoint"  # output_dir/checkpoint/: the resumable training state (see train/resume.py)
# What a run writes into its output_dir; the first three are an earlier run worth keeping (a finished or a
# resumable one). A directory with only the config and logs of a run that failed is simply reused.
RUN_FILES = (
    *("results.json", "model", CHECKPOINT_DIR, "config.yaml", "metrics.jsonl", "report.md", "train.log"),
    "per_class.json",
)
KEPT_RUN_FILES = RUN_FILES[:3]


@dataclass
class RunResult:
    output_dir: Path
    model: Model
    results: dict[str, dict[str, float]]
    summary: dict[str, Any]

    @property
    def report_path(self) -> Path:
        return self.output_dir / "report.md"


def is_multilabel(task: TaskConfig, train: list[Example]) -> bool:
    """A classification head is multi-label when asked, when its labels are split on a separator, or when the
    training rows carry label sets (JSON lists, the goemotions format)."""
    head, data = task.head, task.data
    found = head.kind == "classification" and (
        head.multilabel or data.label_separator is not None or any(isinstance(e.label, tuple) for e in train)
    )
    where = "model" if task.name == SINGLE_TASK else f"tasks.{task.name}.head"
    if head.kind == "classification" and not found and "multilabel_threshold" in head.changed():
        raise MinbertError(
            f"{where}.multilabel_threshold is read by a multilabel head, and the training data has one label per row; "
            f"set {where}.multilabel true (or data.label_separator)"
        )
    if found and head.loss not in ("ce", "bce"):
        raise MinbertError(f"{where}: a multilabel head trains with loss bce, not {head.loss}")
    return found


def head_spec(task: TaskConfig, train: list[Example]) -> HeadSpec:
    head = task.head
    multilabel = is_multilabel(task, train)
    labels = LabelVocab.from_examples(train, multilabel).labels if head.kind == "classification" else []
    return HeadSpec(
        name=task.name,
        kind=head.kind,
        input=head.input,
        features=head.features,
        loss="bce" if multilabel else head.loss,
        multilabel=multilabel,
        labels=labels,
        hidden_size=head.hidden_size,
        activation=head.activation,
        dropout=head.dropout,
        target_range=list(head.target_range) if head.target_range else [0.0, 1.0],
    )


def read_tasks(config: RunConfig, seed: int) -> tuple[list[TaskConfig], dict[str, TaskData], dict[str, str]]:
    """The tasks that can train, their examples, and why the others cannot (multitask runs only)."""
    multitask = config.task == "multitask"
    data: dict[str, TaskData] = {}
    skipped: dict[str, str] = {}
    for task in config.task_list():
        read = read_task(task, seed, optional=multitask)
        if isinstance(read, str):
            log.warning(
                "task %s: %s; it is left out of this run (fix tasks.%s.data.train, or remove the task)",
                task.name,
                read,
                task.name,
            )
            skipped[task.name] = read
            continue
        data[task.name] = read
        log.info("task %s: %d train, %d dev, %d test examples", task.name, *(len(part or []) for part in read[:3]))
    if not data:
        raise MinbertError(f"no task has training data: {'; '.join(f'{k}: {v}' for k, v in skipped.items())}")
    return [t for t in config.task_list() if t.name in data], data, skipped


def contrastive_examples(
    specs: list[HeadSpec], data: dict[str, TaskData], objective: str
) -> tuple[list[Example], LabelVocab | None]:
    """What the contrastive stage trains on: every sentence (SimCSE), or the labelled single sentences
    of the classification tasks, labels kept apart per task when there are several (SupCon; a multilabel
    row's positives are the rows with the same label set)."""
    if objective == "simcse":
        sentences = [
            Example(text, None, e.source, e.line)
            for spec in specs
            for e in data[spec.name].train
            for text in (e.text, e.text_pair)
            if text is not None
        ]
        return sentences, None
    labelled = [s for s in specs if s.kind == "classification" and s.input == "single"]
    if not labelled:
        raise MinbertError(
            "contrastive.objective supcon needs a classification task on single sentences (its labels make the positives); use simcse"
        )
    several = len(labelled) > 1

    def positive_key(spec: HeadSpec, example: Example) -> str:
        """Rows with the same key are positives: the same label, or (multilabel) the same label set."""
        label = " + ".join(sorted(label_names(example))) if spec.multilabel else str(example.label)
        return f"{spec.name}:{label}" if several else label

    examples = [
        Example(e.text, positive_key(spec, e), e.source, e.line) for spec in labelled for e in data[spec.name].train
    ]
    return examples, LabelVocab.from_examples(examples)


def contrastive_stage(
    model: Model,
    specs: list[HeadSpec],
    data: dict[str, TaskData],
    config: RunConfig,
    metrics_log: MetricsLog,
    device: torch.device,
) -> None:
    """Stage one of the two-stage protocol: contrastive training of the encoder (the projection is discarded)."""
    stage = config.contrastive
    examples, labels = contrastive_examples(specs, data, stage.objective)
    stage_model = ContrastiveModel(model.encoder, model.pooling, stage.projection_size)
    task = ContrastiveTask(
        model.tokenizer,
        labels,
        examples,
        objective=stage.objective,
        temperature=stage.temperature,
        batch_size=stage.batch_size,
        views=stage.views,
        seed=config.train.seed,
        bucket=config.train.bucket,
    )
    stage_config = config.train.model_copy(
        update={
            "epochs": stage.epochs,
            "batch_size": stage.batch_size,
            "lr": stage.lr,
            "head_lr": None,
            "warmup_ratio": stage.warmup_ratio,
            "schedule": stage.schedule,
            "llrd": 1.0,
            "eval_before": False,
            "patience": None,
            "eval_every": 0,
        }
    )
    log.info(
        "contrastive stage: %s, tau %g, %d view(s), %d epochs of %d examples",
        stage.objective,
        stage.temperature,
        stage.views,
        stage.epochs,
        len(examples),
    )
    fit = Trainer(
        stage_model,
        task,
        stage_config,
        metrics_log,
        device,
        stage="contrastive_",
        checkpoint_dir=Path(config.output_dir) / CHECKPOINT_DIR,
    ).fit()
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
        raise MinbertError(
            "task multitask needs a tasks: list (name, data, head for each; see configs/cs224n_multitask.yaml)"
        )
    if config.task == "classification" and config.data.train is None:
        raise MinbertError("no training data: set data.train (e.g. --data.train path/to/train.jsonl)")
    output_dir = Path(config.output_dir)
    if is_main():
        claim_output_dir(output_dir, config.train)
    if not is_main():  # other ranks of a multi-process run: warnings only, no train.log of their own
        logging.getLogger("minbert").setLevel(logging.WARNING)
    handler = _log_to_file(output_dir, append=config.train.resume and has_checkpoint(output_dir / CHECKPOINT_DIR))
    try:
        return _train(config, output_dir, on_evaluate)
    except BaseException as e:  # train.log says why the run stopped (the console gets the error from the caller)
        failure = ("run failed: %s: %s", (type(e).__name__, e))
        handler.handle(logging.LogRecord("minbert", logging.ERROR, __file__, 0, failure[0], failure[1], None))
        raise
    finally:
        logging.getLogger("minbert").removeHandler(handler)
        handler.close()


def claim_output_dir(output_dir: Path, cfg: TrainConfig) -> None:
    """An output_dir holding an earlier run is refused unless the run resumes it (--resume) or replaces it
    (--overwrite); replacing first removes the earlier run's results and model, so a run that then fails
    never leaves the old model beside the new config."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MinbertError(
            f"{output_dir}: cannot create the output_dir ({e.strerror}); choose another --output_dir"
        ) from None
    earlier = [name for name in RUN_FILES if (output_dir / name).exists()]
    if any(name in KEPT_RUN_FILES for name in earlier) and not (cfg.resume or cfg.overwrite):
        raise MinbertError(
            f"{output_dir}: holds an earlier run ({', '.join(earlier)}); pass --overwrite to replace it, --resume to "
            "continue it, or choose another --output_dir"
        )
    if earlier and cfg.overwrite and not cfg.resume:
        for name in earlier:
            path = output_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        for plot in output_dir.glob("*.png"):
            plot.unlink()
    probe = output_dir / ".minbert-write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise MinbertError(
            f"{output_dir}: cannot write there ({e.strerror}); fix its permissions or choose another --output_dir"
        ) from None


def start_run(config: RunConfig, output_dir: Path) -> torch.device:
    """What every run does first: record the resolved config, seed everything, pick threads and device."""
    if is_main():
        (output_dir / "config.yaml").write_text(config.with_absolute_paths().to_yaml(), encoding="utf-8")
    seed_everything(config.train.seed)
    set_threads(config.train.threads)
    return resolve_device(config.train.device)


def adapt_encoder(encoder: Encoder, config: RunConfig) -> None:
    """Re-initialise the top layers and set the encoder's dropout, as the config asks."""
    encoder.reinit_top_layers(config.train.reinit_top)
    if config.model.encoder_dropout is not None:
        encoder.set_dropout(config.model.encoder_dropout)


def selection_metric(config: RunConfig) -> str:
    """The dev metric that picks the checkpoint: train.metric; a multitask run selects on overall (or loss)."""
    cfg = config.train
    if config.task != "multitask" or cfg.metric in ("overall", "loss"):
        return cfg.metric
    if "metric" in cfg.model_fields_set:
        raise MinbertError(
            f"train.metric {cfg.metric} is a classification metric; a multitask run selects on overall or loss"
        )
    return "overall"


def _train(
    config: RunConfig, output_dir: Path, on_evaluate: Callable[[int, dict[str, float]], None] | None = None
) -> RunResult:
    multitask = config.task == "multitask"
    cfg = config.train.model_copy(update={"metric": selection_metric(config)})
    device = start_run(config, output_dir)
    read = read_run_data(config, cfg.seed)
    tasks, data, skipped = read.tasks, read.data, read.skipped
    specs = [head_spec(t, data[t.name].all_train) for t in tasks]
    distill = (
        Distillation.load(config.distill.teacher, config.distill.alpha, config.distill.temperature)
        if config.distill.teacher is not None
        else None
    )
    if distill is not None:  # the student predicts the teacher's classes, also those its own train rows lack
        specs = [distill.adopt_labels(spec) for spec in specs]
    for spec in specs:  # fail now, before loading the model, on rows the head cannot read or labels it does not know
        for part in (data[spec.name].train, data[spec.name].dev, data[spec.name].test):
            if part:
                model_inputs(spec, part)
                targets_of(spec, part)

    model = Model.from_checkpoint(
        config.model.checkpoint,
        specs,
        pooling=config.model.pooling,
        projection_size=config.multitask.projection_size,
        normalize=config.multitask.normalize,
        max_length=config.model.max_length,
    )
    adapt_encoder(model.encoder, config)
    checkpoints = output_dir / CHECKPOINT_DIR
    metrics_log = MetricsLog(
        output_dir / "metrics.jsonl", tensorboard=cfg.tensorboard, append=resuming(cfg, checkpoints)
    )
    try:
        if config.contrastive.objective != "none" and not (cfg.resume and (checkpoints / "trainer.pt").is_file()):
            contrastive_stage(model, specs, data, config, metrics_log, device)
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
                " (a multilabel head trains with bce: use train.objective ce)"
                if any(s.multilabel for s in specs)
                else ""
            )
            raise MinbertError(
                f"train.objective ce+scl adds a contrastive term to cross-entropy heads, and no head has loss ce{multilabel}"
            )
        unlabelled = (
            read_unlabelled(
                config.distill.data,
                config.distill.format,
                config.data,
                [*(data[specs[0].name].dev or []), *(data[specs[0].name].test or [])],
            )
            if config.distill.data
            else []
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
                unlabelled=unlabelled,
                weights=cfg.class_weights,
            )
            for spec in specs
        ]
        mixed = MultitaskTask(
            head_tasks,
            weights={t.name: t.weight for t in tasks},
            sampling=config.multitask.sampling,
            steps_per_epoch=config.multitask.steps_per_epoch,
            epochs=cfg.epochs,
            seed=cfg.seed,
            prefixed=multitask,
        )
        if trainable:
            fit = Trainer(
                model, mixed, cfg, metrics_log, device, checkpoint_dir=checkpoints, on_evaluate=on_evaluate
            ).fit()
        else:
            log.warning(
                "train.freeze %s: nothing is trainable, so nothing trains; the results are the untrained model's",
                cfg.freeze,
            )
            fit = FitResult(None, 0, 0.0, 0, False, 0.0, 0)
            model.to(device).eval()
        if not is_main():  # multi-process training: rank 0 evaluates, saves and reports
            return RunResult(output_dir, model, {}, {})
        done = conclude(model, specs, read, config, metrics_log, fit.steps)
    finally:
        metrics_log.close()

    posthoc, evaluations, results, rejection = done
    model.save(output_dir / "model")
    finish_checkpoints(cfg, checkpoints)
    before = fit.evaluations[0] if cfg.eval_before and fit.evaluations else None
    before_metric = cfg.metric if multitask else "accuracy"
    summary: dict[str, Any] = {}
    if multitask:
        summary["tasks"] = ", ".join(s.name for s in specs)
        summary["skipped_tasks"] = "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "none"
    summary["train_examples"] = mixed.num_train_examples
    for split_index, split in ((1, "dev"), (2, "test")):
        rows = sum(len(data[s.name][split_index] or []) for s in specs)
        if rows:
            summary[f"{split}_examples"] = rows
    summary |= {k: v for k, v in posthoc.items() if not k.startswith("dev_")}
    if "dev_ece_before_calibration" in posthoc:
        summary["dev_ece_before_calibration"] = posthoc["dev_ece_before_calibration"]
    if config.distill.teacher is not None:
        summary["distilled_from"] = (
            f"{config.distill.teacher} (alpha {config.distill.alpha:g}, T {config.distill.temperature:g}"
            + (f", {len(unlabelled)} unlabelled texts" if unlabelled else "")
            + ")"
        )
    if not multitask:
        summary["labels"] = len(specs[0].labels)
    summary[f"dev_{before_metric}_before_training"] = before.get(before_metric) if before else None
    summary.update(fit_summary(fit, cfg.metric, trainable, device))
    write_results(output_dir, results, summary)
    write_run_report(config, cfg.metric, output_dir, specs, evaluations, results, summary, rejection)
    write_card(output_dir)
    return RunResult(output_dir, model, results, summary)


class RunData(NamedTuple):
    """What a run reads: the tasks that can train and their examples, why the others cannot, and the out-of-scope
    dev and test texts."""

    tasks: list[TaskConfig]
    data: dict[str, TaskData]
    skipped: dict[str, str]
    oos_dev: list[Example]
    oos_test: list[Example]


def read_run_data(config: RunConfig, seed: int) -> RunData:
    tasks, data, skipped = read_tasks(config, seed)
    if config.data.oos_train:  # the "oos as a class" baseline: one more class to train
        extra = read_oos(config.data.oos_train, config.data, "oos_train", config.oos.label)
        main = data[tasks[0].name]
        data[tasks[0].name] = main._replace(train=[*main.train, *extra], all_train=[*main.all_train, *extra])
        log.info("data.oos_train: %d out-of-scope texts trained as class %r", len(extra), config.oos.label)
    oos_dev = read_oos(config.data.oos_dev, config.data, "oos_dev") if config.data.oos_dev else []
    oos_test = read_oos(config.data.oos_test, config.data, "oos_test") if config.data.oos_test else []
    return RunData(tasks, data, skipped, oos_dev, oos_test)


class Concluded(NamedTuple):
    posthoc: dict[str, Any]
    evaluations: dict[str, dict[str, Evaluation]]
    results: dict[str, dict[str, float]]
    rejection: OosEvaluation | None


def conclude(
    model: Model, specs: list[HeadSpec], read: RunData, config: RunConfig, metrics_log: MetricsLog, steps: int
) -> Concluded:
    """After training, with the model fixed: fit the post-hoc steps, then evaluate every head on dev and test
    (and the out-of-scope test texts), logging each split's metrics as a final_dev / final_test event."""
    cfg, data, multitask = config.train, read.data, config.task == "multitask"
    model.eval()
    posthoc = fit_posthoc(model, specs, read.tasks, data, read.oos_dev, config)
    evaluations: dict[str, dict[str, Evaluation]] = {}
    rejection: OosEvaluation | None = None
    results: dict[str, dict[str, float]] = {}
    for split_index, split in ((1, "dev"), (2, "test")):
        started = time.perf_counter()
        per_task = {
            spec.name: evaluate_examples(model, spec.name, part, cfg.eval_batch_size, cfg.bf16)
            for spec in specs
            if (part := data[spec.name][split_index])
        }
        if not per_task:
            continue
        evaluations[split] = per_task
        results[split] = flatten({name: e.metrics for name, e in per_task.items()}, multitask)
        calibrated = per_task.get(specs[0].name)
        if specs[0].temperature != 1.0 and calibrated is not None and calibrated.probabilities is not None:
            before = probabilities_before_calibration(calibrated.probabilities, specs[0].temperature)
            results[split]["ece_before_calibration"] = expected_calibration_error(before, np.asarray(calibrated.y_true))
        if split == "test" and read.oos_test:
            rejection = oos_evaluation(
                model,
                specs[0],
                data[specs[0].name].test or [],
                read.oos_test,
                oos_class=config.oos.label if config.data.oos_train else None,
            )
            results[split] |= rejection.metrics
        if split == "dev" and posthoc:
            fitted = {k: v for k, v in posthoc.items() if k.startswith("dev_") and not k.startswith("dev_ece")}
            results[split] |= {k.removeprefix("dev_"): v for k, v in fitted.items()}
        metrics_log.write(f"final_{split}", steps, seconds=time.perf_counter() - started, **results[split])
    return Concluded(posthoc, evaluations, results, rejection)


def fit_posthoc(
    model: Model,
    specs: list[HeadSpec],
    tasks: list[TaskConfig],
    data: dict[str, TaskData],
    oos_dev: list[Example],
    config: RunConfig,
) -> dict[str, Any]:
    """The steps fitted after training with the model fixed (see tasks/posthoc.py): a single-task classifier's
    temperature and out-of-scope method, each multilabel head's thresholds. Returns what they report."""
    cfg, posthoc = config.train, dict[str, Any]()
    first = data[specs[0].name]
    if config.calibration != "none" or config.oos.method != "none":
        if not first.dev:
            raise MinbertError("calibration and oos.method are fitted on dev: set data.dev (or data.split)")
        if config.calibration == "temperature":
            posthoc |= calibrate(model, specs[0], first.dev, cfg.eval_batch_size, cfg.bf16)
        if config.oos.method != "none":
            posthoc |= set_oos_threshold(
                model,
                specs[0],
                config.oos.method,
                config.oos.label,
                first.dev,
                oos_dev,
                config.oos.in_scope_recall,
                config.oos.max_accuracy_drop,
                cfg.eval_batch_size,
                cfg.bf16,
                train=first.train,
                k=config.oos.k,
                criterion=config.oos.criterion,
            )
    rules = {t.name: t.head.multilabel_threshold for t in tasks}
    for spec in (s for s in specs if s.multilabel):
        rule, dev = rules[spec.name], data[spec.name].dev
        if isinstance(rule, str) and not dev:
            log.warning("task %s: no dev data to tune multilabel thresholds on; every label keeps 0.5", spec.name)
            continue
        fitted = set_label_thresholds(model, spec, rule, dev or [], cfg.eval_batch_size, cfg.bf16)
        posthoc |= fitted if len(specs) == 1 else {f"{spec.name}_{k}": v for k, v in fitted.items()}
    return posthoc


# What `refit` may change: the post-hoc settings (and where the new run goes); anything else means training again.
REFIT_FIELDS = ("output_dir", "calibration", "oos.", "data.oos_dev", "data.oos_test", "model.multilabel_threshold")
REFIT_TRAIN_FIELDS = ("overwrite", "eval_batch_size", "threads", "progress", "device")


def refit(source: str | Path, overrides: Sequence[str]) -> RunResult:
    """A finished run's model with its post-hoc steps fitted anew (calibration, out-of-scope method and threshold,
    multilabel thresholds), written as a new run directory (`--output_dir`) without training again. The source
    run is left as it was; the new run's config is the source's with the overrides, which may change only those
    steps' settings."""
    source = Path(source)
    if not (source / "config.yaml").is_file() or not (source / "model").is_dir():
        raise MinbertError(f"{source}: not a finished run directory (config.yaml and model/); give a run's output_dir")
    before = load_config(source / "config.yaml")
    config = load_config(source / "config.yaml", overrides)
    changed = sorted(set(_leaves(before.model_dump(mode="json"))) ^ set(_leaves(config.model_dump(mode="json"))))
    refused = [
        key.split("=")[0]
        for key in changed
        if not key.startswith(REFIT_FIELDS)
        and not any(key.startswith(f"train.{f}") for f in REFIT_TRAIN_FIELDS)
        and not (key.startswith("tasks.") and ".head.multilabel_threshold" in key)
    ]
    if refused:
        raise MinbertError(
            f"refit fits post-hoc steps on the trained model; {refused[0]} changes the training: train a new run instead"
        )
    output_dir = Path(config.output_dir)
    if output_dir.resolve() == source.resolve():
        raise MinbertError(f"refit writes a new run; give another --output_dir than {source}")
    claim_output_dir(output_dir, config.train)
    handler = _log_to_file(output_dir)
    try:
        start_run(config, output_dir)
        read = read_run_data(config, config.train.seed)
        model = Model.load(source / "model")
        specs = [model.spec(name) for name in model.tasks]
        for spec in specs:
            clear_posthoc(model, spec)
        if (source / "metrics.jsonl").is_file():  # the learning curves of the training it reuses
            shutil.copyfile(source / "metrics.jsonl", output_dir / "metrics.jsonl")
        metrics_log = MetricsLog(output_dir / "metrics.jsonl", append=True)
        earlier = json.loads((source / "results.json").read_text()).get("summary", {})
        try:
            posthoc, evaluations, results, rejection = conclude(
                model, specs, read, config, metrics_log, earlier.get("steps", 0)
            )
        finally:
            metrics_log.close()
        model.save(output_dir / "model")
        summary = {k: v for k, v in earlier.items() if not k.endswith(POSTHOC_SUMMARY_KEYS)}
        summary |= {k: v for k, v in posthoc.items() if not k.startswith("dev_") or k == "dev_ece_before_calibration"}
        summary["refitted_from"] = str(source)
        write_results(output_dir, results, summary)
        write_run_report(config, config.train.metric, output_dir, specs, evaluations, results, summary, rejection)
        write_card(output_dir)
        return RunResult(output_dir, model, results, summary)
    finally:
        logging.getLogger("minbert").removeHandler(handler)
        handler.close()


# The summary keys a run's post-hoc steps write; a refit replaces them.
POSTHOC_SUMMARY_KEYS = (
    *("temperature", "dev_ece_before_calibration", "dev_ece", "oos_method", "oos_threshold", "multilabel_threshold"),
)


def _leaves(nested: Any, prefix: str = "") -> list[str]:
    """{'train': {'lr': 1}} -> ['train.lr=1']; tasks by name, so a refit compares like with like."""
    if isinstance(nested, dict):
        return [leaf for k, v in nested.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    if isinstance(nested, list) and nested and all(isinstance(t, dict) and "name" in t for t in nested):
        return [leaf for t in nested for leaf in _leaves(t, f"{prefix}{t['name']}.")]
    return [f"{prefix.rstrip('.')}={json.dumps(nested)}"]


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


def write_results(output_dir: Path, results: dict[str, dict[str, float]], summary: dict[str, Any]) -> None:
    (output_dir / "results.json").write_text(
        json.dumps({"results": results, "summary": summary}, indent=2) + "\n", encoding="utf-8"
    )


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
