"""After training, with the model fixed: the post-hoc steps (calibration, out-of-scope threshold,
multilabel thresholds; see tasks/posthoc.py), then every head evaluated on dev and test. `train`, `refit`
and the Python API's `fit` all conclude here."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from minbert.config import RunConfig, TaskConfig
from minbert.data.prepare import TaskData
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.evaluation.calibration import expected_calibration_error, probabilities_before_calibration
from minbert.model.heads import HeadSpec
from minbert.model.task_model import Encoded, Model
from minbert.run.inputs import RunData
from minbert.tasks.head_task import Evaluation, evaluate_examples
from minbert.tasks.multitask import flatten
from minbert.tasks.posthoc import OosEvaluation, calibrate, oos_evaluation, set_label_thresholds, set_oos_threshold
from minbert.training.metrics_log import MetricsLog

log = logging.getLogger("minbert")


class Concluded(NamedTuple):
    posthoc: dict[str, Any]
    evaluations: dict[str, dict[str, Evaluation]]
    results: dict[str, dict[str, float]]
    rejection: OosEvaluation | None


def conclude(
    model: Model,
    specs: list[HeadSpec],
    read: RunData,
    config: RunConfig,
    metrics_log: MetricsLog,
    steps: int,
    known: Iterable[Encoded] = (),
) -> Concluded:
    """After training, with the model fixed: fit the post-hoc steps, then evaluate every head on dev and test
    (and the out-of-scope test texts), logging each split's metrics as a final_dev / final_test event. Each
    input list is encoded once, and `known` ones (a frozen encoder's cached train and dev vectors) not again."""
    with model.encoding_once(known):
        return _conclude(model, specs, read, config, metrics_log, steps)


def _conclude(
    model: Model, specs: list[HeadSpec], read: RunData, config: RunConfig, metrics_log: MetricsLog, steps: int
) -> Concluded:
    cfg, data, multitask = config.train, read.data, config.task == "multitask"
    model.eval()
    posthoc = fit_posthoc(model, specs, read.tasks, data, read.oos_dev, config)
    evaluations: dict[str, dict[str, Evaluation]] = {}
    rejection: OosEvaluation | None = None
    results: dict[str, dict[str, float]] = {}
    for split_index, split in ((1, "dev"), (2, "test")):
        started = time.perf_counter()
        per_task = {
            spec.name: evaluate_examples(
                model, spec.name, part, cfg.eval_batch_size, cfg.bf16, read.unseen.get(spec.name, {}).get(split, [])
            )
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
                cfg.eval_batch_size,
                oos_class=config.oos.label if config.data.oos_train else None,
                bf16=cfg.bf16,
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
