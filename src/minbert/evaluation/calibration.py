"""Calibration: does a predicted probability of 0.8 come true 80 % of the time?

`expected_calibration_error` bins the top-class probability into 15 equal-width bins and averages
|accuracy - confidence| weighted by the bin's share (Guo et al. 2017); `negative_log_likelihood`
is the mean -log p(gold). `fit_temperature` finds the one T > 0 that minimises the dev NLL of
softmax(logits / T): it changes no prediction, only how sure the model says it is.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ECE_BINS = 15


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def negative_log_likelihood(probabilities: np.ndarray, targets: np.ndarray) -> float:
    picked = probabilities[np.arange(len(targets)), targets]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def reliability(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per non-empty bin: the points of a reliability diagram."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    points = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            points.append((float(confidence[inside].mean()), float(correct[inside].mean()), int(inside.sum())))
    return points


def probabilities_before_calibration(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(z) from softmax(z / T): log p = z / T - c, so softmax(T * log p) = softmax(z - T c) = softmax(z)."""
    logits = temperature * np.log(np.clip(probabilities, 1e-300, None))
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, steps: int = 100) -> float:
    """The temperature minimising NLL on (dev) logits: LBFGS on log T, so T stays positive."""
    logits, targets = logits.detach().float(), targets.long()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.exp().item())
