"""Training objectives beyond plain cross-entropy: contrastive losses on sentence vectors.

    nt_xent       SimCLR / SimCSE (Chen et al. 2020; Gao et al. 2021): two views of each sentence
                  (two dropout masks), the other view is the positive, the other 2N-2 vectors negatives.
    supcon        supervised contrastive (Khosla et al. 2020): every same-label vector in the batch is
                  a positive; the formula Gunel et al. (2021) use as L_SCL.
    ce_plus_scl   (1 - lambda) * CE + lambda * SCL (Gunel et al. 2021).
    cosine_pairs  SetFit's body objective (Tunstall et al. 2022): the cosine of a pair's two vectors
                  regressed onto 1 (same label) or 0 (different labels), mean squared error.
    cosent        a ranking loss for regression on sentence pairs (Su 2022): scale-free, Spearman-shaped.

The contrastive ones take raw vectors and L2-normalise them; tau is the temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _similarities(z: torch.Tensor, tau: float) -> torch.Tensor:
    """Cosine similarity / tau with the diagonal (self-similarity) removed from every softmax."""
    z = F.normalize(z.float(), dim=-1)
    logits = z @ z.T / tau
    return logits.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))


def nt_xent(view_a: torch.Tensor, view_b: torch.Tensor, tau: float = 0.05) -> torch.Tensor:
    """Mean over the 2N anchors of -log softmax(positive) among all other vectors."""
    n = len(view_a)
    logits = _similarities(torch.cat([view_a, view_b]), tau)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(logits.device)
    return F.cross_entropy(logits, positives)


def supcon(embeddings: torch.Tensor, labels: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Mean over anchors that have a positive of -mean_p log softmax(p). Anchors whose class occurs
    once in the batch have no positive and are left out (not NaN); with none at all the loss is 0."""
    log_prob = F.log_softmax(_similarities(embeddings, tau), dim=-1)
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    positives = same.sum(1)
    has_positive = positives > 0
    if not has_positive.any():
        return embeddings.sum() * 0.0
    per_anchor = -log_prob.masked_fill(~same, 0.0).sum(1)[has_positive] / positives[has_positive]
    return per_anchor.mean()


def ce_plus_scl(
    logits: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor, lam: float = 0.9, tau: float = 0.3
) -> torch.Tensor:
    """Gunel et al.'s fine-tuning objective: cross-entropy plus the supervised contrastive term."""
    return (1 - lam) * F.cross_entropy(logits.float(), labels) + lam * supcon(embeddings, labels, tau)


def cosine_pairs(first: torch.Tensor, second: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error between each pair's cosine similarity and its target (1 = same label, 0 = not)."""
    return F.mse_loss(F.cosine_similarity(first.float(), second.float(), dim=-1), targets.float())


def cosent(scores: torch.Tensor, targets: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT (Su 2022): log(1 + sum over pairs with target_i > target_j of exp(scale * (s_j - s_i))).

    It only asks that pairs be ranked like their gold scores, so the score's scale is free (cosine,
    or any head output), and it optimises what Spearman measures."""
    scores = scores.float()
    differences = scale * (scores[None, :] - scores[:, None])  # [i, j] = scale * (s_j - s_i)
    ranked = targets[:, None] > targets[None, :]
    terms = differences[ranked]
    return torch.logsumexp(torch.cat([terms.new_zeros(1), terms]), dim=0)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, loss: str, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target loss: T^2 * KL(teacher || student) on softmaxes at temperature T for
    softmax heads, T^2 * BCE against the teacher's sigmoids at T for sigmoid heads, and MSE to the teacher's
    outputs for regression heads. The T^2 keeps the gradient scale independent of T."""
    t = temperature
    if loss == "ce":
        return (
            t
            * t
            * F.kl_div(
                F.log_softmax(student / t, dim=-1),
                F.log_softmax(teacher / t, dim=-1),
                reduction="batchmean",
                log_target=True,
            )
        )
    if loss == "bce":
        return t * t * F.binary_cross_entropy_with_logits(student / t, torch.sigmoid(teacher / t))
    return F.mse_loss(student, teacher)
