"""The one model: encoder -> pooling -> optional shared projection (+ L2 norm) -> named heads.

    0 heads   a sentence encoder (`encode`), e.g. any checkpoint as sentence-transformers would run it
    1 head    a classifier or regressor (`predict`, `predict_proba`)
    n heads   a multitask model (`predict(inputs, task=NAME)`)

Everything that runs the model on many inputs (eval, serving, embeddings) goes through
`pooled_vectors`, the one length-sorted inference loop; the heads then run on those vectors. Saved
as a directory (see `model/layout.py`) that `minbert.load` reads back anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from minbert.errors import MinbertError
from minbert.model.checkpoint import (
    DEFAULT_CHECKPOINT,
    read_sentence_transformers_layout,
    resolve_checkpoint,
    write_safetensors,
)
from minbert.model.encoder import Encoder
from minbert.model.heads import MAX_WIDTH, HeadSpec, Pooling, TaskHead
from minbert.model.inference import run_in_length_order
from minbert.model.layout import (
    FORMAT_VERSION,
    HEADS_FILE,
    check_manifest,
    description_content,
    is_model_directory,
    model_directory,
    read_description,
    upgrade,
    write_description,
    written_whole,
)
from minbert.model.tokenizer import Batch, Pair, Tokenizer
from minbert.runtime import autocast

log = logging.getLogger(__name__)


@dataclass
class ModelDescription:
    """What the model is, saved as minbert.json so it reloads and predicts the same way."""

    heads: list[HeadSpec] = field(default_factory=list)
    pooling: str = "cls"
    projection_size: int = 0
    normalize: bool = False
    max_length: int = 128
    base_checkpoint: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        """Read from an untrusted minbert.json: every field checked before a model is built from it."""
        if not isinstance(self.heads, list) or not all(isinstance(h, HeadSpec) for h in self.heads):
            raise MinbertError("heads must be a list of head descriptions")
        if self.pooling not in ("cls", "mean", "pooler"):
            raise MinbertError(f"pooling {self.pooling!r} is not cls, mean or pooler")
        for name, (low, high) in (("projection_size", (0, MAX_WIDTH)), ("max_length", (2, 65_536))):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise MinbertError(f"{name} {value!r} is not a whole number from {low} to {high:,}")
        if not isinstance(self.normalize, bool) or not isinstance(self.base_checkpoint, str):
            raise MinbertError("normalize must be true or false and base_checkpoint a string")


class Encoded(NamedTuple):
    """Pooled vectors of an input list, as `pooled_vectors(inputs, batch_size, bf16)` returned them."""

    inputs: Sequence[str] | Sequence[Pair]
    batch_size: int
    bf16: bool
    vectors: torch.Tensor


@dataclass
class Prediction:
    label: str  # the top class, or the head's oos label when it rejects the input
    probability: float  # the top class's probability
    probabilities: dict[str, float]
    oos_score: float | None = None  # with out-of-scope rejection: the in-scope score and the threshold under which
    oos_threshold: float | None = None  # the input is rejected
    labels: list[str] | None = None  # multilabel: every label at or above its threshold (the top one if none is)
    none_above_threshold: bool | None = None  # multilabel: no label reached its threshold; `labels` is the top one


class HeadPredictions:
    """`predict`, `predict_proba` and `labels` from a backend's `spec`, `default_task` and `raw_outputs`: written
    once for the PyTorch model and the ONNX export alike."""

    _encoded: dict[tuple[Any, ...], torch.Tensor] | None = None  # what encoding_once remembers (None: outside it)

    @contextmanager
    def encoding_once(self, known: Iterable[Encoded] = ()) -> Iterator[None]:
        """While the model stays fixed (a run's post-hoc fitting and final evaluation, `minbert eval`), each input
        list is encoded once however many steps read it, and `known` ones (a frozen encoder's cached vectors) not at
        all: on a frozen-encoder run re-encoding dev would cost as much as the head's whole training."""
        self._encoded = {(tuple(k.inputs), k.batch_size, k.bf16): k.vectors for k in known}
        try:
            yield
        finally:
            self._encoded = None

    def _once(
        self, inputs: Sequence[str] | Sequence[Pair], settings: tuple[Any, ...], encode: Callable[[], torch.Tensor]
    ) -> torch.Tensor:
        """`encode()`, or inside encoding_once a copy of what it returned before for the same inputs and settings.
        Outside it no key is built: predict and serve pay nothing for the memo."""
        if self._encoded is None:
            return encode()
        key = (tuple(inputs), *settings)
        if key not in self._encoded:
            self._encoded[key] = encode()
        return self._encoded[key].clone()

    def spec(self, task: str) -> HeadSpec:
        raise NotImplementedError

    def default_task(self) -> str:
        raise NotImplementedError

    def raw_outputs(
        self, task: str, inputs: Sequence[str] | Sequence[Pair], batch_size: int = 128, bf16: bool = False
    ) -> torch.Tensor:
        raise NotImplementedError

    @property
    def labels(self) -> list[str]:
        """The labels of the model's only head (a classifier's classes)."""
        return self.spec(self.default_task()).labels

    def scored_outputs(
        self, task: str, inputs: Sequence[str] | Sequence[Pair], batch_size: int = 128, bf16: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw outputs and, for a head with an out-of-scope method, each input's in-scope score. Here from the
        logits (msp, energy); a backend that runs the head's vector methods (mahalanobis, knn) overrides it."""
        raw, spec = self.raw_outputs(task, inputs, batch_size, bf16), self.spec(task)
        if spec.oos_method == "none":
            return raw, None
        return raw, spec.in_scope_scores(raw)

    def predict(
        self, inputs: Sequence[str] | Sequence[Pair] | str, task: str | None = None, batch_size: int = 128
    ) -> list[Prediction] | list[float]:
        """Classes (label, probabilities; a multilabel head's label set) or scores (in the task's gold units) for
        sentences or (a, b) pairs."""
        task = task or self.default_task()
        spec = self.spec(task)
        checked = check_inputs(inputs, spec.pair, task)
        return predictions(spec, *self.scored_outputs(task, checked, batch_size))

    def predict_proba(
        self, inputs: Sequence[str] | Sequence[Pair] | str, task: str | None = None, batch_size: int = 128
    ) -> np.ndarray:
        """(n, classes) probabilities of a classification head, columns in the order of its labels."""
        task = task or self.default_task()
        spec = self.spec(task)
        if spec.kind != "classification":
            raise MinbertError(f"task {task!r} is a regression: use predict for its scores")
        return spec.probabilities(self.raw_outputs(task, check_inputs(inputs, spec.pair, task), batch_size)).numpy()


class Model(HeadPredictions, nn.Module):
    """Build with `from_checkpoint` (new heads on a pretrained encoder), reload with `minbert.load(dir)`."""

    def __init__(self, encoder: Encoder, tokenizer: Tokenizer, config: ModelDescription) -> None:
        super().__init__()
        if config.pooling == "pooler" and not encoder.config.has_pooler:
            raise MinbertError(
                f"pooling 'pooler': a {encoder.config.model_type} encoder has no pooler; use --model.pooling cls or mean"
            )
        self.encoder, self.tokenizer, self.config = encoder, tokenizer, config
        self.pooling = Pooling(config.pooling)
        width = encoder.config.hidden_size
        self.projection = nn.Linear(width, config.projection_size) if config.projection_size else None
        self.heads = nn.ModuleDict(
            {spec.name: TaskHead(spec, config.projection_size or width) for spec in config.heads}
        )

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path | None,
        heads: Sequence[HeadSpec] = (),
        *,
        pooling: str = "cls",
        projection_size: int = 0,
        normalize: bool = False,
        max_length: int | None = 128,
    ) -> Model:
        """New (randomly initialised) heads on a pretrained encoder (a directory, a known name or a Hub id)."""
        directory = resolve_checkpoint(checkpoint)
        encoder = Encoder.from_pretrained(directory)
        tokenizer = Tokenizer.from_pretrained(directory, max_length=max_length)
        config = ModelDescription(
            heads=list(heads),
            pooling=pooling,
            projection_size=projection_size,
            normalize=normalize,
            max_length=tokenizer.max_length,
            base_checkpoint=str(checkpoint or DEFAULT_CHECKPOINT),
        )
        return cls(encoder, tokenizer, config)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        *,
        pooling: str | None = None,
        max_length: int | None = None,
        normalize: bool | None = None,
    ) -> Model:
        """A checkpoint (a directory, a known name or a Hub id) as a sentence encoder without heads; `fit`
        adds them. Pooling, normalisation and length default to its sentence-transformers layout when it has
        one (mean pooling otherwise); given ones replace them."""
        directory = resolve_checkpoint(path)
        layout_pooling, layout_normalize, layout_length = read_sentence_transformers_layout(directory)
        model = cls.from_checkpoint(
            directory,
            pooling=pooling or layout_pooling,
            normalize=layout_normalize if normalize is None else normalize,
            max_length=max_length or layout_length,
        )
        model.config.base_checkpoint = str(path or DEFAULT_CHECKPOINT)
        return model

    def set_heads(self, heads: Sequence[HeadSpec], *, projection_size: int = 0, normalize: bool = False) -> None:
        """New, randomly initialised heads (and shared projection) in place of the model's own: what `fit`
        trains. Initialised from torch's generator, so a seeded caller gets the same heads every time."""
        if self.heads:
            log.info("replacing the model's heads (%s) with new ones", ", ".join(self.heads))
        width = self.encoder.config.hidden_size
        self.config.heads, self.config.projection_size, self.config.normalize = list(heads), projection_size, normalize
        device = self.device
        self.projection = nn.Linear(width, projection_size).to(device) if projection_size else None
        self.heads = nn.ModuleDict({s.name: TaskHead(s, projection_size or width) for s in heads}).to(device)

    def train(self, mode: bool = True) -> Model:
        """A fully frozen encoder stays in eval mode: no dropout, so its features are fixed."""
        super().train(mode)
        if mode and self.encoder_frozen:
            self.encoder.eval()
        return self

    @property
    def encoder_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.encoder.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def tasks(self) -> list[str]:
        return list(self.heads)

    def head(self, task: str) -> TaskHead:
        self.spec(task)
        return self.heads[task]  # type: ignore[return-value]

    def spec(self, task: str) -> HeadSpec:
        if task not in self.heads:
            raise MinbertError(
                f"no task {task!r} in this model; its tasks: {', '.join(self.heads) or 'none (a sentence encoder)'}"
            )
        return self.heads[task].spec  # type: ignore[return-value]

    def default_task(self) -> str:
        if not self.heads:
            raise MinbertError(
                "this model is a sentence encoder without a head: it encodes (minbert embed), it does not predict"
            )
        if len(self.heads) != 1:
            raise MinbertError(f"this model has several tasks ({', '.join(self.heads)}); say which (task=..., --task)")
        return next(iter(self.heads))

    # The forward pass, top to bottom.

    def pooled(self, batch: Batch) -> torch.Tensor:
        """Encoder -> one vector per sequence."""
        return self.pooling(self.encoder(**batch.as_kwargs()), batch.attention_mask)

    def shared(self, vector: torch.Tensor, normalize: bool | None = None) -> torch.Tensor:
        """Pooled vector -> shared projection -> (optionally) unit length: what every head reads."""
        if self.projection is not None:
            vector = self.projection(vector)
        return F.normalize(vector, dim=-1) if (self.config.normalize if normalize is None else normalize) else vector

    def sentence_embedding(self, batch: Batch) -> torch.Tensor:
        return self.shared(self.pooled(batch))

    def forward(self, task: str, first: Batch, second: Batch | None = None) -> torch.Tensor:
        """Raw head output for one task: `first` holds the sentences (or cross-encoded pairs), `second` the bi-encoder's other side."""
        return self.heads[task](
            self.sentence_embedding(first), self.sentence_embedding(second) if second is not None else None
        )

    def head_outputs(self, task: str, u: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
        """The head (after the shared projection) on pooled vectors, e.g. cached ones of a frozen encoder."""
        return self.heads[task](self.shared(u), self.shared(v) if v is not None else None)

    # Inference on many inputs.

    @torch.no_grad()
    def pooled_vectors(
        self, inputs: Sequence[str] | Sequence[Pair], batch_size: int = 128, bf16: bool = False
    ) -> torch.Tensor:
        """Pooled vectors (float32, CPU, eval mode) of texts or cross-encoded pairs, in input order."""
        if not inputs:
            return torch.empty(0, self.encoder.config.hidden_size)
        return self._once(inputs, (batch_size, bf16), lambda: self._encode_pooled(inputs, batch_size, bf16))

    def _encode_pooled(self, inputs: Sequence[str] | Sequence[Pair], batch_size: int, bf16: bool) -> torch.Tensor:
        was_training = self.training
        self.eval()
        device = self.device

        def run(batch: Batch) -> torch.Tensor:
            return self.pooled(batch.to(device)).float().cpu()

        try:
            with autocast(device, bf16):  # one context for every batch: each weight is cast to bf16 once
                return run_in_length_order(self.tokenizer, inputs, batch_size, run)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def raw_outputs(
        self, task: str, inputs: Sequence[str] | Sequence[Pair], batch_size: int = 128, bf16: bool = False
    ) -> torch.Tensor:
        """One task's raw head outputs for many inputs, in input order."""
        spec = self.spec(task)
        if spec.input == "bi":
            pairs: Sequence[Pair] = inputs  # type: ignore[assignment]
            firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
            u, v = self.pooled_vectors(firsts, batch_size, bf16), self.pooled_vectors(seconds, batch_size, bf16)
        else:
            u, v = self.pooled_vectors(inputs, batch_size, bf16), None
        return self.heads_on_vectors(task, u, v)

    @torch.no_grad()
    def scored_outputs(
        self, task: str, inputs: Sequence[str] | Sequence[Pair], batch_size: int = 128, bf16: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw outputs and in-scope scores (None without an out-of-scope method) from one encoder pass. The scores
        are taken `batch_size` rows at a time: Mahalanobis compares every row with every class mean at once, which
        for a whole file (4,500 rows, 150 classes, width 384) is gigabytes."""
        spec = self.spec(task)
        if spec.oos_method == "none":
            return self.raw_outputs(task, inputs, batch_size, bf16), None
        u = self.pooled_vectors(inputs, batch_size, bf16)
        raw = self.heads_on_vectors(task, u)
        head = self.head(task)
        scores = [
            head.in_scope(self.shared(rows.to(self.device)), outputs.to(self.device)).float().cpu()
            for rows, outputs in zip(u.split(batch_size), raw.split(batch_size), strict=True)
        ]
        return raw, torch.cat(scores)

    def head_vectors(self, inputs: Sequence[str], batch_size: int = 128, bf16: bool = False) -> torch.Tensor:
        """The vectors the heads read (after the shared projection), float32 on CPU: what vector methods fit on."""
        with torch.no_grad():
            return self.shared(self.pooled_vectors(inputs, batch_size, bf16).to(self.device)).float().cpu()

    @torch.no_grad()
    def heads_on_vectors(self, task: str, u: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
        """`head_outputs` in eval mode on CPU pooled vectors (computed here, or cached), as float32 on CPU."""
        was_training = self.training
        self.eval()
        try:
            return (
                self.head_outputs(task, u.to(self.device), v.to(self.device) if v is not None else None).float().cpu()
            )
        finally:
            self.train(was_training)

    def encode(self, texts: Sequence[str] | str, batch_size: int = 64, normalize: bool | None = None) -> np.ndarray:
        """Sentence vectors as the heads read them (after the shared projection). L2-normalised by default;
        a sentence encoder without heads follows its checkpoint (normalised when its layout says so)."""
        if normalize is None:
            normalize = bool(self.heads) or self.config.normalize
        vectors = self.pooled_vectors(check_texts(texts), batch_size)
        with torch.no_grad():
            return self.shared(vectors.to(self.device), normalize=normalize).float().cpu().numpy()

    # Saving and loading.

    def save(self, directory: str | Path) -> Path:
        """Write the model directory whole (temporary sibling, then renamed into place), with a manifest."""
        directory = Path(directory)
        with written_whole(directory) as staging:
            self.encoder.save_pretrained(staging / "encoder")
            self.tokenizer.save_pretrained(staging / "encoder")
            weights = {
                k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith("encoder.")
            }
            write_safetensors(weights, staging / HEADS_FILE)
            write_description(staging, asdict(self.config))
        return directory

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Model:
        """A saved model directory (or a run's output_dir) of any format minbert has written."""
        directory = model_directory(path)
        config, weights_file, renames = read_config(directory)
        encoder = Encoder.from_pretrained(directory / "encoder")
        if config.max_length > encoder.config.max_tokens:
            raise MinbertError(
                f"{directory / 'minbert.json'}: max_length {config.max_length} is longer than the encoder's "
                f"{encoder.config.max_tokens} positions; set it to at most that"
            )
        model = cls(encoder, Tokenizer.from_pretrained(directory / "encoder", max_length=config.max_length), config)
        file = directory / weights_file
        try:
            state = load_file(str(file))
        except Exception as e:  # safetensors raises several types for damaged files
            raise MinbertError(f"{file}: cannot load the heads ({e})") from e
        for old, new in renames.items():
            state = {new + k[len(old) :]: v for k, v in state.items() if k.startswith(old)}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # a tensor of another shape than minbert.json describes
            shown = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e)[:200])
            raise MinbertError(
                f"{file}: does not match minbert.json ({shown}); save or train the model again"
            ) from None
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise MinbertError(f"{file}: does not match minbert.json (missing {missing}, unexpected {unexpected})")
        return model.to(device).eval()


def read_config(directory: Path) -> tuple[ModelDescription, str, dict[str, str]]:
    """The model description of a saved directory (any format; its files checked against the manifest),
    with the name of its weights file and the weight renames an old format needs."""
    raw = read_description(directory)
    check_manifest(directory, raw)
    description, weights_file, renames = upgrade(raw)
    try:
        heads = [HeadSpec(**h) for h in description["heads"]]
        kept = {k: v for k, v in description_content(description).items() if k != "heads"}
        config = ModelDescription(**kept, heads=heads)
    except (TypeError, KeyError, AttributeError, ValueError) as e:
        raise MinbertError(f"{directory / 'minbert.json'}: not a model description minbert can read ({e})") from e
    except MinbertError as e:
        raise MinbertError(f"{directory / 'minbert.json'}: {e}") from e
    return config, weights_file, renames


def predictions(
    spec: HeadSpec, raw: torch.Tensor, in_scope: torch.Tensor | None = None
) -> list[Prediction] | list[float]:
    """Raw head outputs (and in-scope scores) -> what `predict` returns: scores in gold units, or labels with
    probabilities, the head's oos label where the in-scope score is under its threshold, and a multilabel head's set."""
    if spec.kind == "regression":
        return [float(x) for x in spec.scores(raw.float())]
    width = raw.shape[1] if raw.dim() == 2 else 1  # a two-class BCE head gives one logit per input
    expected = 1 if spec.loss == "bce" and not spec.multilabel else len(spec.labels)
    if width != expected:
        raise MinbertError(
            f"task {spec.name!r}: the model gives {width} outputs per input where its head has {expected}; the "
            "export is of another model: export it again"
        )
    probabilities = spec.probabilities(raw).numpy()
    rejecting = spec.rejects and in_scope is not None
    scores: list[float | None] = in_scope.tolist() if rejecting and in_scope is not None else [None] * len(raw)
    chosen = spec.predicted_ids(raw).numpy() if spec.multilabel else None
    out = []
    for i, row in enumerate(probabilities):
        top = spec.labels[int(row.argmax())]
        rejected = scores[i] is not None and scores[i] < spec.oos_threshold  # type: ignore[operator]
        prediction = Prediction(
            label=spec.oos_label if rejected else top,
            probability=float(row.max()),
            probabilities={label: float(p) for label, p in zip(spec.labels, row, strict=True)},
            oos_score=scores[i],
            oos_threshold=spec.oos_threshold if rejecting else None,
        )
        if chosen is not None:
            above = [label for label, on in zip(spec.labels, chosen[i], strict=True) if on]
            prediction.labels, prediction.none_above_threshold = above or [top], not above
        out.append(prediction)
    return out


def check_texts(texts: Sequence[str] | str) -> list[str]:
    """A list of non-empty strings, or a MinbertError saying which item is not."""
    if isinstance(texts, str):
        texts = [texts]
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise MinbertError(f"text {i} is empty or not a string; predict needs non-empty texts")
        problem = unicode_problem(text)
        if problem:
            raise MinbertError(f"text {i} {problem}")
    return list(texts)


def unicode_problem(text: str) -> str | None:
    """Why a string cannot be tokenised (a lone surrogate, which valid JSON can carry), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (
            f"is not valid Unicode (a lone surrogate {text[e.start]!r} at position {e.start}); send proper UTF-8 text"
        )
    return None


def check_inputs(inputs: Sequence[str] | Sequence[Pair] | str, pair: bool, task: str) -> list[Any]:
    """Sentences for single tasks, (a, b) pairs of non-empty strings for pair tasks; else a clear error."""
    if not pair:
        return check_texts(inputs)  # type: ignore[arg-type]
    checked = []
    for i, item in enumerate(inputs):
        if not (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and all(isinstance(t, str) and t.strip() and unicode_problem(t) is None for t in item)
        ):
            raise MinbertError(f"input {i}: task {task!r} takes sentence pairs (two non-empty texts), got {item!r}")
        checked.append((item[0], item[1]))
    return checked


def load(path: str | Path | None = None, device: str | torch.device = "cpu") -> Model:
    """A saved minbert model (a model directory or a run's output_dir, any format so far); any other
    checkpoint (plain BERT or sentence-transformers; None = the default) as a sentence encoder."""
    if is_model_directory(path):
        return Model.load(path, device=device)  # type: ignore[arg-type]
    if path is not None and Path(path).is_dir() and not (Path(path) / "config.json").is_file():
        model_directory(path)  # raises the "not a saved minbert model" error
    return Model.from_pretrained(path).to(device).eval()
