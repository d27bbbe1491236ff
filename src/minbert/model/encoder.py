"""BERT, written out block by block (Devlin et al., 2019).

    tokens -> Embeddings -> [Layer] x N -> last_hidden_state -> Pooler -> pooler_output
    Layer:  x = LayerNorm(x + SelfAttention(x));  x = LayerNorm(x + FeedForward(x))

Parameter names are our own; `model/checkpoint.py` reads and writes the files and maps the
names to and from Hugging Face's, so any BERT checkpoint in that format loads here and ours load there.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from minbert.errors import MinbertError
from minbert.model.checkpoint import (
    check_state,
    read_hf_config,
    read_state_dict,
    resolve_checkpoint,
    save_checkpoint,
    to_minbert_state_dict,
)

log = logging.getLogger(__name__)

ACTIVATIONS = {
    "gelu": nn.GELU(),
    "gelu_new": nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": nn.GELU(approximate="tanh"),
    "relu": nn.ReLU(),
    "silu": nn.SiLU(),
    "swish": nn.SiLU(),
}


@dataclass
class EncoderConfig:
    """The sizes of a BERT encoder; field names follow Hugging Face's `config.json`."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act {self.hidden_act!r} is not one of {sorted(ACTIVATIONS)}")

    @classmethod
    def from_hf_dict(cls, config: dict[str, Any]) -> EncoderConfig:
        """Keep the fields BERT needs; HF configs carry many more (architectures, use_cache...)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in known and v is not None})

    def to_hf_dict(self) -> dict[str, Any]:
        """A `config.json` that `transformers.BertModel.from_pretrained` accepts."""
        return {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "position_embedding_type": "absolute",
            **asdict(self),
        }


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


class Embeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product attention over the whole sequence (no causal mask)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self.split_heads(self.query(x)), self.split_heads(self.key(x)), self.split_heads(self.value(x))
        context = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attention_dropout if self.training else 0.0
        )
        context = context.transpose(1, 2).reshape(x.shape)
        return self.dropout(self.out(context))


class FeedForward(nn.Module):
    """Position-wise two-layer MLP: hidden -> intermediate -> activation -> hidden."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.activation(self.up(x))))


class Layer(nn.Module):
    """One transformer block, post-LayerNorm as in the original BERT."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.feed_forward_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x, mask))
        return self.feed_forward_norm(x + self.feed_forward(x))


class Pooler(nn.Module):
    """Dense + tanh on the [CLS] vector, as pre-trained by next-sentence prediction."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))


class Encoder(nn.Module):
    """A BERT encoder. Load one with `Encoder.from_pretrained(path)`."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))
        self.pooler = Pooler(config)
        self.apply(self.init_weights)

    def init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation: N(0, initializer_range) weights, zero biases, unit LayerNorm."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> EncoderOutput:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        mask = self.attention_bias(attention_mask)
        hidden_states = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, mask)
            if hidden_states is not None:
                hidden_states.append(x)
        return EncoderOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x),
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )

    @staticmethod
    def attention_bias(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """(batch, length) 1/0 mask -> (batch, 1, 1, length) boolean "may attend" mask.

        None when nothing is padded, which lets SDPA pick its fastest kernel (eager mode only:
        under torch.compile / ONNX export the check would be data-dependent control flow).
        """
        if attention_mask is None:
            return None
        if not torch.compiler.is_compiling() and bool(attention_mask.all()):
            return None
        return attention_mask.bool()[:, None, None, :]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def reinit_top_layers(self, k: int) -> None:
        """Re-initialise the top k layers (and the pooler): Zhang et al. 2021, 'Revisiting few-sample BERT fine-tuning'."""
        for layer in list(self.layers)[self.num_layers - k :]:
            layer.apply(self.init_weights)
        if k > 0:
            self.pooler.apply(self.init_weights)

    def set_dropout(self, p: float) -> None:
        """One dropout rate for embeddings, attention and hidden states (0 = deterministic training)."""
        self.config.hidden_dropout_prob = self.config.attention_probs_dropout_prob = p
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = p
            if isinstance(module, SelfAttention):
                module.attention_dropout = p

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, device: str | torch.device = "cpu") -> Encoder:
        """Load a Hugging Face-format BERT checkpoint; no path = the default all-MiniLM-L6-v2.
        Every weight that does not fit is reported (missing: an error; left over: a warning)."""
        directory = resolve_checkpoint(path)
        try:
            config = EncoderConfig.from_hf_dict(read_hf_config(directory))
        except (TypeError, ValueError) as e:
            raise MinbertError(f"{directory / 'config.json'}: {e}") from e
        state, unexpected = to_minbert_state_dict(read_state_dict(directory), directory)
        encoder = cls(config)
        check_state(state, encoder.state_dict(), directory, unexpected)
        encoder.load_state_dict(state, strict=False)  # a missing pooler is allowed; the rest was checked
        log.info("loaded %s (%d layers, hidden %d)", directory, config.num_hidden_layers, config.hidden_size)
        return encoder.to(device).eval()

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `config.json` + `model.safetensors` with Hugging Face names."""
        return save_checkpoint(self.state_dict(), self.config.to_hf_dict(), directory)

    def flops_per_token(self, length: int) -> float:
        """Forward FLOPs per token at a given sequence length (2 per multiply-add)."""
        h, i = self.config.hidden_size, self.config.intermediate_size
        per_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * length * h
        return float(self.num_layers * per_layer + 2 * h * h / max(length, 1))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
