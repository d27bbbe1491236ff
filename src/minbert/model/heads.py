"""What sits on top of the encoder: pooling to one vector per sentence, then a task head."""

from __future__ import annotations

import torch
from torch import nn

from minbert.model.encoder import EncoderOutput

POOLING_MODES = ("cls", "mean", "pooler")
HEAD_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class Pooling(nn.Module):
    """Token vectors -> sentence vector: [CLS], the mean over real tokens, or BERT's pooler."""

    def __init__(self, mode: str = "cls") -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling {mode!r} is not one of {POOLING_MODES}")
        self.mode = mode

    def forward(self, output: EncoderOutput, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.mode == "pooler":
            return output.pooler_output
        hidden = output.last_hidden_state
        if self.mode == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class ClassificationHead(nn.Module):
    """dropout -> [linear -> activation -> dropout] -> linear; the bracket only when hidden_size > 0."""

    def __init__(self, in_features: int, num_labels: int, hidden_size: int = 512, activation: str = "relu", dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_size > 0:
            layers += [nn.Linear(in_features, hidden_size), HEAD_ACTIVATIONS[activation](), nn.Dropout(dropout)]
            in_features = hidden_size
        layers.append(nn.Linear(in_features, num_labels))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
