"""Export a minbert classifier as a Hugging Face `*ForSequenceClassification` directory.

transformers gives each family its own classification head, and a minbert model exports only when
it trained exactly that head (otherwise the numbers could not be the same):

    bert         pooler -> dropout -> linear                       pooling pooler, hidden_size 0
    roberta,     first token -> dropout -> dense -> tanh ->        pooling cls, hidden_size = the encoder's,
    xlm-roberta, dropout -> linear                                 activation tanh
    mpnet
    distilbert   first token -> dense -> ReLU -> dropout -> linear pooling cls, hidden_size = the encoder's,
                                                                   activation relu

A calibration temperature is folded into the last layer (logits / T = (W / T) x + b / T), so the
exported probabilities are the calibrated ones. A multilabel head exports as
`problem_type: multi_label_classification` (a sigmoid per label). Out-of-scope rejection and tuned label
thresholds have no place in that format: the export says so and leaves them out.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from minbert.errors import MinbertError
from minbert.model.checkpoint import minbert_to_hf_name, write_safetensors
from minbert.model.layout import model_directory
from minbert.model.task_model import Model, load

log = logging.getLogger(__name__)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "merges.txt",
    "vocab.json",
    "sentencepiece.bpe.model",
)


@dataclass(frozen=True)
class HfHead:
    architecture: str
    prefix: str
    pooling: str
    activation: str | None  # None: a linear head (hidden_size 0); else the dense layer's activation
    layers: tuple[str, ...]  # HF names of the head's linear layers, first to last
    pooler: bool  # does the exported model keep the encoder's pooler


HF_HEADS = {
    "bert": HfHead("BertForSequenceClassification", "bert.", "pooler", None, ("classifier",), True),
    "roberta": HfHead(
        "RobertaForSequenceClassification",
        "roberta.",
        "cls",
        "tanh",
        ("classifier.dense", "classifier.out_proj"),
        False,
    ),
    "xlm-roberta": HfHead(
        "XLMRobertaForSequenceClassification",
        "roberta.",
        "cls",
        "tanh",
        ("classifier.dense", "classifier.out_proj"),
        False,
    ),
    "mpnet": HfHead(
        "MPNetForSequenceClassification", "mpnet.", "cls", "tanh", ("classifier.dense", "classifier.out_proj"), False
    ),
    "distilbert": HfHead(
        "DistilBertForSequenceClassification", "distilbert.", "cls", "relu", ("pre_classifier", "classifier"), False
    ),
}


def check_exportable(model: Model) -> tuple[HfHead, str]:
    """The family's head layout and the task to export, or an error naming the config that does export."""
    model_type = model.encoder.config.model_type
    if model_type not in HF_HEADS:
        raise MinbertError(f"--to transformers: no classification layout known for model_type {model_type!r}")
    layout = HF_HEADS[model_type]
    if len(model.tasks) != 1:
        raise MinbertError(
            f"--to transformers exports one classification head; this model has {len(model.tasks) or 'no'} heads"
        )
    spec = model.spec(model.tasks[0])
    if (spec.kind, spec.input) != ("classification", "single") or (spec.loss != "ce" and not spec.multilabel):
        raise MinbertError(
            f"--to transformers exports a single-sentence classifier (loss ce, or multilabel); this head is {spec.kind}, "
            f"{spec.input}, {spec.loss}"
        )
    if model.config.projection_size or model.config.normalize:
        raise MinbertError(
            "--to transformers: a shared projection / normalisation has no place in transformers' models"
        )
    width = model.encoder.config.hidden_size
    wanted_hidden = 0 if layout.activation is None else width
    fits = (
        model.config.pooling == layout.pooling
        and spec.hidden_size == wanted_hidden
        and (layout.activation is None or spec.activation == layout.activation)
    )
    if not fits:
        fix = f"--model.pooling {layout.pooling} --model.hidden_size {wanted_hidden}"
        fix += f" --model.activation {layout.activation}" if layout.activation else ""
        raise MinbertError(
            f"--to transformers: {layout.architecture} has its own head, and this model's ({model.config.pooling} pooling, "
            f"hidden_size {spec.hidden_size}, {spec.activation}) is not it; train with {fix} to export"
        )
    return layout, spec.name


def export_transformers(model_dir: str | Path, out: str | Path) -> Path:
    model = load(model_dir)
    layout, task = check_exportable(model)
    spec = model.spec(task)
    out = new_directory(out)
    model_type = model.encoder.config.model_type
    state = {
        layout.prefix + minbert_to_hf_name(name, model_type): tensor.detach().contiguous()
        for name, tensor in model.encoder.state_dict().items()
        if layout.pooler or not name.startswith("pooler.")
    }
    linears = [m for m in model.heads[task].mlp.layers if isinstance(m, torch.nn.Linear)]  # type: ignore[union-attr]
    for hf_name, linear in zip(layout.layers, linears, strict=True):
        weight, bias = linear.weight.detach(), linear.bias.detach()
        if hf_name == layout.layers[-1]:  # the calibration temperature, folded into the logits
            weight, bias = weight / spec.temperature, bias / spec.temperature
        state[f"{hf_name}.weight"], state[f"{hf_name}.bias"] = weight.contiguous(), bias.contiguous()
    write_safetensors(state, out / "model.safetensors", metadata={"format": "pt"})
    config = model.encoder.config.to_hf_dict() | {
        "architectures": [layout.architecture],
        "id2label": dict(enumerate(spec.labels)),
        "label2id": {label: i for i, label in enumerate(spec.labels)},
        "problem_type": "multi_label_classification" if spec.multilabel else "single_label_classification",
        "classifier_dropout": spec.dropout,
    }
    if model_type == "distilbert":
        config["seq_classif_dropout"] = spec.dropout
    write_json(out / "config.json", config)
    copy_tokenizer(model_directory(model_dir) / "encoder", out, model.config.max_length)
    if spec.multilabel and spec.thresholds:
        log.warning(
            "--to transformers: the label thresholds tuned on dev (%.2f-%.2f) are not part of that format; read the "
            "pipeline's sigmoid scores (top_k=None) against the thresholds in %s",
            min(spec.thresholds),
            max(spec.thresholds),
            model_directory(model_dir) / "minbert.json",
        )
    if spec.oos_method != "none":
        log.warning(
            "--to transformers: the out-of-scope rejection (%s, threshold %.4f) is not part of that format; the "
            "exported model always answers one of its labels",
            spec.oos_method,
            spec.oos_threshold or 0.0,
        )
    return out


def new_directory(out: str | Path) -> Path:
    """The export's target: a new (or empty) directory, made now."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MinbertError(f"--out {out}: not empty; give a new directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def copy_tokenizer(source: Path, out: Path, max_length: int) -> None:
    """The tokenizer files beside the exported weights, with model_max_length at minbert's truncation, so
    the other library cuts texts where minbert does."""
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    tokenizer_config = out / "tokenizer_config.json"
    settings = json.loads(tokenizer_config.read_text()) if tokenizer_config.is_file() else {}
    write_json(tokenizer_config, settings | {"model_max_length": max_length})


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
