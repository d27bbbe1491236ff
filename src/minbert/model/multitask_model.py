"""One encoder, an optional shared projection, and one head per task: sentence and sentence-pair tasks.

Each head reads the sentence vector in one of three ways (Reimers & Gurevych 2019 for the bi-encoder):

    single   one sentence                    -> head(v)
    cross    the pair as one sequence        -> head(v of [CLS] a [SEP] b [SEP], token types 0/1)
    bi       each sentence on its own        -> head(u, v, |u - v|, u * v)   or   cosine(u, v)

and predicts classes (`classification`) or a number (`regression`, e.g. STS similarity 0-5, which
the head sees scaled to [0, 1]). A saved model is a directory like the single-task classifier's:
`minbert.json` (task "multitask" and the head specs), `heads.safetensors` (projection + heads), `encoder/`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from minbert.errors import MinbertError
from minbert.model.encoder import Encoder
from minbert.model.heads import ClassificationHead, Pooling
from minbert.model.task_model import (
    FORMAT_VERSION,
    MODEL_FILE,
    Prediction,
    check_texts,
    model_directory,
    predictions_from_logits,
)
from minbert.model.tokenizer import Batch, Tokenizer

Pair = tuple[str, str]


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
    dropout: float = 0.1
    target_range: list[float] = field(default_factory=lambda: [0.0, 1.0])

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        if self.kind == "classification":
            if self.loss not in ("ce", "bce"):
                raise MinbertError(f"{where}: a classification head trains with loss ce or bce, not {self.loss}")
            if self.loss == "bce" and len(self.labels) != 2:
                raise MinbertError(f"{where}: loss bce needs exactly 2 labels, the data has {len(self.labels)}; use loss ce")
            if self.input == "bi" and self.features == "cosine":
                raise MinbertError(f"{where}: cosine features give one score; classify pairs with features concat (or kind regression)")
        elif self.loss == "ce":
            raise MinbertError(f"{where}: a regression head trains with loss mse, bce or cosent, not ce")
        if self.input != "bi" and self.features == "cosine":
            raise MinbertError(f"{where}: features cosine needs input bi (two separately encoded sentences)")

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


@dataclass
class MultitaskConfig:
    heads: list[HeadSpec]
    pooling: str = "cls"
    projection_size: int = 0
    normalize: bool = False
    max_length: int = 128
    task: str = "multitask"
    base_checkpoint: str = ""
    format_version: int = FORMAT_VERSION


class TaskHead(nn.Module):
    """Sentence vector(s) -> this task's raw output: (batch, classes) for CE, (batch,) otherwise."""

    def __init__(self, spec: HeadSpec, width: int) -> None:
        super().__init__()
        self.spec = spec
        self.mlp = None
        if spec.features != "cosine":
            in_features = 4 * width if spec.input == "bi" else width
            self.mlp = ClassificationHead(in_features, spec.outputs, spec.hidden_size, "relu", spec.dropout)

    def forward(self, u: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
        if self.spec.input == "bi":
            assert v is not None
            if self.mlp is None:
                return F.cosine_similarity(u.float(), v.float(), dim=-1)
            u = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        out = self.mlp(u)
        return out if self.spec.outputs > 1 else out.squeeze(-1)

    def scores(self, raw: torch.Tensor) -> torch.Tensor:
        """Regression output in the [0, 1] unit the loss saw (BCE heads through a sigmoid)."""
        return torch.sigmoid(raw) if self.spec.loss == "bce" else raw


class MultitaskModel(nn.Module):
    """Build with `from_checkpoint`, reload with `minbert.load(dir)`; `predict(inputs, task=NAME)`."""

    def __init__(self, encoder: Encoder, tokenizer: Tokenizer, config: MultitaskConfig) -> None:
        super().__init__()
        self.encoder, self.tokenizer, self.config = encoder, tokenizer, config
        self.pooling = Pooling(config.pooling)
        width = encoder.config.hidden_size
        self.projection = nn.Linear(width, config.projection_size) if config.projection_size else None
        self.heads = nn.ModuleDict({spec.name: TaskHead(spec, config.projection_size or width) for spec in config.heads})

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None, heads: list[HeadSpec], **options: object) -> MultitaskModel:
        config = MultitaskConfig(heads=heads, base_checkpoint=str(checkpoint or "all-MiniLM-L6-v2"), **options)  # type: ignore[arg-type]
        encoder = Encoder.from_pretrained(checkpoint)
        return cls(encoder, Tokenizer.from_pretrained(checkpoint, max_length=config.max_length), config)

    @property
    def tasks(self) -> list[str]:
        return list(self.heads)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def spec(self, task: str) -> HeadSpec:
        if task not in self.heads:
            raise MinbertError(f"no task {task!r} in this model; its tasks: {', '.join(self.heads)}")
        return self.heads[task].spec  # type: ignore[return-value]

    def sentence_embedding(self, batch: Batch) -> torch.Tensor:
        """Pooled vector -> shared projection -> (optionally) unit length: what every head reads."""
        vector = self.pooling(self.encoder(**batch.as_kwargs()), batch.attention_mask)
        if self.projection is not None:
            vector = self.projection(vector)
        return F.normalize(vector, dim=-1) if self.config.normalize else vector

    def forward(self, task: str, first: Batch, second: Batch | None = None) -> torch.Tensor:
        """Raw head output for one task: `first` holds the sentences (or cross-encoded pairs), `second` the bi-encoder's other side."""
        head = self.heads[task]
        u = self.sentence_embedding(first)
        return head(u, self.sentence_embedding(second) if second is not None else None)

    def tokenize(self, task: str, inputs: Sequence[str] | Sequence[Pair]) -> tuple[Batch, Batch | None]:
        spec = self.spec(task)
        if spec.input == "cross":
            return self.tokenizer(list(inputs)), None  # type: ignore[arg-type]
        if spec.input == "bi":
            return self.tokenizer([a for a, _ in inputs]), self.tokenizer([b for _, b in inputs])  # type: ignore[misc]
        return self.tokenizer(list(inputs)), None  # type: ignore[arg-type]

    @torch.no_grad()
    def raw_outputs(self, task: str, inputs: Sequence[str] | Sequence[Pair], batch_size: int = 128) -> torch.Tensor:
        """Head outputs (eval mode) for many inputs, in order; sorted by length inside so batches pad little."""
        was_training = self.training
        self.eval()
        order = sorted(range(len(inputs)), key=lambda i: len(str(inputs[i])))
        chunks = []
        for start in range(0, len(order), batch_size):
            chunk = [inputs[i] for i in order[start : start + batch_size]]
            first, second = self.tokenize(task, chunk)
            chunks.append(self(task, first.to(self.device), second.to(self.device) if second is not None else None).float().cpu())
        self.train(was_training)
        if not chunks:
            return torch.empty(0)
        out = torch.cat(chunks)
        return out[torch.argsort(torch.tensor(order))]

    def predict(self, inputs: Sequence[str] | Sequence[Pair], task: str | None = None, batch_size: int = 128) -> list[Prediction] | list[float]:
        """Classes (label, probabilities) or scores (in the task's target range) for sentences or (a, b) pairs."""
        task = task or self.default_task()
        spec = self.spec(task)
        inputs = check_inputs(inputs, spec.pair, task)
        raw = self.raw_outputs(task, inputs, batch_size)
        if spec.kind == "regression":
            return [float(x) for x in spec.from_unit(self.heads[task].scores(raw))]  # type: ignore[operator]
        if spec.loss == "bce":
            raw = torch.stack([torch.zeros_like(raw), raw], dim=-1)  # softmax([0, z]) = [1 - sigmoid z, sigmoid z]
        return predictions_from_logits(raw, spec.labels)

    def default_task(self) -> str:
        if len(self.heads) != 1:
            raise MinbertError(f"this model has several tasks ({', '.join(self.heads)}); say which (task=..., --task)")
        return next(iter(self.heads))

    def encode(self, texts: Sequence[str], batch_size: int = 64, normalize: bool = True) -> np.ndarray:
        """Shared sentence vectors (after the projection), L2-normalised by default."""
        texts = check_texts(texts)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            vectors = torch.cat([
                self.sentence_embedding(self.tokenizer(texts[i : i + batch_size]).to(self.device)).float().cpu()
                for i in range(0, len(texts), batch_size)
            ])
        self.train(was_training)
        return (F.normalize(vectors, dim=-1) if normalize else vectors).numpy()

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(directory / "encoder")
        self.tokenizer.save_pretrained(directory / "encoder")
        weights = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith("encoder.")}
        save_file(weights, str(directory / "heads.safetensors"))
        (directory / MODEL_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> MultitaskModel:
        directory = model_directory(directory)
        raw = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
        if raw.get("format_version", 0) > FORMAT_VERSION:
            raise MinbertError(f"{directory}: saved by a newer minbert (format {raw['format_version']}); upgrade minbert")
        config = MultitaskConfig(**{**raw, "heads": [HeadSpec(**h) for h in raw["heads"]]})
        model = cls(Encoder.from_pretrained(directory / "encoder"), Tokenizer.from_pretrained(directory / "encoder", max_length=config.max_length), config)
        try:
            missing, unexpected = model.load_state_dict(load_file(str(directory / "heads.safetensors")), strict=False)
        except Exception as e:
            raise MinbertError(f"{directory / 'heads.safetensors'}: cannot load the heads ({e})") from e
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise MinbertError(f"{directory / 'heads.safetensors'}: does not match minbert.json (missing {missing}, unexpected {unexpected})")
        return model.to(device).eval()


def check_inputs(inputs: Sequence[str] | Sequence[Pair], pair: bool, task: str) -> list:
    """Sentences for single tasks, (a, b) pairs of non-empty strings for pair tasks; else a clear error."""
    if not pair:
        return check_texts(inputs)  # type: ignore[arg-type]
    checked = []
    for i, item in enumerate(inputs):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) and t.strip() for t in item)):
            raise MinbertError(f"input {i}: task {task!r} takes sentence pairs (two non-empty texts), got {item!r}")
        checked.append((item[0], item[1]))
    return checked
