"""The typed run config: every section and field, with what each means and the rules that tie them.

Unknown fields are errors (a typo must not silently fall back to a default), and so is a field
the run would not read (a multitask run's top-level `data:`, a contrastive setting with no
contrastive stage): every field that validates is used. Every field has a description, so
`minbert train --help` can list them all.

A single-task config (`task: classification`, its `data:` and `model:` head fields) is sugar for a
one-entry task list: `RunConfig.task_list()` gives every run the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def changed(self) -> set[str]:
        """The fields whose value differs from the default: what the config really asks for (a saved
        config.yaml writes every field, so "was written" would not tell)."""
        return {
            name
            for name, info in type(self).model_fields.items()
            if getattr(self, name) != info.get_default(call_default_factory=True)
        }


class ExcludeSource(Section):
    """A file whose texts must not be trained on (an evaluation set of another task)."""

    path: Path = Field(..., description="file (or uci directory) of texts to keep out of training")
    format: str = Field("jsonl", description="its data format (see minbert formats)")
    text_column: str | None = Field(None, description="its text field/column (default: the format's own)")


class DataConfig(Section):
    train: Path | None = Field(None, description="training file")
    dev: Path | None = Field(None, description="validation file (model selection, early stopping)")
    test: Path | None = Field(None, description="test file (reported once, after training)")
    format: str = Field(
        "jsonl", description="the data format: one of those `minbert formats` lists (jsonl, csv, tsv, massive, ...)"
    )
    text_column: str | None = Field(None, description="text field/column (default: the format's own)")
    label_column: str | None = Field(None, description="label field/column (default: the format's own)")
    text_pair_column: str | None = Field(None, description="second text of a pair (default: the format's own, if any)")
    skip_bad_rows: bool = Field(False, description="skip malformed rows, counting them in the log, instead of stopping")
    label_separator: str | None = Field(
        None,
        min_length=1,
        description="split each label field into a label set on this string (e.g. '#' for 'a#b'): a multi-label run",
    )
    unseen_labels: Literal["error", "skip", "count_wrong"] = Field(
        "error",
        description="dev/test rows whose label training never saw: error (stop, naming the row), skip (drop and "
        "count them), or count_wrong (keep them, scored as misses: the published ATIS convention)",
    )
    allow_empty_labels: bool = Field(
        False, description="multi-label: keep rows whose label set is empty (otherwise they are errors)"
    )
    max_train_examples: int | None = Field(None, ge=1, description="use a seeded random subset of train (quick runs)")
    few_shot: int | None = Field(None, ge=1, description="train on N examples sampled with the label distribution")
    shots_per_class: int | None = Field(
        None, ge=1, description="train on K examples of each class (seeded by sample_seed; all of a smaller class)"
    )
    label_noise: float = Field(0.0, ge=0.0, le=1.0, description="flip this fraction of training labels (robustness)")
    sample_seed: int | None = Field(
        None, description="seed of few_shot / shots_per_class / label_noise sampling (default: train.seed)"
    )
    exclude: list[ExcludeSource] = Field(
        default_factory=list,
        description="drop training rows whose text occurs in these files ([{path, format}], compared on letters and digits); logged",
    )
    split: list[float] | None = Field(
        None,
        description="no dev/test files: split train (stratified, seeded by sample_seed) into train/dev/test fractions, e.g. [0.8, 0.1, 0.1]",
    )
    oos_dev: list[Path] = Field(
        default_factory=list,
        description="out-of-scope dev texts (this format; labels ignored): the oos threshold is chosen on them",
    )
    oos_test: list[Path] = Field(
        default_factory=list, description="out-of-scope test texts: the run reports OOS recall, precision, F1, AUROC"
    )
    oos_train: list[Path] = Field(
        default_factory=list,
        description="out-of-scope training texts, trained as one extra class named oos.label (the 'oos as a class' baseline)",
    )

    @field_validator("oos_dev", "oos_test", "oos_train", mode="before")
    @classmethod
    def _one_file_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _one_sampling(self) -> DataConfig:
        if self.few_shot is not None and self.shots_per_class is not None:
            raise ValueError("few_shot samples N rows in all, shots_per_class K per class: set one of the two")
        return self

    @field_validator("split")
    @classmethod
    def _check_split(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) not in (2, 3) or any(v < 0 for v in value) or abs(sum(value) - 1) > 1e-6):
            raise ValueError(
                "must be 2 or 3 non-negative fractions summing to 1 (train, dev[, test]), e.g. [0.8, 0.1, 0.1]"
            )
        return value


class ModelConfig(Section):
    checkpoint: str = Field("all-MiniLM-L6-v2", description="HF-format checkpoint directory or 'all-MiniLM-L6-v2'")
    pooling: Literal["cls", "mean", "pooler"] = Field(
        "cls", description="sentence vector: [CLS], mean of tokens, or pooler"
    )
    hidden_size: int = Field(512, ge=0, description="units of the head's hidden layer (0 = linear head)")
    activation: Literal["relu", "gelu", "tanh"] = Field("relu", description="activation of the head's hidden layer")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout before each head layer")
    max_length: int = Field(128, ge=8, le=512, description="tokens per text after truncation")
    encoder_dropout: float | None = Field(
        None, ge=0.0, lt=1.0, description="the encoder's dropout (default: the checkpoint's, 0.1 for BERT)"
    )
    multilabel: bool = Field(
        False,
        description="any subset of the labels (sigmoid + BCE per label); also set by data.label_separator or "
        "label lists in the data",
    )
    multilabel_threshold: Literal["global", "per_label"] | float = Field(
        "global",
        description="multilabel: tune one threshold (global) or one per label (per_label) on dev for macro-F1, "
        "or a fixed probability such as 0.5",
    )


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
    freeze: str = Field(
        "none", description="none | encoder | embeddings | bottom:K | heads | all (heads/all: multitask)"
    )
    reinit_top: int = Field(0, ge=0, description="re-initialise the top K encoder layers before training")
    eval_every: int = Field(0, ge=0, description="evaluate every N optimizer steps (0 = once per epoch)")
    objective: Literal["ce", "ce+scl"] = Field("ce", description="cross-entropy, or (1-l)*CE + l*SCL (Gunel et al.)")
    class_weights: Literal["none", "balanced"] | dict[str, float] = Field(
        "none",
        description="weigh each class in CE / BCE: none, balanced (n / (classes x count), as scikit-learn), "
        "or {label: weight} (others 1; single-task runs)",
    )
    scl_lambda: float = Field(0.9, ge=0.0, le=1.0, description="l, the weight of the supervised contrastive term")
    scl_temperature: float = Field(0.3, gt=0.0, description="temperature of the supervised contrastive term")
    metric: Literal["accuracy", "macro_f1", "loss", "overall"] | None = Field(
        None, description="dev metric for best/early stop (default: accuracy; multitask: overall, or loss)"
    )
    patience: int | None = Field(None, ge=1, description="stop after N evaluations without improvement")
    seed: int = Field(42, description="seeds data order, dropout and initialisation")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    bf16: bool = Field(
        False,
        description="bf16 autocast: faster on GPUs, CPUs with AMX and some with avx512_bf16 only; minbert warns when "
        "a bf16 matmul measures slower than fp32 on this CPU",
    )
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: all cores)")
    bucket: bool = Field(True, description="length-bucketed batches (less padding, same examples)")
    cache_features: bool = Field(True, description="frozen encoder: encode once, train the head on cached vectors")
    eval_batch_size: int = Field(128, ge=1, description="batch size for evaluation and prediction")
    eval_before: bool = Field(True, description="evaluate dev before the first step")
    tensorboard: bool = Field(False, description="also log to TensorBoard (needs the tensorboard package)")
    progress: bool = Field(True, description="show progress bars")
    resume: bool = Field(False, description="continue from output_dir/checkpoint/ (a killed run), if there is one")
    overwrite: bool = Field(
        False, description="replace an earlier run in output_dir (without it, a used output_dir is an error)"
    )
    checkpoint_every: int = Field(
        0, ge=0, description="save a resumable checkpoint every N steps (0 = at the end of each epoch)"
    )
    checkpoint_interval_s: float = Field(
        60.0, ge=0, description="epoch-end checkpoints at most this often, in seconds (0 = every epoch)"
    )
    keep_checkpoint: bool = Field(
        False, description="keep output_dir/checkpoint/ after a finished run (default: delete it)"
    )

    @field_validator("freeze")
    @classmethod
    def _check_freeze(cls, value: str) -> str:
        if value in ("none", "encoder", "embeddings", "heads", "all"):
            return value
        if value.startswith("bottom:") and value[7:].isdigit():
            return value
        raise ValueError("must be none, encoder, embeddings, bottom:K (e.g. bottom:4), heads or all")


class ContrastiveConfig(Section):
    """An optional first stage: contrastive training of the encoder before the classifier stage."""

    objective: Literal["none", "simcse", "supcon", "pairs"] = Field(
        "none",
        description="none | simcse (dropout views) | supcon (labels) | pairs (SetFit: cosine of drawn same- and other-label pairs)",
    )
    temperature: float = Field(0.05, gt=0.0, description="simcse and supcon: softmax temperature tau")
    projection_size: int = Field(0, ge=0, description="projection head size for the loss (0 = none)")
    views: int = Field(
        1,
        ge=1,
        le=2,
        description="supcon only: views per sentence; 1 = encode once (seed 000), 2 = two dropout views, so every anchor has its twin as a positive (Khosla et al.)",
    )
    pair_iterations: int = Field(
        20,
        ge=1,
        description="pairs only: rounds of drawing per epoch, each giving every sentence one same-label and one other-label partner (SetFit's num_iterations)",
    )
    epochs: int = Field(1, ge=1, description="contrastive epochs")
    batch_size: int = Field(64, ge=2, description="contrastive batch size (in-batch negatives; pairs: pairs per batch)")
    lr: float = Field(3e-5, gt=0, description="contrastive learning rate")
    warmup_ratio: float = Field(0.0, ge=0, lt=1.0, description="contrastive warm-up fraction")
    schedule: Literal["linear", "cosine", "constant"] = Field("linear", description="contrastive LR schedule")

    @model_validator(mode="after")
    def _fields_of_the_objective(self) -> ContrastiveConfig:
        """Refuse a setting the chosen objective would silently ignore (SimCSE always uses two views)."""
        if self.views != 1 and self.objective != "supcon":
            raise ValueError(
                f"views applies to objective supcon only (objective is {self.objective}; simcse always uses two views)"
            )
        if "pair_iterations" in self.changed() and self.objective != "pairs":
            raise ValueError(f"pair_iterations applies to objective pairs only (objective is {self.objective})")
        if "temperature" in self.changed() and self.objective == "pairs":
            raise ValueError("temperature is read by simcse and supcon; objective pairs regresses cosines and has none")
        return self


class HeadConfig(Section):
    """One task head of a multitask model: what it reads and what it predicts."""

    kind: Literal["classification", "regression"] = Field(
        "classification", description="classes, or a number (similarity, intensity)"
    )
    input: Literal["single", "cross", "bi"] = Field(
        "single",
        description="one sentence; a pair as one sequence ([CLS] a [SEP] b [SEP]); or a pair encoded separately",
    )
    features: Literal["concat", "cosine"] = Field(
        "concat", description="bi-encoder: (u, v, |u-v|, u*v) -> MLP, or cosine(u, v)"
    )
    loss: Literal["ce", "bce", "mse", "cosent"] = Field(
        "ce",
        description="ce | bce (2 classes, or regression targets in [0, 1]: sigmoid + BCE) | mse | cosent (regression); "
        "default ce, mse for a regression head",
    )
    hidden_size: int = Field(0, ge=0, description="units of the head's hidden layer (0 = linear head)")
    activation: Literal["relu", "gelu", "tanh"] = Field("relu", description="activation of the head's hidden layer")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout before each head layer")
    target_range: list[float] | None = Field(
        None,
        description="regression: [min, max] of the gold scores, scaled to [0, 1] for the loss (default: the format's, "
        "[0, 5] for sts / stsb, else [0, 1])",
    )
    multilabel: bool = Field(False, description="classification: any subset of the labels (sigmoid + BCE per label)")
    multilabel_threshold: Literal["global", "per_label"] | float = Field(
        "global", description="multilabel: global | per_label (tuned on dev for macro-F1) | a fixed probability"
    )

    @model_validator(mode="before")
    @classmethod
    def _regression_defaults_to_mse(cls, data: Any) -> Any:
        """A regression head without a loss trains with MSE (ce is the classifier's default)."""
        if isinstance(data, dict) and data.get("kind") == "regression" and "loss" not in data:
            return {**data, "loss": "mse"}
        return data

    @model_validator(mode="after")
    def _fields_this_head_reads(self) -> HeadConfig:
        if self.kind == "classification" and self.target_range is not None:
            raise ValueError("target_range is read by regression heads only (kind is classification)")
        if self.kind == "regression" and self.multilabel:
            raise ValueError("multilabel is read by classification heads only (kind is regression)")
        if self.multilabel and "loss" in self.changed() and self.loss != "bce":
            raise ValueError(f"a multilabel head trains with loss bce (a sigmoid per label), not {self.loss}")
        if self.hidden_size == 0 and "activation" in self.changed():
            raise ValueError("activation is read by a hidden layer, and hidden_size is 0 (a linear head)")
        return self

    @field_validator("target_range")
    @classmethod
    def _check_range(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) != 2 or value[0] >= value[1]):
            raise ValueError("must be [min, max] with min < max, e.g. [0, 5]")
        return value


