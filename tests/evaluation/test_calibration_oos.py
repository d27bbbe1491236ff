"""Calibration (ECE, NLL, the temperature fit) and out-of-scope scores, thresholds and metrics, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from minbert import MinbertError
from minbert.evaluation.calibration import expected_calibration_error, fit_temperature, negative_log_likelihood
from minbert.evaluation.oos import choose_threshold, oos_metrics
from minbert.model.heads import HeadSpec, KnnScore, MahalanobisScore, TaskHead
from minbert.model.task_model import Model, predictions


def test_ece_by_hand():
    # bin (0.6, 0.667]: confidences 0.65, 0.62, one right -> |0.5 - 0.635|; bin (0.933, 1]: 0.95, right -> |1 - 0.95|
    probabilities = np.array([[0.65, 0.35], [0.38, 0.62], [0.95, 0.05]])
    targets = np.array([0, 0, 0])
    expected = (2 / 3) * abs(0.5 - 0.635) + (1 / 3) * abs(1 - 0.95)
    assert expected_calibration_error(probabilities, targets) == pytest.approx(expected)
    assert negative_log_likelihood(probabilities, targets) == pytest.approx(
        -(math.log(0.65) + math.log(0.38) + math.log(0.95)) / 3
    )


def test_the_fitted_temperature_minimises_dev_nll_and_undoes_overconfidence():
    torch.manual_seed(0)
    true_logits = torch.randn(2000, 5) * 2
    targets = torch.distributions.Categorical(logits=true_logits).sample()
    overconfident = 3.0 * true_logits  # a model 3x too sure of itself
    fitted = fit_temperature(overconfident, targets)
    assert fitted == pytest.approx(3.0, rel=0.1)
    grid = torch.linspace(0.5, 6, 221)
    nll = [torch.nn.functional.cross_entropy(overconfident / t, targets).item() for t in grid]
    assert fitted == pytest.approx(grid[int(np.argmin(nll))].item(), abs=0.03)  # the brute-force minimum


def test_msp_and_energy_scores_by_hand_at_the_calibration_temperature():
    raw = torch.tensor([[2.0, 0.0, 0.0], [0.5, 0.4, 0.3]])
    spec = HeadSpec("main", labels=["a", "b", "c"], temperature=2.0, oos_method="msp")
    msp = spec.in_scope_scores(raw)
    assert msp[0].item() == pytest.approx(math.exp(1) / (math.exp(1) + 2))
    energy = HeadSpec("main", labels=["a", "b", "c"], temperature=2.0, oos_method="energy").in_scope_scores(raw)
    assert energy[1].item() == pytest.approx(2 * math.log(math.exp(0.25) + math.exp(0.2) + math.exp(0.15)))
    spec.oos_threshold = 0.5
    assert [p.label for p in predictions(spec, raw, spec.in_scope_scores(raw))] == ["a", "oos"]


def test_threshold_without_oos_dev_keeps_the_stated_share_of_in_scope_dev():
    in_scores = np.linspace(0.01, 1.0, 100)
    threshold = choose_threshold(in_scores, np.ones(100, dtype=bool), None, in_scope_recall=0.9)
    assert (in_scores >= threshold).mean() == pytest.approx(0.9, abs=0.011)


def test_threshold_with_oos_dev_is_best_f1_within_the_accuracy_budget():
    # in-scope scores 0.5..0.95 (all correct), out-of-scope 0.1..0.55: every OOS text below 0.5 is caught for free;
    # catching the two at 0.55 and 0.5 would reject in-scope texts and cost more than the 10-point budget allows
    in_scores = np.array([0.5, 0.55, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.95, 0.95])
    oos_scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.55])
    correct = np.ones(10, dtype=bool)
    strict = choose_threshold(in_scores, correct, oos_scores, max_accuracy_drop=0.0)
    assert strict == pytest.approx(0.5)  # nothing in-scope rejected: 4 of 6 caught
    loose = choose_threshold(in_scores, correct, oos_scores, max_accuracy_drop=0.1)
    assert loose == pytest.approx(0.55)  # one in-scope rejected, 5 of 6 caught: F1 5/6 beats 4/5
    metrics = oos_metrics(in_scores, correct, oos_scores, loose)
    assert metrics["in_scope_accuracy"] == pytest.approx(0.9) and metrics["oos_recall"] == pytest.approx(5 / 6)
    assert metrics["oos_precision"] == pytest.approx(5 / 6)
    truth = np.r_[np.zeros(10), np.ones(6)]
    assert metrics["oos_auroc"] == pytest.approx(roc_auc_score(truth, -np.r_[in_scores, oos_scores]))


def test_the_recall_criterion_spends_the_whole_accuracy_budget():
    # four out-of-scope texts are caught for free; the fifth (0.59) sits above five in-scope ones, so catching it
    # rejects them: F1 stops at 4 of 5 (P 1, R 0.8), recall pays the 50-point budget for all 5 (P 0.5, R 1)
    in_scores = np.array([0.5, 0.52, 0.54, 0.56, 0.58, 0.7, 0.8, 0.9, 0.95, 0.95])
    oos_scores = np.array([0.1, 0.2, 0.3, 0.4, 0.59])
    correct = np.ones(10, dtype=bool)
    f1 = choose_threshold(in_scores, correct, oos_scores, max_accuracy_drop=0.5, criterion="f1")
    recall = choose_threshold(in_scores, correct, oos_scores, max_accuracy_drop=0.5, criterion="recall")
    at_f1 = oos_metrics(in_scores, correct, oos_scores, f1)
    at_recall = oos_metrics(in_scores, correct, oos_scores, recall)
    assert at_f1["oos_recall"] == pytest.approx(0.8) and at_f1["in_scope_accuracy"] == 1.0
    assert at_recall["oos_recall"] == 1.0 and at_recall["in_scope_accuracy"] == pytest.approx(0.5)  # budget spent
    with pytest.raises(ValueError, match="criterion"):
        choose_threshold(in_scores, correct, oos_scores, criterion="precision")


def test_mahalanobis_score_by_hand():
    """-min_c (z - mu_c)^T inv(Sigma) (z - mu_c), Sigma the covariance of the class-centred training vectors."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 4)) * np.array([1.0, 2.0, 0.5, 3.0]) + np.repeat(np.eye(4)[:3] * 4, 20, axis=0)
    targets = np.repeat(np.arange(3), 20)
    scorer = MahalanobisScore(classes=3, width=4)
    scorer.fit(torch.tensor(vectors), torch.tensor(targets))
    means = np.stack([vectors[targets == c].mean(0) for c in range(3)])
    centred = vectors - means[targets]
    precision = np.linalg.inv(centred.T @ centred / len(vectors))
    queries = rng.normal(size=(5, 4)) * 3
    expected = [-min((q - m) @ precision @ (q - m) for m in means) for q in queries]
    assert scorer(torch.tensor(queries, dtype=torch.float32)).tolist() == pytest.approx(expected, rel=1e-4)


