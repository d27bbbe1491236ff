"""After training, with the trained model fixed: the calibration temperature, the out-of-scope method and
threshold, a multilabel head's thresholds.

Each is saved with its head (the spec in minbert.json; a vector method's statistics as buffers in
heads.safetensors), so every backend applies it the same way. The temperature first, because the msp and
energy scores depend on it; a vector method (mahalanobis, knn) fits its statistics on the training
vectors; then the threshold on dev, as `evaluate.oos.choose_threshold` states.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.evaluation.calibration import expected_calibration_error, fit_temperature
from minbert.evaluation.multilabel import tune_thresholds
from minbert.evaluation.oos import choose_threshold, oos_metrics, rejection_metrics
from minbert.model.heads import VECTOR_OOS_METHODS, HeadSpec, KnnScore
from minbert.model.task_model import Model
from minbert.tasks.head_task import model_inputs, targets_of

log = logging.getLogger(__name__)


def clear_posthoc(model: Model, spec: HeadSpec) -> None:
    """The head as training left it: no temperature, rejection or tuned thresholds (a refit fits them anew)."""
    spec.temperature, spec.thresholds = 1.0, []
    spec.oos_method, spec.oos_threshold, spec.oos_bank_size = "none", None, 0
    model.head(spec.name).rejector = None


def calibrate(model: Model, spec: HeadSpec, dev: Sequence[Example], batch_size: int, bf16: bool) -> dict[str, Any]:
    """Fit the softmax temperature on dev (NLL) and set it on the head; returns ECE before and after."""
    if spec.kind != "classification" or spec.loss != "ce":
        raise MinbertError(
            f"task {spec.name!r}: calibration: temperature needs a single-label classification head with loss ce"
        )
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


def in_scope_scores(
    model: Any, spec: HeadSpec, texts: Sequence[Example], batch_size: int, bf16: bool = False
) -> tuple[torch.Tensor, np.ndarray]:
    """The head's raw outputs and in-scope scores (its saved method) for examples, on any backend."""
    raw, scores = model.scored_outputs(spec.name, model_inputs(spec, texts), batch_size, bf16)
    return raw.float(), scores.float().numpy()


def fit_rejector(
    model: Model, spec: HeadSpec, method: str, k: int, train: Sequence[Example], batch_size: int, bf16: bool
) -> None:
    """A vector method's statistics from the training vectors: class means and shared covariance (mahalanobis),
    or the vectors themselves (knn)."""
    vectors = model.head_vectors(model_inputs(spec, train), batch_size, bf16)
    spec.oos_method, spec.oos_k, spec.oos_bank_size = method, k, len(vectors) if method == "knn" else 0
    head = model.head(spec.name)
    head.set_rejector(vectors.shape[1])
    rejector = head.rejector.to(model.device)  # type: ignore[union-attr]
    if isinstance(rejector, KnnScore):
        rejector.fit(vectors.to(model.device))
    else:
        rejector.fit(vectors.to(model.device), targets_of(spec, train).to(model.device))
    log.info("out-of-scope: %s statistics fitted on %d training vectors", method, len(vectors))


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
    train: Sequence[Example] = (),
    k: int = 10,
    criterion: str = "f1",
) -> dict[str, Any]:
    """Fit the method (a vector method on `train`), choose the rejection threshold on dev (and the out-of-scope dev
    texts, when given) and set both on the head."""
    if label in spec.labels:
        raise MinbertError(
            f"oos.label {label!r} is one of the trained classes; set another label, or train it as a class with data.oos_train"
        )
    if method in VECTOR_OOS_METHODS:
        fit_rejector(model, spec, method, k, train, batch_size, bf16)
    spec.oos_method, spec.oos_label, spec.oos_threshold = method, label, None
    raw, in_scores = in_scope_scores(model, spec, dev, batch_size, bf16)
    in_correct = (spec.predicted_ids(raw) == targets_of(spec, dev)).numpy()
    oos_scores = in_scope_scores(model, spec, oos_dev, batch_size, bf16)[1] if oos_dev else None
    spec.oos_threshold = choose_threshold(
        in_scores, in_correct, oos_scores, in_scope_recall, max_accuracy_drop, criterion
    )
    chosen = (
        f"best dev OOS {'F1' if criterion == 'f1' else 'recall'} within {max_accuracy_drop:.1%} of in-scope accuracy"
        if oos_scores is not None
        else f"keeping {in_scope_recall:.0%} of in-scope dev"
    )
    log.info("out-of-scope: %s threshold %.4f (%s)", method, spec.oos_threshold, chosen)
    summary: dict[str, Any] = {"oos_method": method, "oos_threshold": spec.oos_threshold}
    if oos_scores is not None:
        summary |= {
            f"dev_{k}": v for k, v in oos_metrics(in_scores, in_correct, oos_scores, spec.oos_threshold).items()
        }
    return summary


