"""What sits on top of the encoder: pooling to one vector per sentence, then named task heads.

Each head reads the sentence vector in one of three ways (Reimers & Gurevych 2019 for the bi-encoder):

    single   one sentence                    -> head(v)
    cross    the pair as one sequence        -> head(v of [CLS] a [SEP] b [SEP], token types 0/1)
    bi       each sentence on its own        -> head(u, v, |u - v|, u * v)   or   cosine(u, v)

and predicts classes (`classification`) or a number (`regression`, e.g. STS similarity 0-5, which
the head sees scaled to [0, 1] by `target_range`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from minbert.errors import MinbertError
from minbert.model.encoder import EncoderOutput

POOLING_MODES = ("cls", "mean", "pooler")
HEAD_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
HEAD_LOSSES = {"classification": ("ce", "bce"), "regression": ("mse", "bce", "cosent")}
OOS_METHODS = ("none", "msp", "energy")


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
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_size > 0:
            layers += [nn.Linear(in_features, hidden_size), HEAD_ACTIVATIONS[activation](), nn.Dropout(dropout)]
            in_features = hidden_size
        layers.append(nn.Linear(in_features, num_labels))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


@dataclass
class HeadSpec:
    """What one head is; saved with the model so it reloads and predicts the same way."""

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
    oos_method: str = "none"  # out-of-scope rejection: msp | energy (scores from the logits)
    oos_threshold: float | None = None  # reject when the in-scope score is below it (chosen on dev)
    oos_label: str = "oos"

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
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
            if self.loss == "bce" and len(self.labels) != 2:
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
        if self.oos_method != "none" and (self.kind, self.loss) != ("classification", "ce"):
            raise MinbertError(f"{where}: out-of-scope rejection needs a classification head with loss ce")
        if self.temperature <= 0:
            raise MinbertError(f"{where}: temperature {self.temperature} must be above 0")

    @property
    def pair(self) -> bool:
        return self.input in ("cross", "bi")

    @property
    def outputs(self) -> int:
        """Logits per example: one per class for CE, one otherwise."""
        return len(self.labels) if self.kind == "classification" and self.loss == "ce" else 1

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
        """A classification head's class probabilities: softmax (CE), or [1 - sigmoid, sigmoid] (BCE), of the
        logits divided by the calibration temperature."""
        if self.loss == "bce":
            raw = torch.stack([torch.zeros_like(raw), raw], dim=-1)  # softmax([0, z]) = [1 - sigmoid z, sigmoid z]
        return torch.softmax(raw.float() / self.temperature, dim=-1)

    def in_scope_scores(self, raw: torch.Tensor, method: str | None = None) -> torch.Tensor:
        """How in-scope each input looks (higher: more): the max softmax probability (Hendrycks & Gimpel 2017), or
        the negative energy T * logsumexp(logits / T) (Liu et al. 2020), both at the calibration temperature."""
        method = method or self.oos_method
        if method == "msp":
            return self.probabilities(raw).max(-1).values
        if method == "energy":
            return self.temperature * torch.logsumexp(raw.float() / self.temperature, dim=-1)
        raise MinbertError(f"task {self.name!r}: no out-of-scope method (oos.method is {method!r})")

    def rejected(self, raw: torch.Tensor) -> torch.Tensor | None:
        """Which inputs the head rejects as out-of-scope (None when it does not reject)."""
        if self.oos_method == "none" or self.oos_threshold is None:
            return None
        return self.in_scope_scores(raw) < self.oos_threshold

    def predicted_ids(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw > 0).long() if self.loss == "bce" else raw.argmax(-1)


class TaskHead(nn.Module):
    """Sentence vector(s) -> this task's raw output: (batch, classes) for CE, (batch,) otherwise."""

    def __init__(self, spec: HeadSpec, width: int) -> None:
        super().__init__()
        self.spec = spec
        self.mlp: ClassificationHead | None = None
        if spec.features != "cosine":
            in_features = 4 * width if spec.input == "bi" else width
            self.mlp = ClassificationHead(in_features, spec.outputs, spec.hidden_size, spec.activation, spec.dropout)

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
