"""BERT, written out block by block (Devlin et al., 2019), with the few switches its relatives need.

    tokens -> Embeddings -> [Layer] x N -> last_hidden_state -> Pooler -> pooler_output
    Layer:  x = LayerNorm(x + SelfAttention(x));  x = LayerNorm(x + FeedForward(x))

The relatives differ in three places only, each a switch on `EncoderConfig`: where positions start
(RoBERTa, XLM-R, MPNet count from pad_token_id + 1 and skip pads), whether there are token types
(not in MPNet, DistilBERT) and a pooler (not in DistilBERT), and MPNet's relative-position bias, one
table for all layers, added to every layer's attention scores.

Parameter names are our own; `model/checkpoint.py` reads and writes the files and maps each family's
names to and from Hugging Face's, so those checkpoints load here and ours load there.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from minbert.errors import MinbertError
from minbert.model.checkpoint import (
    check_state,
    family_of,
    read_hf_config,
    read_state_dict,
    resolve_checkpoint,
    save_checkpoint,
    to_minbert_state_dict,
)
from minbert.model.dropout import Dropout
from minbert.model.onnx_attention import attention

log = logging.getLogger(__name__)

ACTIVATIONS = {
    "gelu": nn.GELU(),
    "gelu_new": nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": nn.GELU(approximate="tanh"),
    "relu": nn.ReLU(),
    "silu": nn.SiLU(),
    "swish": nn.SiLU(),
}


# Sane maxima for the sizes a config.json may ask for, checked before allocating (the largest public BERT-family
# encoders are well inside them: XLM-R XL has 250,002 words, hidden 2,560, 36 layers).
SIZE_BOUNDS = {
    "vocab_size": (1, 1_000_000),
    "hidden_size": (1, 16_384),
    "num_hidden_layers": (1, 256),
    "num_attention_heads": (1, 1_024),
    "intermediate_size": (1, 65_536),
    "max_position_embeddings": (1, 65_536),
    "type_vocab_size": (0, 1_024),
    "pad_token_id": (0, 1_000_000),
    "relative_attention_num_buckets": (0, 4_096),
}
MAX_PARAMETERS = 4_000_000_000


@dataclass
class EncoderConfig:
    """The sizes of an encoder and its family's switches; field names follow Hugging Face's BERT `config.json`.

    `model_type` picks the family (see `model/checkpoint.FAMILIES`): RoBERTa / XLM-R / MPNet count
    positions from pad_token_id + 1 (`padded_positions`), MPNet and DistilBERT have no token types
    (`type_vocab_size` 0), DistilBERT has no pooler, MPNet adds one relative-position attention bias
    (`relative_attention_num_buckets`) shared by every layer."""

    model_type: str = "bert"

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
    padded_positions: bool = False
    relative_attention_num_buckets: int = 0
    has_pooler: bool = True
    source: dict[str, Any] = field(default_factory=dict, repr=False)  # the config.json read, written back on save

    def __post_init__(self) -> None:
        for name, (low, high) in SIZE_BOUNDS.items():  # before anything is allocated from an untrusted file
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} {value!r} is not a whole number from {low} to {high:,}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"{name} {value!r} is not a probability in [0, 1)")
        if (
            isinstance(self.layer_norm_eps, bool)
            or not isinstance(self.layer_norm_eps, int | float)
            or not (0 < self.layer_norm_eps < 1)
        ):
            raise ValueError(f"layer_norm_eps {self.layer_norm_eps!r} is not a small positive number")
        parameters = self.parameter_count()
        if parameters > MAX_PARAMETERS:
            raise ValueError(
                f"these sizes make {parameters / 1e9:.1f}B parameters ({4 * parameters / 2**30:.0f} GiB in fp32); "
                f"minbert loads encoders of up to {MAX_PARAMETERS / 1e9:.0f}B"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act {self.hidden_act!r} is not one of {sorted(ACTIVATIONS)}")

    @classmethod
    def from_hf_dict(cls, config: dict[str, Any]) -> EncoderConfig:
        """Keep the fields the encoder needs (HF configs carry many more), in the family's own key names."""
        model_type = config.get("model_type", "bert")
        family = family_of(model_type)
        known = {f.name for f in fields(cls)} - {"source", "padded_positions", "has_pooler", "model_type"}
        values = {k: v for k, v in config.items() if k in known and v is not None}
        values.update({ours: config[hf] for hf, ours in family.config_keys.items() if config.get(hf) is not None})
        values.update(family.fixed)
        if not family.token_types:
            values["type_vocab_size"] = 0
        if family.relative_buckets:
            values["relative_attention_num_buckets"] = int(config.get("relative_attention_num_buckets", 32))
        else:
            values.pop("relative_attention_num_buckets", None)
        return cls(
            model_type=model_type,
            padded_positions=family.padded_positions,
            has_pooler=family.pooler,
            source=dict(config),
            **values,
        )

    def to_hf_dict(self) -> dict[str, Any]:
        """A `config.json` that `transformers.AutoModel.from_pretrained` accepts: the one read, with this
        encoder's values (e.g. a changed dropout) under the family's key names."""
        family = family_of(self.model_type)
        ours = {k: v for k, v in asdict(self).items() if k not in ("source", "padded_positions", "has_pooler")}
        if not family.token_types:
            ours.pop("type_vocab_size")
        if not family.relative_buckets:
            ours.pop("relative_attention_num_buckets")
        for hf, name in family.config_keys.items():
            ours[hf] = ours.pop(name)
        for name in family.fixed:
            ours.pop(name, None)
        defaults = (
            {"architectures": ["BertModel"], "position_embedding_type": "absolute"} if self.model_type == "bert" else {}
        )
        return {**defaults, **self.source, **ours}

    def parameter_count(self) -> int:
        """Roughly how many weights these sizes make (embeddings and layers), to refuse absurd ones up front."""
        h, i = self.hidden_size, self.intermediate_size
        embeddings = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h
        return embeddings + self.num_hidden_layers * (4 * h * h + 2 * h * i)

    @property
    def max_tokens(self) -> int:
        """The longest sequence the position table covers (fairseq-style positions skip pad_token_id + 1 slots)."""
        return self.max_position_embeddings - (self.pad_token_id + 1 if self.padded_positions else 0)


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor | None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class Embeddings(nn.Module):
    """Word + position (+ token-type) embeddings, then LayerNorm and dropout."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.padded_positions, self.pad_id = config.padded_positions, config.pad_token_id
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size) if config.type_vocab_size else None
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """0, 1, 2, ... (BERT); or, fairseq's rule (RoBERTa, XLM-R, MPNet), pad_id + 1, pad_id + 2, ... over
        real tokens while pads keep pad_id."""
        if not self.padded_positions:
            return torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        real = (attention_mask if attention_mask is not None else input_ids.ne(self.pad_id)).long()
        return torch.cumsum(real, dim=1) * real + self.pad_id

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.word(input_ids) + self.position(self.positions(input_ids, attention_mask))
        if self.token_type is not None:
            x = x + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


def relative_position_buckets(
    length: int, num_buckets: int, device: torch.device, max_distance: int = 128
) -> torch.Tensor:
    """(length, length) bucket of each query-key distance, as MPNet (after T5) buckets them: half the buckets
    per direction, exact for short distances, logarithmic up to max_distance, the last bucket beyond."""
    query = torch.arange(length, device=device)[:, None]
    key = torch.arange(length, device=device)[None, :]
    distance = query - key
    half = num_buckets // 2
    bucket = (distance < 0).long() * half
    distance = distance.abs()
    exact = half // 2
    scaled = torch.log(distance.float() / exact) / math.log(max_distance / exact) * (half - exact)
    far = torch.clamp(exact + scaled.long(), max=half - 1)
    return bucket + torch.where(distance < exact, distance, far)


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
        self.probs_dropout = Dropout(config.attention_probs_dropout_prob)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():  # one fused ONNX Runtime node (model/onnx_attention.py)
            keep = bias = None
            if mask is not None and mask.dtype == torch.bool:  # (batch, 1, 1, length): which tokens are real
                keep = mask[:, 0, 0, :].to(torch.int32)
            elif mask is not None:
                bias = mask.to(x.dtype)
            context = attention(self.query(x), self.key(x), self.value(x), keep, bias, self.num_heads)
            return self.dropout(self.out(context))
        q, k, v = self.split_heads(self.query(x)), self.split_heads(self.key(x)), self.split_heads(self.value(x))
        if mask is not None and mask.dtype != torch.bool:  # an additive bias (MPNet) in the queries' dtype (bf16 too)
            mask = mask.to(q.dtype)
        dropout = self.probs_dropout.p if self.training else 0.0
        if dropout > 0 and not q.is_cuda:
            context = self.spelled_out(q, k, v, mask)
        else:  # on a GPU, SDPA's fused kernels draw the attention dropout themselves
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        context = context.transpose(1, 2).reshape(x.shape)
        return self.dropout(self.out(context))

    def spelled_out(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """SDPA's own math, written out for dropout on the attention probabilities on a CPU (SDPA would draw that
        mask with PyTorch's slow CPU generator)."""
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        return self.probs_dropout(torch.softmax(scores, dim=-1)) @ v


