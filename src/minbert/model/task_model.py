"""Encoder + pooling + head, as one model that trains, predicts, saves and reloads anywhere.

A saved model is a directory:

    minbert.json        what the model is: task, pooling, head sizes, labels, max_length
    head.safetensors    the head's weights
    encoder/            the fine-tuned encoder in Hugging Face format (config.json,
                        model.safetensors, tokenizer files): plain transformers loads it too
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from minbert.errors import MinbertError
from minbert.model.encoder import Encoder
from minbert.model.heads import ClassificationHead, Pooling
from minbert.model.sentence_encoder import SentenceEncoder, embed_texts
from minbert.model.tokenizer import Batch, Tokenizer

FORMAT_VERSION = 1
MODEL_FILE = "minbert.json"


@dataclass
class ClassifierConfig:
    labels: list[str]
    pooling: str = "cls"
    hidden_size: int = 512
    activation: str = "relu"
    dropout: float = 0.1
    max_length: int = 128
    task: str = "classification"
    base_checkpoint: str = ""
    format_version: int = FORMAT_VERSION


@dataclass
class Prediction:
    label: str
    probability: float
    probabilities: dict[str, float]


class SequenceClassifier(nn.Module):
    """Sentence -> label. Build with `from_checkpoint`, reload with `minbert.load(dir)`."""

    def __init__(self, encoder: Encoder, tokenizer: Tokenizer, config: ClassifierConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        self.pooling = Pooling(config.pooling)
        self.head = ClassificationHead(
            encoder.config.hidden_size, len(config.labels), config.hidden_size, config.activation, config.dropout
        )

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None, labels: Sequence[str], **head: object) -> SequenceClassifier:
        """A new classifier on a pretrained encoder; the head is freshly initialised."""
        config = ClassifierConfig(labels=list(labels), base_checkpoint=str(checkpoint or "all-MiniLM-L6-v2"), **head)  # type: ignore[arg-type]
        encoder = Encoder.from_pretrained(checkpoint)
        tokenizer = Tokenizer.from_pretrained(checkpoint, max_length=config.max_length)
        return cls(encoder, tokenizer, config)

    def train(self, mode: bool = True) -> SequenceClassifier:
        """A fully frozen encoder stays in eval mode: no dropout, so its features are fixed."""
        super().train(mode)
        if mode and self.encoder_frozen:
            self.encoder.eval()
        return self

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def sentence_embedding(self, batch: Batch) -> torch.Tensor:
        output = self.encoder(**batch.as_kwargs())
        return self.pooling(output, batch.attention_mask)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits, (batch, num_labels)."""
        return self.head(self.sentence_embedding(batch))

    def sentence_features(self, texts: Sequence[str], batch_size: int = 128, bf16: bool = False) -> torch.Tensor:
        """Pooled sentence vectors (eval mode) for many texts, in input order."""
        return embed_texts(self.encoder, self.tokenizer, self.pooling, texts, batch_size, bf16)

    def encode(self, texts: Sequence[str], batch_size: int = 64, normalize: bool = True) -> np.ndarray:
        """Sentence embeddings (the pooled vectors the head reads), L2-normalised by default."""
        vectors = self.sentence_features(texts, batch_size)
        return (torch.nn.functional.normalize(vectors, dim=-1) if normalize else vectors).numpy()

    @torch.no_grad()
    def logits(self, texts: Sequence[str], batch_size: int = 128, bf16: bool = False) -> torch.Tensor:
        """Logits for many texts, in input order."""
        if not len(texts):
            return torch.empty(0, len(self.labels))
        return self.head_logits(self.sentence_features(texts, batch_size, bf16))

    @torch.no_grad()
    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The head alone (eval mode) on precomputed sentence vectors."""
        was_training = self.training
        self.head.eval()
        out = self.head(features.to(self.device)).float().cpu()
        self.head.train(was_training)
        return out

    @property
    def encoder_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.encoder.parameters())

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        return torch.softmax(self.logits(texts, batch_size), dim=-1).numpy()

    def predict(self, texts: Sequence[str], batch_size: int = 128) -> list[Prediction]:
        """Label and probabilities for each text."""
        texts = check_texts(texts)
        return predictions_from_logits(self.logits(texts, batch_size), self.labels)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(directory / "encoder")
        self.tokenizer.save_pretrained(directory / "encoder")
        head = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(directory / "head.safetensors"))
        (directory / MODEL_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def read_config(cls, directory: Path) -> ClassifierConfig:
        raw = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
        if raw.get("task") == "multitask":
            raise MinbertError(f"{directory}: a multitask model; load it with minbert.load (ONNX export covers single-task classifiers)")
        if raw.get("format_version", 0) > FORMAT_VERSION:
            raise MinbertError(f"{directory}: saved by a newer minbert (format {raw['format_version']}); upgrade minbert")
        return ClassifierConfig(**raw)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> SequenceClassifier:
        directory = model_directory(directory)
        config = cls.read_config(directory)
        encoder = Encoder.from_pretrained(directory / "encoder")
        tokenizer = Tokenizer.from_pretrained(directory / "encoder", max_length=config.max_length)
        model = cls(encoder, tokenizer, config)
        try:
            model.head.load_state_dict(load_file(str(directory / "head.safetensors")))
        except Exception as e:
            raise MinbertError(f"{directory / 'head.safetensors'}: cannot load the head ({e})") from e
        return model.to(device).eval()


def check_texts(texts: Sequence[str] | str) -> list[str]:
    """A list of non-empty strings, or a MinbertError saying which item is not."""
    if isinstance(texts, str):
        texts = [texts]
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise MinbertError(f"text {i} is empty or not a string; predict needs non-empty texts")
    return list(texts)


def predictions_from_logits(logits: torch.Tensor, labels: Sequence[str]) -> list[Prediction]:
    probabilities = torch.softmax(logits.float(), dim=-1).numpy()
    return [
        Prediction(
            label=labels[int(row.argmax())],
            probability=float(row.max()),
            probabilities={label: float(p) for label, p in zip(labels, row, strict=True)},
        )
        for row in probabilities
    ]


def model_directory(path: str | Path) -> Path:
    """A saved model directory, or a run directory holding one in `model/`."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / MODEL_FILE).is_file():
            return candidate
    if not path.exists():
        raise MinbertError(f"{path}: no such model directory; give the output_dir of a training run")
    raise MinbertError(f"{path}: not a saved minbert model (no {MODEL_FILE}); give the output_dir of a training run")


def load(path: str | Path | None = None, device: str | torch.device = "cpu") -> Any:
    """A saved minbert model (a model directory or a run's output_dir) as a classifier or multitask
    model; any other checkpoint (plain BERT or sentence-transformers; None = the default) as a
    sentence encoder. All have `.encode(texts)` and all but the encoder `.predict`."""
    if path is not None and any((Path(path) / sub / MODEL_FILE).is_file() for sub in ("", "model")):
        directory = model_directory(path)
        if json.loads((directory / MODEL_FILE).read_text(encoding="utf-8")).get("task") == "multitask":
            from minbert.model.multitask_model import MultitaskModel

            return MultitaskModel.load(directory, device=device)
        return SequenceClassifier.load(path, device=device)
    if path is not None and Path(path).is_dir() and not (Path(path) / "config.json").is_file():
        model_directory(path)  # raises the "not a saved minbert model" error
    return SentenceEncoder.from_pretrained(path).to(device).eval()
