"""A run config from a YAML/JSON file and dotted command-line overrides, validated into `RunConfig`.

    minbert train configs/massive_intent.yaml --train.lr 3e-5 --data.format csv

Each override is read as its field's type reads it (a text field takes the text verbatim); errors name the
dotted field and where the value came from (the file, or the command line).
"""

from __future__ import annotations

import difflib
import json
import logging
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from minbert.config.schema import RunConfig, TaskConfig
from minbert.errors import MinbertError


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases (*name) are not read in files from a model or run folder")
        return super().compose_node(parent, index)


def read_untrusted_yaml(text: str) -> Any:
    """YAML from a model or run folder (a run's config.yaml, a checkpoint's README front matter): safe types
    only and no aliases, so a few lines cannot expand into a billion nodes."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise MinbertError(f"{path}: is a directory, not a config file; give a YAML or JSON file (see configs/)")
    if not path.is_file():
        raise MinbertError(f"{path}: config file not found; give a YAML or JSON file (see configs/)")
    try:
        text = path.read_text(encoding="utf-8")
    except PermissionError:
        raise MinbertError(
            f"{path}: permission denied: this user may not read the config file; fix its permissions"
        ) from None
    except UnicodeDecodeError as e:
        raise MinbertError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save the config as UTF-8") from None
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
        if key.startswith("tasks."):
            _check_task_field(key)
        elif key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean --{close[0]}?" if close else "; see `minbert train --help` for the fields"
            raise MinbertError(f"unknown config field --{key}{hint}")
        section = nested
        *parents, leaf = key.split(".")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[leaf] = parse_value(value, _field_info(key, known))
    return nested


def _field_info(key: str, known: dict[str, Any]) -> Any:
    if key.startswith("tasks."):
        return field_paths(TaskConfig).get(".".join(key.split(".")[2:]))
    return known.get(key)


def parse_value(value: str, info: Any) -> Any:
    """A command-line value as its field's type reads it: a text field (a string or a path) takes the text
    verbatim (`#`, ` | `, `no`, `on`, `1e-5`, the empty string), `null` only where the field is optional; any
    other field (numbers, booleans, lists, mappings, choices) parses as a YAML scalar."""
    kinds = _annotation_kinds(info.annotation) if info is not None else set()
    if kinds and kinds <= {str, Path, type(None)} and {str, Path} & kinds:
        return None if value == "null" and type(None) in kinds else value
    return _parse_scalar(value)


def _annotation_kinds(annotation: Any) -> set[Any]:
    """The plain types a field annotation admits: `str | None` -> {str, NoneType}; Literal and generics as
    themselves (so they are not text)."""
    if annotation in (str, Path, type(None)):
        return {annotation}
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and args:
        return set().union(*(_annotation_kinds(a) for a in args))
    return {annotation}


def _check_task_field(key: str) -> None:
    """--tasks.NAME.section.field: the task is found by name when merging; the field is checked here."""
    parts = key.split(".")
    field = ".".join(parts[2:])
    known = field_paths(TaskConfig)
    if len(parts) < 3 or field not in known or field == "name":
        close = difflib.get_close_matches(field, known, n=1)
        hint = f"; did you mean --tasks.{parts[1] if len(parts) > 1 else 'NAME'}.{close[0]}?" if close else ""
        raise MinbertError(f"unknown config field --{key}; task fields look like --tasks.NAME.head.loss{hint}")


def _merge_tasks(tasks: Any, overrides: dict[str, Any]) -> list[Any]:
    """Apply {name: {...}} overrides to the config's list of tasks, matched by name."""
    tasks = list(tasks or [])
    names = [t.get("name") if isinstance(t, dict) else None for t in tasks]
    for name, override in overrides.items():
        if name not in names:
            raise MinbertError(
                f"--tasks.{name}.*: no task named {name!r} in the config (tasks: {', '.join(map(str, names)) or 'none'})"
            )
        index = names.index(name)
        tasks[index] = merge(tasks[index], override)
    return tasks


