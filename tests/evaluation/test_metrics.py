"""Metrics against independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from minbert.evaluation.metrics import classification_metrics, pearson, regression_metrics, spearman


def test_pearson_and_spearman_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 6, 200).astype(float)  # STS-like scores with many ties
    predicted = truth + rng.normal(0, 1.5, 200)
    assert pearson(truth, predicted) == pytest.approx(pearsonr(truth, predicted)[0], abs=1e-12)
    assert spearman(truth, predicted) == pytest.approx(spearmanr(truth, predicted)[0], abs=1e-12)
    metrics = regression_metrics(truth, predicted)
    assert metrics["mse"] == pytest.approx(float(((truth - predicted) ** 2).mean()))


def test_constant_prediction_gives_nan_not_an_error():
    assert np.isnan(pearson([1, 2, 3], [2, 2, 2]))


def test_classification_metrics_by_hand():
    metrics = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    # per class F1: class0 p=1/2 r=1/2 -> 0.5; class1 p=2/3 r=1 -> 0.8; class2 -> 0
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
