"""WordPiece tokenisation through Hugging Face `tokenizers` (Rust, fast, identical ids).

Loads `tokenizer.json` when the checkpoint has one, otherwise builds BERT's tokenizer from
`vocab.txt` and the lower-casing / accent rules in `tokenizer_config.json`. Batches are
padded to their longest member (dynamic padding), never to a fixed length.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from minbert.errors import MinbertError
from minbert.model.checkpoint import resolve_checkpoint

Pair = tuple[str, str]

CHARS_PER_TOKEN = 32  # the character cut before tokenising, per token of max_length (see Tokenizer.cut)


@dataclass
class Batch:
    """Token tensors for one batch; `to(device)` moves them together."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor

    def to(self, device: str | torch.device) -> Batch:
        return Batch(
            *(t.to(device, non_blocking=True) for t in (self.input_ids, self.attention_mask, self.token_type_ids))
        )

    def as_kwargs(self) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class Tokenizer:
    """Sentences or sentence pairs -> `Batch` of ids, truncated to `max_length`."""

    def __init__(
        self,
        backend: HFTokenizer,
        max_length: int = 128,
        do_lower_case: bool = True,
        settings: dict[str, Any] | None = None,
        special_tokens: dict[str, Any] | None = None,
    ) -> None:
        """`settings` / `special_tokens`: the checkpoint's tokenizer_config.json and special_tokens_map.json,
        kept so that a saved copy (of a BPE or SentencePiece tokenizer too) reloads in transformers as it was."""
        self.backend = backend
        self.max_length = max_length
        self.do_lower_case = do_lower_case
        self.settings, self.special_tokens = dict(settings or {}), dict(special_tokens or {})
        self.backend.no_padding()
        self.backend.enable_truncation(max_length=max_length)
        self.pad_id = self._pad_id()

    def _pad_id(self) -> int:
        """The family's padding token: as the checkpoint names it ([PAD] for BERT, <pad> for RoBERTa / MPNet)."""
        named = self.settings.get("pad_token") or self.special_tokens.get("pad_token")
        if isinstance(named, dict):
            named = named.get("content")
        for token in (named, "[PAD]", "<pad>"):
            found = self.backend.token_to_id(token) if isinstance(token, str) else None
            if found is not None:
                return found
        return 0

    def _special_id(self, token: str, default: int) -> int:
        found = self.backend.token_to_id(token)
        return default if found is None else found

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, max_length: int | None = None) -> Tokenizer:
        """Load from a checkpoint directory (None = the default checkpoint)."""
        directory = resolve_checkpoint(path)
        settings = _read_tokenizer_config(directory)
        lower = bool(settings.get("do_lower_case", True))
        if max_length is None:
            max_length = min(int(settings.get("model_max_length", 512) or 512), 512)
        tokenizer_file, vocab_file = directory / "tokenizer.json", directory / "vocab.txt"
        if tokenizer_file.is_file():
            try:
                backend = HFTokenizer.from_file(str(tokenizer_file))
            except Exception as e:
                raise MinbertError(f"{tokenizer_file}: cannot be read as a tokenizers file ({e})") from e
        elif vocab_file.is_file():
            backend = BertWordPieceTokenizer(
                str(vocab_file),
                lowercase=lower,
                strip_accents=settings.get("strip_accents"),
                handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
                clean_text=True,
            )._tokenizer
        else:
            raise MinbertError(f"{directory}: no tokenizer; expected tokenizer.json or vocab.txt")
        return cls(backend, max_length, lower, settings, _read_json(directory / "special_tokens_map.json"))

    def _write_vocab(self, directory: Path) -> None:
        vocab = sorted(self.backend.get_vocab().items(), key=lambda item: item[1])
        (directory / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")

    @property
    def wordpiece(self) -> bool:
        return type(self.backend.model).__name__ == "WordPiece"

    def save_pretrained(self, directory: str | Path) -> None:
        """Write tokenizer.json and tokenizer_config.json (+ vocab.txt for WordPiece, special_tokens_map.json
        when the checkpoint had one): readable by transformers too."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(directory / "tokenizer.json"))
        if self.special_tokens:
            (directory / "special_tokens_map.json").write_text(
                json.dumps(self.special_tokens, indent=2) + "\n", encoding="utf-8"
            )
        if (
            not self.settings.get("tokenizer_class", "BertTokenizer").startswith(("Bert", "DistilBert"))
            or not self.wordpiece
        ):
            # another family's tokenizer (MPNet's WordPiece with <s> </s>, BPE, Unigram): its own settings, our length
            settings = {**self.settings, "model_max_length": self.max_length}
            (directory / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
            if self.wordpiece:
                self._write_vocab(directory)
            return
        self._write_vocab(directory)
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "model_max_length": self.max_length,
            "unk_token": "[UNK]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
        }
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def ids(self, texts: Sequence[str] | Sequence[Pair]) -> list[list[int]]:
        """Unpadded ids of each sentence (or pair), for length bucketing and caching."""
        return [e.ids for e in self.backend.encode_batch(self.cut(texts))]

    def ids_with_types(self, texts: Sequence[str] | Sequence[Pair]) -> list[tuple[list[int], list[int]]]:
        """Unpadded (ids, token types) of each item; pairs need the types (0 for a, 1 for b)."""
        return [(e.ids, e.type_ids) for e in self.backend.encode_batch(self.cut(texts))]

    def cut(self, texts: Sequence[str] | Sequence[Pair]) -> list[Any]:
        """Texts cut to CHARS_PER_TOKEN x max_length characters before tokenising: the tokens past max_length are
        truncated anyway, and tokenising a 10,000-character text whole costs time a server cannot spare. Natural
        text runs 3-6 characters a token, so the cut never reaches a token that would be kept."""
        if self.max_length is None:
            return list(texts)
        limit = CHARS_PER_TOKEN * self.max_length
        return [(t[0][:limit], t[1][:limit]) if isinstance(t, tuple | list) else t[:limit] for t in texts]

    def __call__(self, texts: Sequence[str] | Sequence[Pair]) -> Batch:
        """Tokenise and pad to the longest item. Pairs become `[CLS] a [SEP] b [SEP]` with token types 0/1."""
        encodings = self.backend.encode_batch(self.cut(texts))
        return self.pad([e.ids for e in encodings], [e.type_ids for e in encodings])

    def pad(self, ids: Sequence[Sequence[int]], type_ids: Sequence[Sequence[int]] | None = None) -> Batch:
        """Right-pad id lists to the longest one; the mask marks real tokens (token types 0 unless given)."""
        length = max(len(row) for row in ids)
        input_ids = np.full((len(ids), length), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(ids), length), dtype=np.int64)
        token_type_ids = np.zeros((len(ids), length), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            attention_mask[i, : len(row)] = 1
            if type_ids is not None:
                token_type_ids[i, : len(row)] = type_ids[i]
        return Batch(torch.from_numpy(input_ids), torch.from_numpy(attention_mask), torch.from_numpy(token_type_ids))


def _read_tokenizer_config(directory: Path) -> dict:
    return _read_json(directory / "tokenizer_config.json")


def _read_json(file: Path) -> dict:
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MinbertError(f"{file}: line {e.lineno}: not valid JSON ({e.msg})") from e
