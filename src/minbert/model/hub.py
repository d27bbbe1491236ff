"""Checkpoints from the Hugging Face Hub by id (`bert-base-uncased`, `org/name`, `org/name@revision`),
through `huggingface_hub`: its cache (HF_HOME), offline mode (HF_HUB_OFFLINE=1), token (HF_TOKEN or a
login) and endpoint (HF_ENDPOINT) all apply, so a model that transformers or sentence-transformers already
downloaded loads from the same cache with no network.

Only the files minbert reads are fetched: config.json, the weights (model.safetensors, else
pytorch_model.bin, which is read with torch's weights-only loader), the tokenizer files and
sentence-transformers' modules.json, pooling and length settings. No code from a repository is ever run
(there is no trust_remote_code): a config naming an architecture outside minbert's families is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from minbert.errors import MinbertError

# A Hub id as users type it: `name`, `org/name`, optionally `@revision` (a branch, tag or commit).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?(@[\w./-]+)?$")
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "sentence_bert_config.json")
FAMILIES_HINT = "minbert loads BERT, RoBERTa / XLM-R, MPNet and DistilBERT checkpoints"


def looks_like_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name)) and not name.startswith(".")


def hub_checkpoint(name: str, model_types: Collection[str]) -> Path:
    """The local snapshot folder of a Hub checkpoint, downloading what is missing from the cache; a config
    whose model_type is not in `model_types` is refused before any weights are fetched."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as e:
        raise MinbertError(
            f"{name}: checkpoints by Hub id need huggingface_hub: pip install huggingface_hub "
            "(or give a local checkpoint directory)"
        ) from e
    repo_id, _, revision = name.partition("@")
    config = _fetch(name, repo_id, revision or None, "config.json", required=True)
    assert config is not None
    _refuse_foreign(config, model_types)
    if not any(_fetch(name, repo_id, revision or None, file) for file in WEIGHTS):
        raise MinbertError(f"{name}: the repository has no {' or '.join(WEIGHTS)}; minbert reads one of them")
    tokenizer = [_fetch(name, repo_id, revision or None, file) for file in TOKENIZER_FILES]
    if not any(tokenizer[:2]):
        raise MinbertError(f"{name}: the repository has no tokenizer.json or vocab.txt; minbert needs one of them")
    modules = _fetch(name, repo_id, revision or None, "modules.json")
    if modules is not None:
        _fetch(name, repo_id, revision or None, "sentence_bert_config.json")
        for module in _modules(modules):
            if str(module.get("type", "")).endswith("Pooling") and isinstance(module.get("path"), str):
                _fetch(name, repo_id, revision or None, f"{module['path']}/config.json")
    return config.parent


def _modules(path: Path) -> list[dict[str, Any]]:
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MinbertError(f"{path}: not valid JSON ({e})") from e
    return [m for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []


def _refuse_foreign(config: Path, model_types: Collection[str]) -> None:
    """An architecture minbert does not implement is refused before its weights are downloaded."""
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MinbertError(f"{config}: not valid JSON ({e})") from e
    model_type = raw.get("model_type", "bert") if isinstance(raw, dict) else None
    if model_type not in model_types:
        raise MinbertError(
            f"{config}: model_type {model_type!r} is not an encoder minbert implements; {FAMILIES_HINT} "
            f"({', '.join(model_types)})"
        )


def _fetch(name: str, repo_id: str, revision: str | None, file: str, required: bool = False) -> Path | None:
    """One file of the repository (from the cache when it is there), or None when the repository has no such
    file; every other failure is a one-line MinbertError that says what to do."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo_id, file, revision=revision))
    except GatedRepoError:
        raise MinbertError(
            f"{name}: a gated repository; accept its terms on its Hub page, then log in (`hf auth login`) or set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise MinbertError(
            f"{name}: no such local directory, and no model of that id on the Hub (a private one needs a login: "
            "`hf auth login` or HF_TOKEN); check the spelling, e.g. sentence-transformers/all-MiniLM-L6-v2"
        ) from None
    except RevisionNotFoundError:
        raise MinbertError(
            f"{name}: the repository has no revision {revision!r}; give a branch, tag or commit"
        ) from None
    except LocalEntryNotFoundError:
        if not required:
            return None
        raise MinbertError(
            f"{name}: not in the Hugging Face cache, and the Hub cannot be reached (HF_HUB_OFFLINE is set or there "
            "is no network); download it once where the Hub is reachable, point HF_HOME at a cache that has it, or "
            "for all-mpnet-base-v2 run `minbert download all-mpnet-base-v2`"
        ) from None
    except EntryNotFoundError:
        if required:
            raise MinbertError(
                f"{name}: the repository has no {file}; it is not a Hugging Face model checkpoint"
            ) from None
        return None
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MinbertError(
            f"{name}: downloading {file} failed ({first}); run again (a partial download resumes), or check "
            "HF_ENDPOINT and the network"
        ) from None