class FeedForward(nn.Module):
    """Position-wise two-layer MLP: hidden -> intermediate -> activation -> hidden."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = Dropout(config.hidden_dropout_prob)

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
    """A BERT-family encoder. Load one with `Encoder.from_pretrained(path)` (the family from config.json)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))
        self.pooler = Pooler(config) if config.has_pooler else None
        self.relative_bias = (
            nn.Embedding(config.relative_attention_num_buckets, config.num_attention_heads)
            if config.relative_attention_num_buckets
            else None
        )
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
        x = self.embeddings(input_ids, token_type_ids, attention_mask)
        mask = self.attention_bias(attention_mask)
        if self.relative_bias is not None:  # one (heads, length, length) bias for every layer, padding masked in it
            buckets = relative_position_buckets(
                input_ids.shape[1], self.config.relative_attention_num_buckets, x.device
            )
            bias = self.relative_bias(buckets).permute(2, 0, 1)[None]
            mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        hidden_states = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, mask)
            if hidden_states is not None:
                hidden_states.append(x)
        return EncoderOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x) if self.pooler is not None else None,
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
        if k > 0 and self.pooler is not None:
            self.pooler.apply(self.init_weights)

    def set_dropout(self, p: float) -> None:
        """One dropout rate for embeddings, attention and hidden states (0 = deterministic training)."""
        self.config.hidden_dropout_prob = self.config.attention_probs_dropout_prob = p
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = p

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, device: str | torch.device = "cpu") -> Encoder:
        """Load a Hugging Face-format BERT checkpoint; no path = the default all-MiniLM-L6-v2.
        Every weight that does not fit is reported (missing: an error; left over: a warning)."""
        directory = resolve_checkpoint(path)
        try:
            config = EncoderConfig.from_hf_dict(read_hf_config(directory))
        except (TypeError, ValueError) as e:
            raise MinbertError(f"{directory / 'config.json'}: {e}") from e
        state, unexpected = to_minbert_state_dict(read_state_dict(directory), directory, config.model_type)
        encoder = cls(config)
        check_state(state, encoder.state_dict(), directory, unexpected, config.model_type)
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
