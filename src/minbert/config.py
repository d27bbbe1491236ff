"""One typed config per run: YAML/JSON file + dotted command-line overrides.

    minbert train configs/massive_intent.yaml --train.lr 3e-5 --data.format csv

Unknown fields are errors (a typo must not silently fall back to a default), and every
field has a description so `minbert train --help` can list them all.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from minbert.errors import MinbertError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    train: Path | None = Field(None, description="training file")
    dev: Path | None = Field(None, description="validation file (model selection, early stopping)")
    test: Path | None = Field(None, description="test file (reported once, after training)")
    format: str = Field(
        "jsonl", description="jsonl | csv | tsv | massive | pipe | cs224n | glue | uci | quora | sts | stsb (see minbert formats)"
    )
    text_column: str | None = Field(None, description="text field/column (default: the format's own)")
    label_column: str | None = Field(None, description="label field/column (default: the format's own)")
    text_pair_column: str | None = Field(None, description="second text of a pair (default: the format's own, if any)")
    skip_bad_rows: bool = Field(False, description="skip malformed rows, counting them in the log, instead of stopping")
    max_train_examples: int | None = Field(None, ge=1, description="use a seeded random subset of train (quick runs)")
    few_shot: int | None = Field(None, ge=1, description="train on N examples sampled with the label distribution")
    label_noise: float = Field(0.0, ge=0.0, le=1.0, description="flip this fraction of training labels (robustness)")
    sample_seed: int | None = Field(None, description="seed of few_shot / label_noise sampling (default: train.seed)")


class ModelConfig(Section):
    checkpoint: str = Field("all-MiniLM-L6-v2", description="HF-format checkpoint directory or 'all-MiniLM-L6-v2'")
    pooling: Literal["cls", "mean", "pooler"] = Field("cls", description="sentence vector: [CLS], mean of tokens, or pooler")
    hidden_size: int = Field(512, ge=0, description="units of the head's hidden layer (0 = linear head)")
    activation: Literal["relu", "gelu", "tanh"] = Field("relu", description="activation of the head's hidden layer")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout before each head layer")
    max_length: int = Field(128, ge=8, le=512, description="tokens per text after truncation")


class TrainConfig(Section):
    epochs: int = Field(3, ge=1, description="passes over the training data")
    batch_size: int = Field(32, ge=1, description="examples per optimizer step (before accumulation)")
    lr: float = Field(5e-5, gt=0, description="peak learning rate of the encoder's top layer")
    head_lr: float | None = Field(None, gt=0, description="learning rate of the head (default: lr)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (never on biases or LayerNorm)")
    llrd: float = Field(1.0, gt=0, le=1.0, description="layer-wise LR decay: each lower layer gets lr x llrd")
    warmup_ratio: float = Field(0.0, ge=0, lt=1.0, description="fraction of steps with linear warm-up")
    schedule: Literal["linear", "cosine", "constant"] = Field("linear", description="decay after warm-up")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping (null = off)")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    freeze: str = Field("none", description="none | encoder | embeddings | bottom:K")
    reinit_top: int = Field(0, ge=0, description="re-initialise the top K encoder layers before training")
    eval_every: int = Field(0, ge=0, description="evaluate every N optimizer steps (0 = once per epoch)")
    objective: Literal["ce", "ce+scl"] = Field("ce", description="cross-entropy, or (1-l)*CE + l*SCL (Gunel et al.)")
    scl_lambda: float = Field(0.9, ge=0.0, le=1.0, description="l, the weight of the supervised contrastive term")
    scl_temperature: float = Field(0.3, gt=0.0, description="temperature of the supervised contrastive term")
    metric: Literal["accuracy", "macro_f1", "loss"] = Field("accuracy", description="dev metric for best/early stop")
    patience: int | None = Field(None, ge=1, description="stop after N evaluations without improvement")
    seed: int = Field(42, description="seeds data order, dropout and initialisation")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    bf16: bool = Field(False, description="bf16 autocast (fast on AVX-512 bf16 CPUs and GPUs)")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: all cores)")
    bucket: bool = Field(True, description="length-bucketed batches (less padding, same examples)")
    cache_features: bool = Field(True, description="frozen encoder: encode once, train the head on cached vectors")
    eval_batch_size: int = Field(128, ge=1, description="batch size for evaluation and prediction")
    eval_before: bool = Field(True, description="evaluate dev before the first step")
    tensorboard: bool = Field(False, description="also log to TensorBoard (needs the tensorboard package)")
    progress: bool = Field(True, description="show progress bars")

    @field_validator("freeze")
    @classmethod
    def _check_freeze(cls, value: str) -> str:
        if value in ("none", "encoder", "embeddings"):
            return value
        if value.startswith("bottom:") and value[7:].isdigit():
            return value
        raise ValueError("must be none, encoder, embeddings or bottom:K (e.g. bottom:4)")


class ContrastiveConfig(Section):
    """An optional first stage: contrastive training of the encoder before the classifier stage."""

    objective: Literal["none", "simcse", "supcon"] = Field("none", description="none | simcse (dropout views) | supcon (labels)")
    temperature: float = Field(0.05, gt=0.0, description="softmax temperature tau")
    projection_size: int = Field(0, ge=0, description="projection head size for the loss (0 = none)")
    epochs: int = Field(1, ge=1, description="contrastive epochs")
    batch_size: int = Field(64, ge=2, description="contrastive batch size (in-batch negatives)")
    lr: float = Field(3e-5, gt=0, description="contrastive learning rate")
    warmup_ratio: float = Field(0.0, ge=0, lt=1.0, description="contrastive warm-up fraction")
    schedule: Literal["linear", "cosine", "constant"] = Field("linear", description="contrastive LR schedule")


class RunConfig(Section):
    task: Literal["classification"] = Field("classification", description="what the model predicts")
    output_dir: Path = Field(Path("runs/latest"), description="where the run writes its model, metrics and report")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    contrastive: ContrastiveConfig = Field(default_factory=ContrastiveConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(json.loads(self.model_dump_json()), sort_keys=False)


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MinbertError(f"{path}: config file not found; give a YAML or JSON file (see configs/)")
    text = path.read_text(encoding="utf-8")
    try:
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise MinbertError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise MinbertError(f"{path}: the top level must be a mapping of sections (data:, model:, train:)")
    return loaded


def field_paths(model: type[BaseModel] = RunConfig, prefix: str = "") -> dict[str, Any]:
    """Every dotted field name -> its pydantic FieldInfo, for help and suggestions."""
    paths: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.update(field_paths(annotation, f"{prefix}{name}."))
        else:
            paths[f"{prefix}{name}"] = info
    return paths


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """['--train.lr', '3e-5', '--data.format=csv'] -> nested dict; values parsed as YAML scalars."""
    known = field_paths()
    nested: dict[str, Any] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg in ("-q", "--quiet"):
            raise MinbertError(f"{arg} is a global option: put it before the command (minbert {arg} train CONFIG ...)")
        if not arg.startswith("--"):
            raise MinbertError(f"unexpected argument {arg!r}; overrides look like --section.field value")
        key, has_value, value = arg[2:].partition("=")
        if not has_value:
            if i + 1 >= len(items):
                raise MinbertError(f"--{key} needs a value")
            value = items[i + 1]
            i += 1
        i += 1
        key = key.replace("-", "_")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean --{close[0]}?" if close else "; see `minbert train --help` for the fields"
            raise MinbertError(f"unknown config field --{key}{hint}")
        section = nested
        *parents, leaf = key.split(".")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[leaf] = _parse_scalar(value)
    return nested


def _parse_scalar(value: str) -> Any:
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return value if isinstance(parsed, (dict, list)) else parsed


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a nested dict; errors name the dotted field and what was wrong."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'][:1].lower()}{err['msg'][1:]}"
            + (" (unknown field)" if err["type"] == "extra_forbidden" else "")
            for err in e.errors()
        )
        raise MinbertError(f"{source}: {problems}") from e


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    raw = read_config_file(path) if path is not None else {}
    return build_config(merge(raw, parse_overrides(overrides)), source=str(path or "command line"))


def describe_fields() -> str:
    """The field table printed by `minbert train --help`."""
    defaults = json.loads(RunConfig().model_dump_json())
    lines = []
    for dotted, info in field_paths().items():
        value: Any = defaults
        for part in dotted.split("."):
            value = value[part]
        lines.append(f"  --{dotted:<24} {info.description or ''} [default: {value}]")
    return "\n".join(lines)
