"""Sentence embeddings from any checkpoint: encoder -> pooling -> (optional) L2 normalisation.

A sentence-transformers checkpoint describes that pipeline in `modules.json`,
`1_Pooling/config.json` and `sentence_bert_config.json`; we read those files and encode the way
sentence-transformers does. A plain BERT checkpoint gets mean pooling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minbert.data.batching import sorted_batches
from minbert.errors import MinbertError
from minbert.model.checkpoint import resolve_checkpoint
from minbert.model.encoder import Encoder
from minbert.model.heads import Pooling
from minbert.model.tokenizer import Tokenizer
from minbert.runtime import autocast

ST_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": None,
    "pooling_mode_mean_sqrt_len_tokens": None,
    "pooling_mode_weightedmean_tokens": None,
    "pooling_mode_lasttoken": None,
}


def read_sentence_transformers_layout(directory: Path) -> tuple[str, bool, int | None]:
    """(pooling mode, normalise?, max_seq_length) from a sentence-transformers directory, or defaults."""
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return "mean", False, None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MinbertError(f"{modules_file}: not valid JSON ({e.msg})") from e
    pooling, normalize = "mean", False
    for module in modules:
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            config_file = directory / module.get("path", "") / "config.json"
            config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
            chosen = [key for key in ST_POOLING_KEYS if config.get(key)]
            if len(chosen) != 1 or ST_POOLING_KEYS[chosen[0]] is None:
                raise MinbertError(f"{config_file}: pooling {chosen or 'none'} is not supported; minbert pools by cls or mean")
            pooling = ST_POOLING_KEYS[chosen[0]]  # type: ignore[assignment]
        elif kind.endswith("Normalize"):
            normalize = True
        elif not kind.endswith("Transformer"):
            raise MinbertError(f"{modules_file}: module {kind!r} is not supported (Transformer, Pooling, Normalize are)")
    settings_file = directory / "sentence_bert_config.json"
    max_length = json.loads(settings_file.read_text(encoding="utf-8")).get("max_seq_length") if settings_file.is_file() else None
    return pooling, normalize, max_length


def embed_texts(
    encoder: Encoder, tokenizer: Tokenizer, pooling: Pooling, texts: Sequence[str], batch_size: int = 64, bf16: bool = False
) -> torch.Tensor:
    """Pooled vectors (float32, CPU) for many texts in input order; length-sorted batches, no grad, eval mode."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    ids = tokenizer.ids(list(texts))
    out = torch.empty(len(texts), encoder.config.hidden_size)
    with torch.no_grad():
        for index in sorted_batches([len(i) for i in ids], batch_size):
            batch = tokenizer.pad([ids[i] for i in index]).to(device)
            with autocast(device, bf16):
                out[index] = pooling(encoder(**batch.as_kwargs()), batch.attention_mask).float().cpu()
    encoder.train(was_training)
    return out


class SentenceEncoder(nn.Module):
    """Text -> fixed-length vector. `encode` returns a NumPy array, like sentence-transformers."""

    def __init__(self, encoder: Encoder, tokenizer: Tokenizer, pooling: str = "mean", normalize: bool = True) -> None:
        super().__init__()
        self.encoder, self.tokenizer, self.pooling, self.normalize = encoder, tokenizer, Pooling(pooling), normalize

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> SentenceEncoder:
        directory = resolve_checkpoint(path)
        pooling, normalize, max_length = read_sentence_transformers_layout(directory)
        return cls(Encoder.from_pretrained(directory), Tokenizer.from_pretrained(directory, max_length=max_length), pooling, normalize)

    def encode(self, texts: Sequence[str], batch_size: int = 64, normalize: bool | None = None) -> np.ndarray:
        vectors = embed_texts(self.encoder, self.tokenizer, self.pooling, texts, batch_size)
        if self.normalize if normalize is None else normalize:
            vectors = F.normalize(vectors, dim=-1)
        return vectors.numpy()
