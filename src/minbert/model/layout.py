"""The saved model directory as files: written whole or not at all, checked on load, old layouts read.

    minbert.json         what the model is (pooling, projection, heads with their labels), plus a
                         manifest: every file's size and SHA-256
    heads.safetensors    everything but the encoder: projection and heads
    encoder/             the encoder in Hugging Face format (config.json, model.safetensors, tokenizer files)

A model is written into a temporary sibling directory and swapped into place in one atomic step, so a
run killed during the save leaves the previous model or the new one, never a mixture; a directory whose files do not match
its manifest is refused. Format 1 (minbert 0.1: `head.safetensors` for a classifier, `heads.safetensors`
for a multitask model) still loads: `upgrade` turns its description into today's.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minbert.errors import MinbertError

FORMAT_VERSION = 2
MODEL_FILE = "minbert.json"
HEADS_FILE = "heads.safetensors"
LEGACY_HEAD_FILE = "head.safetensors"  # format 1 classifiers
DEFAULT_TASK = "main"  # the head of a single-task (task: classification) model


def model_directory(path: str | Path) -> Path:
    """A saved model directory, or a run directory holding one in `model/`."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / MODEL_FILE).is_file():
            return candidate
    if not path.exists():
        raise MinbertError(f"{path}: no such model directory; give the output_dir of a training run")
    raise MinbertError(f"{path}: not a saved minbert model (no {MODEL_FILE}); give the output_dir of a training run")


def is_model_directory(path: str | Path | None) -> bool:
    return path is not None and any((Path(path) / sub / MODEL_FILE).is_file() for sub in ("", "model"))


def read_description(directory: Path) -> dict[str, Any]:
    """minbert.json as a dict, or a one-line error saying what is wrong with it."""
    file = directory / MODEL_FILE
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MinbertError(
            f"{file}: not valid JSON ({e}); the model directory is damaged: save or train it again"
        ) from e
    except OSError as e:
        raise MinbertError(f"{file}: cannot be read ({e.strerror})") from e
    if not isinstance(raw, dict):
        raise MinbertError(f"{file}: holds a {type(raw).__name__}, not the model's description (a JSON object)")
    version = raw.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise MinbertError(f"{file}: format_version {version!r} is not a whole number")
    if version > FORMAT_VERSION:
        raise MinbertError(f"{directory}: saved by a newer minbert (format {version}); upgrade minbert")
    return raw


def upgrade(raw: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, str]]:
    """(today's description, the weights file, old -> new weight-name prefixes) for any saved format."""
    if raw.get("format_version", 1) >= 2:
        return raw, HEADS_FILE, {}
    raw = {k: v for k, v in raw.items() if k not in ("task", "format_version")}
    if "heads" in raw:  # a format 1 multitask model: the same weights, heads had a fixed ReLU
        return raw, HEADS_FILE, {}
    head = {
        "name": DEFAULT_TASK,
        "labels": raw.pop("labels"),
        "hidden_size": raw.pop("hidden_size", 512),
        "activation": raw.pop("activation", "relu"),
        "dropout": raw.pop("dropout", 0.1),
    }
    return {**raw, "heads": [head]}, LEGACY_HEAD_FILE, {"": f"heads.{DEFAULT_TASK}.mlp."}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """Every file under the directory (but minbert.json itself): size and SHA-256."""
    return {
        str(file.relative_to(directory)): {"bytes": file.stat().st_size, "sha256": file_digest(file)}
        for file in sorted(directory.rglob("*"))
        if file.is_file() and file.name != MODEL_FILE
    }


UNVERIFIED_FLAG = "MINBERT_TRUST_UNVERIFIED_MODEL"  # =1: load a model directory that carries no manifest


def description_content(raw: dict[str, Any]) -> dict[str, Any]:
    """minbert.json without what write_description adds (the files manifest and the digest): the model's own
    description, as it is digested, rewritten after an export, and read into a ModelDescription."""
    return {k: v for k, v in raw.items() if k not in ("files", "description_sha256")}


def description_digest(raw: dict[str, Any]) -> str:
    """SHA-256 of what decides a model's answers in minbert.json (labels, thresholds, temperature, heads, pooling,
    lengths): its description_content, canonically serialised."""
    content = description_content(raw)
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_manifest(directory: Path, raw: dict[str, Any]) -> None:
    """Refuse a directory whose files are not the ones saved with it (a mixed or damaged model), whose
    description was changed after saving, or that carries no manifest (unless the user says to trust it)."""
    files = raw.get("files")
    if files is None:
        if os.environ.get(UNVERIFIED_FLAG) == "1":
            return
        raise MinbertError(
            f"{directory / MODEL_FILE}: no files manifest, so nothing shows these files are the ones saved together "
            f"(a model from before manifests, or one whose manifest was removed); save it again with this minbert, or "
            f"set {UNVERIFIED_FLAG}=1 to load it unverified, at your own risk"
        )
    expected_digest = raw.get("description_sha256")
    if expected_digest is not None and expected_digest != description_digest(raw):
        raise MinbertError(
            f"{directory / MODEL_FILE}: its description (labels, thresholds, temperature, heads) does not match the "
            "digest it was saved with: it was edited or damaged; save or train the model again"
        )
    if not isinstance(files, dict) or not all(
        isinstance(name, str)
        and isinstance(entry, dict)
        and isinstance(entry.get("bytes"), int)
        and isinstance(entry.get("sha256"), str)
        and not Path(name).is_absolute()
        and ".." not in Path(name).parts
        for name, entry in files.items()
    ):
        raise MinbertError(
            f"{directory / MODEL_FILE}: its files manifest is not {{relative name: {{bytes, sha256}}}}; the model "
            "directory is damaged: save or train it again"
        )
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            raise MinbertError(f"{file}: missing; the model directory is incomplete: save or train it again")
        try:
            digest = file_digest(file)
        except PermissionError:
            raise MinbertError(
                f"{file}: permission denied: this user may not read the model's files; fix their permissions"
            ) from None
        if file.stat().st_size != expected["bytes"] or digest != expected["sha256"]:
            raise MinbertError(
                f"{file}: does not match the manifest in {MODEL_FILE} (size or SHA-256); the model directory is "
                "damaged or mixes files of two saves: save or train it again"
            )


@contextlib.contextmanager
def written_whole(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory to write into; on success it replaces `target`, on failure it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not target.exists():
        os.replace(staging, target)
    elif exchange(staging, target):  # one atomic step: the old model until here, the new one after
        shutil.rmtree(staging, ignore_errors=True)
    else:  # no atomic exchange on this system: two renames, with the old model kept aside between them
        retired = target.parent / f".{target.name}.old-{os.getpid()}"
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where that is not available."""
    if sys.platform != "linux":
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return bool(renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0)


def write_description(directory: Path, description: dict[str, Any]) -> None:
    """minbert.json with the manifest of everything already written beside it (so it is written last)."""
    written = {**description, "files": manifest(directory)}
    text = json.dumps({**written, "description_sha256": description_digest(written)}, indent=2) + "\n"
    (directory / MODEL_FILE).write_text(text, encoding="utf-8")