# The name of the one head of a single-task (task: classification) run; it keeps plain metric names.
SINGLE_TASK = "main"

# The gold-score scale of the pair formats that carry one; a regression head on them defaults to it.
SCORE_RANGES: dict[str, list[float]] = {"sts": [0.0, 5.0], "stsb": [0.0, 5.0]}


class TaskConfig(Section):
    name: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="task name (metrics are <name>_<metric>)")
    data: DataConfig = Field(default_factory=DataConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    weight: float = Field(1.0, ge=0.0, description="weight of this task's loss")

    @model_validator(mode="after")
    def _default_target_range(self) -> TaskConfig:
        """STS scores run 0-5: a regression head on an sts file should not need to be told."""
        if self.head.kind == "regression" and self.head.target_range is None:
            self.head.target_range = SCORE_RANGES.get(self.data.format, [0.0, 1.0])
        return self


class MultitaskConfig(Section):
    sampling: Literal["round_robin", "proportional", "annealed"] = Field(
        "proportional",
        description="which task each step trains: in turn, by dataset size, or annealed from size to uniform",
    )
    steps_per_epoch: int | None = Field(None, ge=1, description="steps per epoch (default: all tasks' batches once)")
    projection_size: int = Field(
        0, ge=0, description="shared linear layer on the sentence vector before every head (0 = none)"
    )
    normalize: bool = Field(False, description="L2-normalise the (projected) sentence vector (seed 004)")


class ParamSpec(Section):
    """One hyperparameter of a sweep: a float or int range (optionally log-scaled), or a list of choices."""

    type: Literal["float", "int", "categorical"] = Field(..., description="float | int | categorical")
    low: float | None = Field(None, description="lower bound (float, int)")
    high: float | None = Field(None, description="upper bound (float, int)")
    log: bool = Field(False, description="sample on a log scale (learning rates)")
    choices: list[Any] | None = Field(None, description="the values to choose from (categorical)")

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical parameter needs choices: [...]")
        if self.type != "categorical" and (self.low is None or self.high is None or self.low >= self.high):
            raise ValueError(f"a {self.type} parameter needs low < high")
        return self


class SweepConfig(Section):
    """`minbert sweep`: Optuna trials over `params`, each a full run scored on its best dev metric."""

    trials: int = Field(10, ge=1, description="trials to run (more can be added later: the study is stored)")
    params: dict[str, ParamSpec] = Field(
        default_factory=dict, description="dotted config field -> search space, e.g. train.lr"
    )
    direction: Literal["maximize", "minimize"] = Field(
        "maximize", description="maximize the dev metric (minimize for loss)"
    )
    storage: str | None = Field(
        None, description="Optuna storage URL (default: sqlite:///OUTPUT_DIR/sweep.db; PostgreSQL for many machines)"
    )
    study_name: str | None = Field(None, description="study name (default: the output_dir's name)")
    sampler: Literal["tpe", "random"] = Field(
        "tpe", description="TPE (Bayesian) or random search, seeded by train.seed"
    )
    pruner: Literal["median", "none"] = Field(
        "median", description="stop trials whose dev metric is below the median of earlier trials"
    )
    keep_models: bool = Field(False, description="keep every trial's model/ (default: only the best trial's)")
    worker: int | None = Field(
        None,
        ge=0,
        description="this worker's index when several share one study (0, 1, ...): seeds its sampler with "
        "train.seed + index, so workers differ and each is reproducible (unset with sweep.storage: seeded by process)",
    )
    heartbeat_s: int = Field(
        30,
        ge=1,
        description="a running trial's heartbeat; a worker killed mid-trial has its trial marked failed by the next "
        "worker after 2x this",
    )


class DistillConfig(Section):
    """Knowledge distillation: train against a saved minbert model's outputs as well as the labels."""

    teacher: Path | None = Field(
        None, description="the teacher: a saved minbert model or run directory with heads of the same names"
    )
    alpha: float = Field(
        0.5, ge=0.0, le=1.0, description="loss = (1-alpha) * task loss + alpha * distillation loss (0: labels only)"
    )
    temperature: float = Field(
        2.0, gt=0.0, description="softens both softmaxes for the KL term (scaled by T^2); regression heads use MSE"
    )
    data: list[Path] = Field(
        default_factory=list,
        description="extra unlabelled texts the teacher labels (single-task runs; any reader format, labels ignored)",
    )
    format: str | None = Field(None, description="the format of distill.data (default: data.format)")


OOS_CHOICES = "msp | energy | mahalanobis | knn"


class OosConfig(Section):
    """Out-of-scope rejection: inputs whose in-scope score is below a threshold chosen on dev get oos.label."""

    method: Literal["none", "msp", "energy", "mahalanobis", "knn"] = Field(
        "none",
        description="msp (max softmax probability) | energy (T * logsumexp of the logits) | mahalanobis (distance "
        "to the nearest class mean, shared covariance, on the sentence vector) | knn (cosine distance to the k-th "
        "nearest training vector) | none",
    )
    k: int = Field(10, ge=1, description="knn: which nearest training vector's distance is the score")
    label: str = Field("oos", description="the label a rejected input gets (also the extra class of data.oos_train)")
    in_scope_recall: float = Field(
        0.95, gt=0.0, le=1.0, description="without data.oos_dev: keep this share of the in-scope dev inputs"
    )
    max_accuracy_drop: float = Field(
        0.01, ge=0.0, le=1.0, description="with data.oos_dev: the threshold may cost at most this in-scope dev accuracy"
    )
    criterion: Literal["f1", "recall"] = Field(
        "f1",
        description="with data.oos_dev: within that budget, the threshold of best OOS F1, or of most OOS recall "
        "(the whole budget spent on catching out-of-scope inputs)",
    )


class RunConfig(Section):
    task: Literal["classification", "multitask"] = Field(
        "classification",
        description="classification (data/model sections), or multitask (the tasks list; also one pair task)",
    )
    output_dir: Path = Field(Path("runs/latest"), description="where the run writes its model, metrics and report")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    contrastive: ContrastiveConfig = Field(default_factory=ContrastiveConfig)
    tasks: list[TaskConfig] = Field(
        default_factory=list, description="multitask: the tasks (override with --tasks.NAME.field)"
    )
    multitask: MultitaskConfig = Field(default_factory=MultitaskConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    oos: OosConfig = Field(default_factory=OosConfig)
    calibration: Literal["none", "temperature"] = Field(
        "none", description="temperature: fit one softmax temperature on dev (NLL) and apply it to probabilities"
    )

    @field_validator("tasks")
    @classmethod
    def _unique_names(cls, tasks: list[TaskConfig]) -> list[TaskConfig]:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique: {names}")
        return tasks

    @model_validator(mode="after")
    def _every_field_is_read(self) -> RunConfig:
        """A field that validates but that this run would not read is an error naming it and why."""
        if self.tasks and self.task != "multitask":
            raise ValueError("a tasks: list is read by task: multitask; set task: multitask (or remove tasks:)")
        if self.task == "multitask":
            if self.data.changed():
                raise ValueError(
                    "data: is the single-task run's data; a multitask run reads each task's own (tasks.NAME.data)"
                )
            head_fields = sorted(
                {"hidden_size", "activation", "dropout", "multilabel", "multilabel_threshold"} & self.model.changed()
            )
            if head_fields:
                raise ValueError(
                    f"model.{head_fields[0]} sets the single-task head; a multitask run sets each head's own (tasks.NAME.head.{head_fields[0]})"
                )
        elif self.multitask.changed():
            raise ValueError(
                "multitask: is read by task: multitask; a single-task run has one head and no shared projection"
            )
        elif self.model.hidden_size == 0 and "activation" in self.model.changed():
            raise ValueError(
                "model.activation is read by the head's hidden layer, and model.hidden_size is 0 (a linear head)"
            )
        stage = self.contrastive
        if stage.objective == "none" and stage.changed():
            raise ValueError(
                f"contrastive.{sorted(stage.changed())[0]} is set but contrastive.objective is none, "
                "so there is no contrastive stage to read it; set contrastive.objective (simcse | supcon | pairs) or remove it"
            )
        if self.oos.method == "none" and self.oos.changed() - {"label"}:
            raise ValueError(
                f"oos.{sorted(self.oos.changed() - {'label'})[0]} is set but oos.method is none; set oos.method ({OOS_CHOICES})"
            )
        if self.data.oos_dev and self.oos.method == "none":
            raise ValueError(
                f"data.oos_dev is read by out-of-scope rejection (its threshold); set oos.method ({OOS_CHOICES})"
            )
        if self.data.oos_test and self.oos.method == "none" and not self.data.oos_train:
            raise ValueError(
                "data.oos_test is scored by out-of-scope rejection (oos.method) or by an oos class (data.oos_train); set one"
            )
        if (self.oos.method != "none" or self.calibration != "none") and self.task == "multitask":
            raise ValueError("oos.method and calibration apply to a single-task classifier (not yet to multitask runs)")
        if self.oos.criterion != "f1" and not self.data.oos_dev:
            raise ValueError(
                "oos.criterion chooses among thresholds scored on out-of-scope dev texts; set data.oos_dev (or remove it)"
            )
        if self.oos.k != 10 and self.oos.method != "knn":
            raise ValueError(f"oos.k is read by oos.method knn (the method is {self.oos.method})")
        if self.model.multilabel and (self.oos.method != "none" or self.calibration != "none"):
            raise ValueError(
                "oos.method and calibration apply to a single-label classifier; a multilabel head has thresholds per label"
            )
        if self.oos.method != "none" and self.data.oos_train:
            raise ValueError(
                "data.oos_train trains out-of-scope as a class; oos.method rejects by a threshold: choose one of the two"
            )
        if self.distill.teacher is None and self.distill.changed():
            raise ValueError(
                f"distill.{sorted(self.distill.changed())[0]} is set but distill.teacher is not, so nothing is distilled; "
                "set distill.teacher to a saved minbert model (or remove it)"
            )
        if self.distill.data and self.distill.alpha == 0:
            raise ValueError(
                "distill.data texts are learnt from the teacher alone, and distill.alpha is 0 (labels only)"
            )
        if self.distill.data and self.task == "multitask":
            raise ValueError(
                "distill.data adds unlabelled texts to the single-task run's head; a multitask run distils on each task's own train data"
            )
        if isinstance(self.train.class_weights, dict) and self.task == "multitask":
            raise ValueError(
                "train.class_weights {label: weight} names one head's labels; a multitask run takes none or balanced"
            )
        scl_fields = sorted({"scl_lambda", "scl_temperature"} & self.train.changed())
        if self.train.objective != "ce+scl" and scl_fields:
            raise ValueError(
                f"train.{scl_fields[0]} is read by train.objective ce+scl (the objective is {self.train.objective})"
            )
        return self

    def task_list(self) -> list[TaskConfig]:
        """The run's tasks: the multitask list, or the single-task config as a one-entry list."""
        if self.task == "multitask":
            return list(self.tasks)
        hidden = (
            {"hidden_size": self.model.hidden_size, "activation": self.model.activation}
            if self.model.hidden_size
            else {"hidden_size": 0}
        )
        head = HeadConfig(
            kind="classification",
            input="single",
            loss="ce",
            dropout=self.model.dropout,
            multilabel=self.model.multilabel,
            multilabel_threshold=self.model.multilabel_threshold,
            **hidden,
        )
        return [TaskConfig(name=SINGLE_TASK, data=self.data, head=head)]

    def to_yaml(self) -> str:
        return yaml.safe_dump(json.loads(self.model_dump_json()), sort_keys=False)

    def with_absolute_paths(self) -> RunConfig:
        """A copy whose input files (data, teacher, a checkpoint directory) are absolute, so that a run's
        saved config.yaml reads the same files when refit, evaluated or re-run from another directory.
        output_dir stays as given: re-running a config writes where the config says, as any other does."""
        copy = self.map_paths(Path.resolve)
        copy.output_dir = self.output_dir
        if Path(self.model.checkpoint).exists():
            copy.model.checkpoint = str(Path(self.model.checkpoint).resolve())
        return copy

    def map_paths(self, change: Callable[[Path], Path]) -> RunConfig:
        """A copy with `change` applied to every Path field, through sections and lists (data splits,
        exclusions, OOS files, teacher, distillation data, every task's data, output_dir)."""
        return _map_paths(self, change)


def _map_paths(value: Any, change: Callable[[Path], Path]) -> Any:
    if isinstance(value, Path):
        return change(value)
    if isinstance(value, list):
        return [_map_paths(item, change) for item in value]
    if isinstance(value, Section):
        return value.model_copy(
            update={name: _map_paths(getattr(value, name), change) for name in type(value).model_fields}
        )
    return value
