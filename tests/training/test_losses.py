"""Contrastive losses against hand computation on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from minbert.training.losses import ce_plus_scl, cosine_pairs, nt_xent, supcon


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=-1)


def by_hand_supcon(z, labels, tau):
    """Khosla et al., eq. 2, written as loops."""
    n, total, anchors = len(z), 0.0, 0
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(n) if a != i)
        total += -sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denominator) for p in positives) / len(positives)
        anchors += 1
    return total / anchors


def test_supcon_matches_hand_computation():
    z = unit([1, 0], [0.8, 0.6], [0, 1], [-0.6, 0.8], [0.6, -0.8])
    labels = [0, 0, 1, 1, 2]  # class 2 occurs once: that anchor has no positive
    got = supcon(z, torch.tensor(labels), tau=0.5).item()
    assert got == pytest.approx(by_hand_supcon(z, labels, 0.5), rel=1e-6)


def test_supcon_two_points_closed_form():
    # Two same-label vectors: the only other vector is the positive, so softmax = 1 and loss = 0.
    assert supcon(unit([1, 0], [0, 1]), torch.tensor([3, 3]), tau=0.1).item() == pytest.approx(0.0, abs=1e-7)
    # Three vectors, a pair at 90 degrees and a third opposite the first; tau = 1:
    z = unit([1, 0], [0, 1], [-1, 0])
    expected_first = -math.log(math.exp(0) / (math.exp(0) + math.exp(-1)))
    expected_second = -math.log(math.exp(0) / (math.exp(0) + math.exp(0)))
    assert supcon(z, torch.tensor([0, 0, 1]), tau=1.0).item() == pytest.approx(
        (expected_first + expected_second) / 2, rel=1e-6
    )


def test_supcon_all_singletons_is_zero_not_nan():
    z = torch.randn(4, 8, requires_grad=True)
    loss = supcon(z, torch.tensor([0, 1, 2, 3]))
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert torch.isfinite(z.grad).all()


def test_nt_xent_matches_hand_computation():
    a = unit([1, 0], [0, 1])
    b = unit([0.8, 0.6], [-0.6, 0.8])
    z, tau = torch.cat([a, b]), 0.5
    positive = {0: 2, 1: 3, 2: 0, 3: 1}
    expected = 0.0
    for i in range(4):
        denominator = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(4) if k != i)
        expected += -math.log(math.exp(float(z[i] @ z[positive[i]]) / tau) / denominator)
    assert nt_xent(a, b, tau).item() == pytest.approx(expected / 4, rel=1e-6)


def test_two_view_supcon_with_distinct_labels_is_nt_xent():
    """Khosla et al.'s multiviewed batch: with no label shared, each anchor's only positive is its twin."""
    torch.manual_seed(0)
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    labels = torch.arange(5)
    assert supcon(torch.cat([a, b]), labels.repeat(2), 0.2).item() == pytest.approx(nt_xent(a, b, 0.2).item(), rel=1e-6)


def test_nt_xent_prefers_aligned_views():
    torch.manual_seed(0)
    a = torch.randn(8, 16)
    assert nt_xent(a, a + 0.01 * torch.randn(8, 16)) < nt_xent(a, torch.randn(8, 16))


def test_ce_plus_scl_mixes_the_two_terms():
    torch.manual_seed(0)
    logits, emb, labels = torch.randn(6, 3), torch.randn(6, 5), torch.tensor([0, 0, 1, 1, 2, 2])
    ce = F.cross_entropy(logits, labels)
    scl = supcon(emb, labels, 0.3)
    assert ce_plus_scl(logits, emb, labels, lam=0.0).item() == pytest.approx(ce.item())
    assert ce_plus_scl(logits, emb, labels, lam=1.0, tau=0.3).item() == pytest.approx(scl.item())
    assert ce_plus_scl(logits, emb, labels, lam=0.25, tau=0.3).item() == pytest.approx(
        0.75 * ce.item() + 0.25 * scl.item()
    )


def test_distillation_loss_is_zero_on_the_teacher_and_grows_away_from_it():
    from minbert.training.losses import distillation_loss

    torch.manual_seed(0)
    teacher = torch.randn(8, 5)
    for kind in ("ce", "bce", "mse"):
        same = distillation_loss(teacher.clone(), teacher, kind, 2.0)
        near = distillation_loss(teacher + 0.1 * torch.randn(8, 5), teacher, kind, 2.0)
        far = distillation_loss(torch.randn(8, 5), teacher, kind, 2.0)
        if kind == "bce":  # BCE against soft targets bottoms out at their entropy, not at 0
            entropy = torch.nn.functional.binary_cross_entropy(torch.sigmoid(teacher / 2), torch.sigmoid(teacher / 2))
            assert same.item() == pytest.approx(4 * entropy.item(), rel=1e-5)
        else:
            assert same.item() == pytest.approx(0.0, abs=1e-6)
        assert same < near < far, kind


def test_distillation_kl_is_scaled_by_t_squared_so_gradients_keep_their_size():
    """Hinton et al.: the soft-target gradient shrinks as 1/T^2; multiplying by T^2 keeps it about constant."""
    from minbert.training.losses import distillation_loss

    torch.manual_seed(1)
    teacher, start = torch.randn(16, 10), torch.randn(16, 10)
    norms = []
    for temperature in (4.0, 16.0):
        student = start.clone().requires_grad_(True)
        distillation_loss(student, teacher, "ce", temperature).backward()
        norms.append(student.grad.norm().item())
    assert norms[0] == pytest.approx(norms[1], rel=0.1)  # without the T^2 factor: 16x apart


def test_cosine_pairs_is_the_squared_error_of_each_cosine_to_its_target():
    first = torch.tensor([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    second = torch.tensor([[2.0, 0.0], [4.0, -3.0], [-1.0, -1.0]])  # cosines 1, 0, -1
    got = cosine_pairs(first, second, torch.tensor([1.0, 1.0, 0.0])).item()
    assert got == pytest.approx((0.0 + 1.0 + 1.0) / 3, rel=1e-6)