def set_label_thresholds(
    model: Model, spec: HeadSpec, rule: str | float, dev: Sequence[Example], batch_size: int, bf16: bool
) -> dict[str, Any]:
    """A multilabel head's probability thresholds: tuned on dev for macro-F1 (`global`: one for all labels,
    `per_label`: each label's own), or one fixed number for every label."""
    if isinstance(rule, float | int):
        spec.thresholds = [float(rule)] * len(spec.labels)
        return {"multilabel_threshold": float(rule)}
    probabilities = spec.probabilities(raw_outputs(model, spec, dev, batch_size, bf16)).numpy()
    spec.thresholds = tune_thresholds(probabilities, targets_of(spec, dev).numpy().astype(bool), rule)
    shown = (
        f"{spec.thresholds[0]:.2f}" if rule == "global" else f"{min(spec.thresholds):.2f}-{max(spec.thresholds):.2f}"
    )
    log.info("multilabel: %s thresholds %s tuned on dev for macro-F1", rule, shown)
    return {"multilabel_threshold": rule if rule == "per_label" else spec.thresholds[0]}


class OosEvaluation(NamedTuple):
    """OOS metrics, and the in-scope scores they come from (for the report's histogram and ROC curve)."""

    metrics: dict[str, float]
    in_scores: np.ndarray
    oos_scores: np.ndarray


def oos_evaluation(
    model: Any,
    spec: HeadSpec,
    test: Sequence[Example],
    oos_test: Sequence[Example],
    batch_size: int = 128,
    oos_class: str | None = None,
    bf16: bool = False,
) -> OosEvaluation:
    """OOS metrics on in-scope and out-of-scope texts, any backend: of the head's saved method and threshold, or,
    with `oos_class` (out-of-scope trained as a class), of predicting that class (score: 1 - its probability)."""
    if oos_class is None:
        raw, in_scores = in_scope_scores(model, spec, test, batch_size, bf16)
        oos_scores = in_scope_scores(model, spec, oos_test, batch_size, bf16)[1]
        in_correct = (spec.predicted_ids(raw) == targets_of(spec, test)).numpy()
        metrics = oos_metrics(in_scores, in_correct, oos_scores, spec.oos_threshold)
    else:
        raw = raw_outputs(model, spec, test, batch_size, bf16)
        oos_raw = raw_outputs(model, spec, oos_test, batch_size, bf16)
        in_correct = (spec.predicted_ids(raw) == targets_of(spec, test)).numpy()
        column = spec.labels.index(oos_class)
        in_scores = (1 - spec.probabilities(raw)[:, column]).numpy()
        oos_scores = (1 - spec.probabilities(oos_raw)[:, column]).numpy()
        flagged = rejection_metrics(
            in_correct, (spec.predicted_ids(raw) == column).numpy(), (spec.predicted_ids(oos_raw) == column).numpy()
        )
        metrics = oos_metrics(in_scores, in_correct, oos_scores, None) | flagged
    return OosEvaluation(metrics, in_scores, oos_scores)
