"""What sits on top of the encoder: pooling to one vector per sentence, then named task heads.

Each head reads the sentence vector in one of three ways (Reimers & Gurevych 2019 for the bi-encoder):

    single   one sentence                    -> head(v)
    cross    the pair as one sequence        -> head(v of [CLS] a [SEP] b [SEP], token types 0/1)
    bi       each sentence on its own        -> head(u, v, |u - v|, u * v)   or   cosine(u, v)

and predicts classes (`classification`: one of them, or with `multilabel` any subset) or a number
(`regression`, e.g. STS similarity 0-5, which the head sees scaled to [0, 1] by `target_range`).

A classification head can also say "none of these" (out-of-scope rejection): from its logits (msp,
energy) or from the sentence vector it reads (mahalanobis, knn: statistics of the training vectors,
kept as buffers of the head so they are saved, reloaded and exported with it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from minbert.errors import MinbertError
from minbert.model.dropout import Dropout
from minbert.model.encoder import EncoderOutput

POOLING_MODES = ("cls", "mean", "pooler")
HEAD_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
HEAD_LOSSES = {"classification": ("ce", "bce"), "regression": ("mse", "bce", "cosent")}
OOS_METHODS = ("none", "msp", "energy", "mahalanobis", "knn")
MAX_LABELS = 100_000  # classes or labels of one head
MAX_WIDTH = 65_536  # a head's hidden layer, a shared projection
MAX_BANK_ROWS = 2_000_000  # training vectors a knn head keeps
VECTOR_OOS_METHODS = ("mahalanobis", "knn")  # scored from the head's input vector, not its logits


class Pooling(nn.Module):
    """Token vectors -> sentence vector: [CLS], the mean over real tokens, or BERT's pooler."""

    def __init__(self, mode: str = "cls") -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling {mode!r} is not one of {POOLING_MODES}")
        self.mode = mode

    def forward(self, output: EncoderOutput, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.mode == "pooler":
            if output.pooler_output is None:
                raise MinbertError(
                    "pooling 'pooler' needs an encoder with a pooler; this family has none: use cls or mean"
                )
            return output.pooler_output
        hidden = output.last_hidden_state
        if self.mode == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class ClassificationHead(nn.Module):
    """dropout -> [linear -> activation -> dropout] -> linear; the bracket only when hidden_size > 0."""

    def __init__(
        self, in_features: int, num_labels: int, hidden_size: int = 512, activation: str = "relu", dropout: float = 0.1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [Dropout(dropout)]
        if hidden_size > 0:
            layers += [nn.Linear(in_features, hidden_size), HEAD_ACTIVATIONS[activation](), Dropout(dropout)]
            in_features = hidden_size
        layers.append(nn.Linear(in_features, num_labels))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


@dataclass
class HeadSpec:
    """What one head is; saved with the model so it reloads and predicts the same way (and is read from an
    untrusted minbert.json, so every size and number is checked before anything is built from it)."""

    name: str
    kind: str = "classification"
    input: str = "single"
    features: str = "concat"
    loss: str = "ce"
    labels: list[str] = field(default_factory=list)
    hidden_size: int = 0
    activation: str = "relu"
    dropout: float = 0.1
    target_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    temperature: float = 1.0  # calibration: logits / T before the softmax (fitted on dev)
    oos_method: str = "none"  # out-of-scope rejection: msp | energy (from the logits), mahalanobis | knn (the vector)
    oos_threshold: float | None = None  # reject when the in-scope score is below it (chosen on dev)
    oos_label: str = "oos"
    oos_k: int = 10  # knn: the k-th nearest training vector
    oos_bank_size: int = 0  # knn: how many training vectors the head keeps
    multilabel: bool = False  # sigmoid per label (BCE): any subset of the labels
    thresholds: list[float] = field(default_factory=list)  # multilabel: probability threshold per label (tuned on dev)

    def _check_bounds(self, where: str) -> None:
        def whole(value: Any, low: int, high: int) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

        def finite(value: Any) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise MinbertError(f"{where}: a head's name must be a name (letters, digits, _)")
        for name in ("kind", "input", "features", "loss", "activation", "oos_method", "oos_label"):
            if not isinstance(getattr(self, name), str):
                raise MinbertError(f"{where}: {name} {getattr(self, name)!r} is not a string")
        if not isinstance(self.multilabel, bool):
            raise MinbertError(f"{where}: multilabel {self.multilabel!r} is not true or false")
        if not isinstance(self.labels, list) or not all(isinstance(label, str) for label in self.labels):
            raise MinbertError(f"{where}: labels must be a list of names")
        if len(self.labels) > MAX_LABELS:
            raise MinbertError(f"{where}: {len(self.labels):,} labels; minbert heads hold at most {MAX_LABELS:,}")
        for name, high in (("hidden_size", MAX_WIDTH), ("oos_bank_size", MAX_BANK_ROWS), ("oos_k", MAX_BANK_ROWS)):
            if not whole(getattr(self, name), 0, high):
                raise MinbertError(f"{where}: {name} {getattr(self, name)!r} is not a whole number from 0 to {high:,}")
        if not finite(self.dropout) or not 0 <= self.dropout < 1:
            raise MinbertError(f"{where}: dropout {self.dropout!r} is not a probability in [0, 1)")
        if not finite(self.temperature) or self.temperature <= 0:
            raise MinbertError(f"{where}: temperature {self.temperature!r} is not a positive number")
        if self.oos_threshold is not None and not finite(self.oos_threshold):
            raise MinbertError(f"{where}: oos_threshold {self.oos_threshold!r} is not a number")
        if not (
            isinstance(self.target_range, list) and len(self.target_range) == 2 and all(map(finite, self.target_range))
        ):
            raise MinbertError(f"{where}: target_range {self.target_range!r} is not [min, max]")
        if not isinstance(self.thresholds, list) or not all(finite(t) and 0 <= t <= 1 for t in self.thresholds):
            raise MinbertError(f"{where}: thresholds must be probabilities in [0, 1]")

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        self._check_bounds(where)
        if self.kind not in HEAD_LOSSES:
            raise MinbertError(f"{where}: head kind {self.kind!r} is not classification or regression")
        if self.input not in ("single", "cross", "bi"):
            raise MinbertError(f"{where}: head input {self.input!r} is not single, cross or bi")
        if self.activation not in HEAD_ACTIVATIONS:
            raise MinbertError(
                f"{where}: head activation {self.activation!r} is not one of {', '.join(HEAD_ACTIVATIONS)}"
            )
        if self.kind == "classification":
            if self.loss not in HEAD_LOSSES["classification"]:
                raise MinbertError(f"{where}: a classification head trains with loss ce or bce, not {self.loss}")
            if self.multilabel and self.loss != "bce":
                raise MinbertError(
                    f"{where}: a multilabel head trains with loss bce (a sigmoid per label), not {self.loss}"
                )
            if self.multilabel and self.input == "bi":
                raise MinbertError(f"{where}: a multilabel head reads one sequence (input single or cross), not bi")
            if self.loss == "bce" and not self.multilabel and len(self.labels) != 2:
                raise MinbertError(
                    f"{where}: loss bce needs exactly 2 labels, the data has {len(self.labels)}; use loss ce"
                )
            if self.input == "bi" and self.features == "cosine":
                raise MinbertError(
                    f"{where}: cosine features give one score; classify pairs with features concat (or kind regression)"
                )
        elif self.loss not in HEAD_LOSSES["regression"]:
            raise MinbertError(f"{where}: a regression head trains with loss mse, bce or cosent, not {self.loss}")
        if self.input != "bi" and self.features == "cosine":
            raise MinbertError(f"{where}: features cosine needs input bi (two separately encoded sentences)")
        if self.oos_method not in OOS_METHODS:
            raise MinbertError(f"{where}: oos method {self.oos_method!r} is not one of {', '.join(OOS_METHODS)}")
        if self.oos_method != "none" and ((self.kind, self.loss) != ("classification", "ce") or self.input != "single"):
            raise MinbertError(
                f"{where}: out-of-scope rejection needs a single-sentence classification head with loss ce"
            )
        if self.oos_k < 1:
            raise MinbertError(f"{where}: oos k {self.oos_k} must be at least 1")
        if self.thresholds and (not self.multilabel or len(self.thresholds) != len(self.labels)):
            raise MinbertError(f"{where}: thresholds are one per label of a multilabel head")
        if self.temperature <= 0:
            raise MinbertError(f"{where}: temperature {self.temperature} must be above 0")

    @property
    def pair(self) -> bool:
        return self.input in ("cross", "bi")

    @property
    def outputs(self) -> int:
        """Logits per example: one per class for CE and multilabel, one otherwise."""
        return len(self.labels) if self.kind == "classification" and (self.loss == "ce" or self.multilabel) else 1

    @property
    def label_thresholds(self) -> torch.Tensor:
        """A multilabel head's probability threshold per label (0.5 until tuned on dev)."""
        return torch.tensor(self.thresholds or [0.5] * len(self.labels))

    def to_unit(self, value: float) -> float:
        low, high = self.target_range
        return (value - low) / (high - low)

    def from_unit(self, value: torch.Tensor) -> torch.Tensor:
        low, high = self.target_range
        return low + value * (high - low)

    def scores(self, raw: torch.Tensor) -> torch.Tensor:
        """A regression head's output in the gold units (BCE heads through a sigmoid first)."""
        return self.from_unit(torch.sigmoid(raw) if self.loss == "bce" else raw)

    def probabilities(self, raw: torch.Tensor) -> torch.Tensor:
        """A classification head's class probabilities: softmax (CE), [1 - sigmoid, sigmoid] (BCE), or one sigmoid
        per label (multilabel; rows need not sum to 1), of the logits divided by the calibration temperature."""
        if self.multilabel:
            return torch.sigmoid(raw.float() / self.temperature)
        if self.loss == "bce":
            raw = torch.stack([torch.zeros_like(raw), raw], dim=-1)  # softmax([0, z]) = [1 - sigmoid z, sigmoid z]
        return torch.softmax(raw.float() / self.temperature, dim=-1)

    def in_scope_scores(self, raw: torch.Tensor) -> torch.Tensor:
        """How in-scope each input looks from the logits (higher: more): the max softmax probability (Hendrycks &
        Gimpel 2017), or the negative energy T * logsumexp(logits / T) (Liu et al. 2020), both at the calibration
        temperature. The vector methods' scores come from the head itself (`TaskHead.in_scope`)."""
        if self.oos_method == "msp":
            return self.probabilities(raw).max(-1).values
        if self.oos_method == "energy":
            return self.temperature * torch.logsumexp(raw.float() / self.temperature, dim=-1)
        raise MinbertError(f"task {self.name!r}: oos method {self.oos_method!r} does not score from the logits")

    @property
    def rejects(self) -> bool:
        return self.oos_method != "none" and self.oos_threshold is not None

    def predicted_ids(self, raw: torch.Tensor) -> torch.Tensor:
        """Class ids (CE, BCE), or a multilabel head's 0/1 per label at its thresholds."""
        if self.multilabel:
            return (self.probabilities(raw) >= self.label_thresholds).long()
        return (raw > 0).long() if self.loss == "bce" else raw.argmax(-1)


class MahalanobisScore(nn.Module):
    """-min over classes of the Mahalanobis distance to the class mean, one covariance shared by all classes
    (Lee et al. 2018; on fine-tuned transformers' sentence vectors, Podolskiy et al. 2021). Kept whitened: with
    W W^T the pseudo-inverse of the covariance, the distance is |zW - mean_c W|^2, a matrix product at inference."""

    whitening: torch.Tensor
    means: torch.Tensor

    def __init__(self, classes: int, width: int) -> None:
        super().__init__()
        self.register_buffer("whitening", torch.eye(width))
        self.register_buffer("means", torch.zeros(classes, width))  # whitened class means

    @torch.no_grad()
    def fit(self, vectors: torch.Tensor, targets: torch.Tensor) -> None:
        vectors, classes = vectors.double(), self.means.shape[0]
        counts = torch.bincount(targets, minlength=classes)
        if bool((counts == 0).any()):
            raise MinbertError("oos.method mahalanobis needs training examples of every class")
        means = torch.zeros(classes, vectors.shape[1], dtype=torch.float64).index_add_(0, targets, vectors)
        means /= counts.unsqueeze(1)
        centered = vectors - means[targets]
        values, vectors_ = torch.linalg.eigh(centered.T @ centered / len(centered))
        kept = values > values.max() * 1e-10  # the pseudo-inverse: directions without variance are left out
        whitening = torch.where(kept, values.clamp(min=1e-300).rsqrt(), torch.zeros_like(values)) * vectors_
        self.whitening.copy_(whitening.float())
        self.means.copy_((means @ whitening).float())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Differences taken directly ((batch, classes, width) at once): the expansion |w|^2 - 2 w.m + |m|^2 lost
        a relative 1e-3 to cancellation at these magnitudes."""
        w = z.float() @ self.whitening
        return -(w.unsqueeze(1) - self.means).square().sum(-1).min(-1).values


class KnnScore(nn.Module):
    """-(cosine distance to the k-th nearest training vector) (Sun et al. 2022): training vectors kept unit-length."""

    bank: torch.Tensor

    def __init__(self, rows: int, width: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.register_buffer("bank", torch.zeros(rows, width))

    @torch.no_grad()
    def fit(self, vectors: torch.Tensor) -> None:
        if len(vectors) < self.k:
            raise MinbertError(f"oos.k {self.k} is more than the {len(vectors)} training vectors; lower oos.k")
        self.bank = F.normalize(vectors.float(), dim=-1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        similarity = F.normalize(z.float(), dim=-1) @ self.bank.T
        return similarity.topk(self.k, dim=-1).values[:, -1] - 1.0


class TaskHead(nn.Module):
    """Sentence vector(s) -> this task's raw output: (batch, classes) for CE and multilabel, (batch,) otherwise;
    with a vector out-of-scope method, also the in-scope score of each input (`in_scope`)."""

    def __init__(self, spec: HeadSpec, width: int) -> None:
        super().__init__()
        self.spec = spec
        self.mlp: ClassificationHead | None = None
        if spec.features != "cosine":
            in_features = 4 * width if spec.input == "bi" else width
            self.mlp = ClassificationHead(in_features, spec.outputs, spec.hidden_size, spec.activation, spec.dropout)
        self.rejector: MahalanobisScore | KnnScore | None = None
        if spec.oos_method in VECTOR_OOS_METHODS:
            self.set_rejector(width)

    def set_rejector(self, width: int) -> None:
        """The scorer of the spec's vector method, with empty statistics (fitted on train, or loaded)."""
        self.rejector = (
            MahalanobisScore(len(self.spec.labels), width)
            if self.spec.oos_method == "mahalanobis"
            else KnnScore(self.spec.oos_bank_size, width, self.spec.oos_k)
        )

    def in_scope(self, u: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """How in-scope each input looks (higher: more), by the spec's method: from the vector or from the logits."""
        return self.rejector(u) if self.rejector is not None else self.spec.in_scope_scores(raw)

    def forward(self, u: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
        if self.spec.input == "bi":
            if v is None:
                raise ValueError(f"head {self.spec.name!r} reads two sentence vectors (input bi)")
            if self.mlp is None:
                return F.cosine_similarity(u.float(), v.float(), dim=-1)
            u = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        assert self.mlp is not None  # only a bi head has no MLP (cosine)
        out = self.mlp(u)
        return out if self.spec.outputs > 1 else out.squeeze(-1)