def _parse_scalar(value: str) -> Any:
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return value if isinstance(parsed, dict) else parsed  # lists ([0.8, 0.1, 0.1]) are values too


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if key == "tasks" and isinstance(value, dict):
            merged[key] = _merge_tasks(merged.get(key), value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_config(raw: dict[str, Any], source: str = "config", overridden: Sequence[str] = ()) -> RunConfig:
    """Validate a nested dict; errors name the dotted field and what was wrong, and where the value came
    from: `source` (the file), or the command line for the dotted fields in `overridden`."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            name = _field_name(err["loc"], raw)
            message = err["msg"].removeprefix("Value error, ")
            message = (
                message[:1].lower() + message[1:] + (" (unknown field)" if err["type"] == "extra_forbidden" else "")
            )
            if any(name == key or name.startswith(key + ".") for key in overridden):
                problems.append(f"--{name}: {message} (given on the command line)")
            else:
                problems.append(f"{source}: {name}: {message}")
        raise MinbertError("; ".join(problems)) from e


def _dotted(nested: dict[str, Any], prefix: str = "") -> list[str]:
    """{'train': {'lr': 1}} -> ['train.lr']; task overrides as tasks.NAME.field."""
    keys = []
    for key, value in nested.items():
        if isinstance(value, dict) and value:
            keys += _dotted(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _field_name(loc: tuple, raw: dict[str, Any]) -> str:
    """('tasks', 1, 'head', 'kind') -> 'tasks.sts.head.kind': tasks by name, as --tasks.NAME.field overrides spell them."""
    parts = [str(p) for p in loc]
    tasks = raw.get("tasks")
    if (
        len(loc) > 1
        and loc[0] == "tasks"
        and isinstance(loc[1], int)
        and isinstance(tasks, list)
        and loc[1] < len(tasks)
    ):
        task = tasks[loc[1]]
        if isinstance(task, dict) and isinstance(task.get("name"), str):
            parts[1] = task["name"]
    return ".".join(parts) or "the config"


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    raw = read_config_file(path) if path is not None else {}
    parsed = parse_overrides(overrides)
    _warn_half_overridden(raw, parsed, path)
    return build_config(merge(raw, parsed), source=str(path or "command line"), overridden=_dotted(parsed))


def _warn_half_overridden(raw: dict[str, Any], parsed: dict[str, Any], path: str | Path | None) -> None:
    """A new training file with the config's dev and test files kept is rarely meant: say which files stay."""
    given, written = parsed.get("data") or {}, raw.get("data") if isinstance(raw.get("data"), dict) else {}
    if "train" not in given or not written:
        return
    kept = [f"data.{split} {written[split]}" for split in ("dev", "test") if written.get(split) and split not in given]
    if kept:
        logging.getLogger("minbert").warning(
            "--data.train is yours, and %s still come from %s; give --data.dev / --data.test for your data too "
            "(or null to run without them)",
            " and ".join(kept),
            path,
        )


def describe_fields() -> str:
    """The field table printed by `minbert train --help`."""
    defaults = json.loads(RunConfig().model_dump_json())
    lines = []
    for dotted, info in field_paths().items():
        value: Any = defaults
        for part in dotted.split("."):
            value = value[part]
        lines.append(f"  --{dotted:<24} {info.description or ''} [default: {value}]")
    lines.append("  multitask task fields (each entry of tasks:, override with --tasks.NAME.FIELD):")
    task_defaults = json.loads(TaskConfig(name="x").model_dump_json())
    for dotted, info in field_paths(TaskConfig).items():
        value = task_defaults
        for part in dotted.split("."):
            value = value[part]
        lines.append(
            f"    {dotted:<24} {info.description or ''}" + ("" if dotted == "name" else f" [default: {value}]")
        )
    return "\n".join(lines)