def test_mahalanobis_needs_every_class_and_ignores_directions_without_variance():
    scorer = MahalanobisScore(classes=2, width=3)
    with pytest.raises(MinbertError, match="every class"):
        scorer.fit(torch.randn(6, 3), torch.zeros(6, dtype=torch.long))
    flat = torch.cat([torch.randn(40, 2), torch.zeros(40, 1)], dim=1)  # no variance in the last direction
    scorer.fit(flat, torch.arange(40) % 2)
    moved = torch.tensor([[0.3, -0.2, 0.0], [0.3, -0.2, 5.0]])
    assert torch.isfinite(scorer(moved)).all() and scorer(moved)[0] == pytest.approx(scorer(moved)[1].item())


def test_a_files_in_scope_scores_are_taken_a_batch_at_a_time(monkeypatch):
    """Mahalanobis holds (rows, classes, width) at once; over a whole eval file that is gigabytes, so
    scored_outputs hands it one batch at a time, with the scores it would give all at once."""
    spec = HeadSpec("main", labels=["a", "b", "c"], oos_method="mahalanobis")
    model = Model.from_checkpoint(None, [spec], pooling="mean", max_length=32).eval()
    texts = [f"please set an alarm for {hour} o'clock" for hour in range(10)]
    head = model.head("main")
    head.rejector.fit(model.head_vectors(texts), torch.arange(10) % 3)  # type: ignore[union-attr]
    rows: list[int] = []
    forward = MahalanobisScore.forward
    monkeypatch.setattr(MahalanobisScore, "forward", lambda self, z: rows.append(len(z)) or forward(self, z))
    raw, scores = model.scored_outputs("main", texts, batch_size=4)
    assert rows == [4, 4, 2]
    with torch.no_grad():
        whole = head.in_scope(model.head_vectors(texts), raw)
    assert scores is not None and torch.allclose(scores, whole, rtol=1e-5)


def test_knn_score_is_minus_the_cosine_distance_to_the_kth_nearest_training_vector():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    scorer = KnnScore(rows=4, width=2, k=2)
    scorer.fit(bank * 3)  # lengths do not matter
    query = torch.tensor([[2.0, 0.1]])
    cosines = sorted((F.cosine_similarity(query, bank)).tolist(), reverse=True)
    assert scorer(query).item() == pytest.approx(-(1 - cosines[1]), abs=1e-6)
    with pytest.raises(MinbertError, match="lower oos.k"):
        KnnScore(rows=1, width=2, k=3).fit(bank[:2])


def test_a_vector_method_is_a_buffer_of_its_head_and_reloads_from_its_state():
    spec = HeadSpec("main", labels=["a", "b"], oos_method="knn", oos_k=1, oos_bank_size=3)
    head = TaskHead(spec, width=2)
    head.rejector.fit(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))  # type: ignore[union-attr]
    again = TaskHead(spec, width=2)
    again.load_state_dict(head.state_dict())  # strict: the saved statistics fit the spec's shapes
    u = torch.tensor([[0.2, 1.0]])
    assert again.in_scope(u, head(u)).item() == pytest.approx(head.in_scope(u, head(u)).item())
