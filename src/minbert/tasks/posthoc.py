"""After training, on dev: the calibration temperature, then the out-of-scope threshold.

Both are fitted on the dev set with the trained model fixed and saved in the head's spec (so they
travel in minbert.json and every backend applies them). The temperature first, because the msp
score depends on it; the threshold as `evaluate.oos.choose_threshold` states.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.evaluate.calibration import expected_calibration_error, fit_temperature
from minbert.evaluate.oos import choose_threshold, oos_metrics, rejection_metrics
from minbert.model.heads import HeadSpec
from minbert.model.task_model import Model
from minbert.tasks.head_task import model_inputs, targets_of

log = logging.getLogger(__name__)


def calibrate(model: Model, spec: HeadSpec, dev: Sequence[Example], batch_size: int, bf16: bool) -> dict[str, Any]:
    """Fit the softmax temperature on dev (NLL) and set it on the head; returns ECE before and after."""
    if spec.kind != "classification" or spec.loss != "ce":
        raise MinbertError(f"task {spec.name!r}: calibration: temperature needs a classification head with loss ce")
    raw = raw_outputs(model, spec, dev, batch_size, bf16)
    targets = targets_of(spec, dev)
    before = expected_calibration_error(spec.probabilities(raw).numpy(), targets.numpy())
    spec.temperature = fit_temperature(raw, targets)
    after = expected_calibration_error(spec.probabilities(raw).numpy(), targets.numpy())
    log.info("calibration: temperature %.3f on dev; dev ECE %.4f -> %.4f", spec.temperature, before, after)
    return {"temperature": spec.temperature, "dev_ece_before_calibration": before, "dev_ece": after}


def raw_outputs(
    model: Any, spec: HeadSpec, texts: Sequence[Example], batch_size: int, bf16: bool = False
) -> torch.Tensor:
    """The head's raw outputs for labelled (or out-of-scope) examples, on any backend."""
    return model.raw_outputs(spec.name, model_inputs(spec, texts), batch_size, bf16).float()


def set_oos_threshold(
    model: Model,
    spec: HeadSpec,
    method: str,
    label: str,
    dev: Sequence[Example],
    oos_dev: Sequence[Example],
    in_scope_recall: float,
    max_accuracy_drop: float,
    batch_size: int,
    bf16: bool,
) -> dict[str, Any]:
    """Choose the rejection threshold on dev (and the out-of-scope dev texts, when given) and set it on the head."""
    if label in spec.labels:
        raise MinbertError(
            f"oos.label {label!r} is one of the trained classes; set another label, or train it as a class with data.oos_train"
        )
    spec.oos_method, spec.oos_label = method, label
    raw = raw_outputs(model, spec, dev, batch_size, bf16)
    in_scores = spec.in_scope_scores(raw).numpy()
    in_correct = (spec.predicted_ids(raw) == targets_of(spec, dev)).numpy()
    oos_raw = raw_outputs(model, spec, oos_dev, batch_size, bf16) if oos_dev else None
    oos_scores = spec.in_scope_scores(oos_raw).numpy() if oos_raw is not None else None
    spec.oos_threshold = choose_threshold(in_scores, in_correct, oos_scores, in_scope_recall, max_accuracy_drop)
    chosen = "best dev OOS F1" if oos_scores is not None else f"keeping {in_scope_recall:.0%} of in-scope dev"
    log.info("out-of-scope: %s threshold %.4f (%s)", method, spec.oos_threshold, chosen)
    summary: dict[str, Any] = {"oos_method": method, "oos_threshold": spec.oos_threshold}
    if oos_scores is not None:
        summary |= {
            f"dev_{k}": v for k, v in oos_metrics(in_scores, in_correct, oos_scores, spec.oos_threshold).items()
        }
    return summary


def oos_evaluation(
    model: Any,
    spec: HeadSpec,
    test: Sequence[Example],
    oos_test: Sequence[Example],
    batch_size: int = 128,
    oos_class: str | None = None,
) -> dict[str, float]:
    """OOS metrics on in-scope and out-of-scope texts, any backend: of the head's saved method and threshold, or,
    with `oos_class` (out-of-scope trained as a class), of predicting that class (score: 1 - its probability)."""
    raw, oos_raw = raw_outputs(model, spec, test, batch_size), raw_outputs(model, spec, oos_test, batch_size)
    in_correct = (spec.predicted_ids(raw) == targets_of(spec, test)).numpy()
    if oos_class is None:
        return oos_metrics(
            spec.in_scope_scores(raw).numpy(), in_correct, spec.in_scope_scores(oos_raw).numpy(), spec.oos_threshold
        )
    column = spec.labels.index(oos_class)
    in_scores = (1 - spec.probabilities(raw)[:, column]).numpy()
    oos_scores = (1 - spec.probabilities(oos_raw)[:, column]).numpy()
    flagged = rejection_metrics(
        in_correct, (spec.predicted_ids(raw) == column).numpy(), (spec.predicted_ids(oos_raw) == column).numpy()
    )
    return oos_metrics(in_scores, in_correct, oos_scores, None) | flagged
