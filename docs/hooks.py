"""MkDocs hook: the reference pages are generated from the code at build time (the typed config's fields with
their types, defaults and descriptions; the data formats the readers know), so they cannot drift from it."""

from __future__ import annotations

import json
from typing import Any

from mkdocs.structure.files import File, Files


def config_reference() -> str:
    from minbert.config import RunConfig, TaskConfig, field_paths

    lines = [
        "# Config fields",
        "",
        "Every field of the run config, as `minbert train CONFIG --section.field value` and `minbert.fit(..., field=value)`",
        "take it (generated from `minbert/config/schema.py`).",
        "",
    ]
    for title, model, defaults in (
        ("Run", RunConfig, json.loads(RunConfig().model_dump_json())),
        ("Each task of a multitask run (`tasks:`)", TaskConfig, json.loads(TaskConfig(name="x").model_dump_json())),
    ):
        lines += [f"## {title}", "", "| field | type | default | what it does |", "|---|---|---|---|"]
        for dotted, info in field_paths(model).items():
            value: Any = defaults
            for part in dotted.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            kind = str(info.annotation).replace("typing.", "").replace("|", "\\|")
            description = (info.description or "").replace("|", "\\|")
            shown = "(required)" if dotted == "name" else f"`{json.dumps(value)}`"
            lines.append(f"| `{dotted}` | `{kind}` | {shown} | {description} |")
        lines.append("")
    return "\n".join(lines)


def formats_reference() -> str:
    from minbert.data.readers import FORMAT_REGISTRY

    lines = ["# Data formats", "", "Generated from `minbert/data/readers.py`; `minbert formats` prints the same.", ""]
    lines += ["| format | default columns | what it reads |", "|---|---|---|"]
    for name, entry in FORMAT_REGISTRY.items():
        columns = entry.columns
        shown = ", ".join(c for c in (columns.text, columns.label, columns.pair) if c) if columns else "(fixed layout)"
        lines.append(f"| `{name}` | {shown} | {entry.help.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: Any) -> Files:
    for path, content in (("reference/config.md", config_reference()), ("reference/formats.md", formats_reference())):
        files.append(File.generated(config, path, content=content))
    return files
