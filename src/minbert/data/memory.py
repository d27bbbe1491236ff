"""In-memory data -> `Example`s, for the Python API: what `minbert.fit` accepts as train, dev and test.

    (texts, labels)               two sequences of equal length; a text may be a (first, second) pair
    [{"text": ..., "label": ...}] rows as mappings; columns chosen by text_column / label_column /
                                  text_pair_column, as for a jsonl or csv file
    pandas.DataFrame              its rows, with the same column mapping
    datasets.Dataset              its rows; a ClassLabel column gives its names, not its integers
    [Example, ...]                as they are

Rows are checked as a file's rows are, and an error names the split and the row's position
(`train row 3: empty text`). Nothing here imports pandas or datasets: they are recognised by shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from minbert.data.readers import Example, Label
from minbert.errors import MinbertError

ACCEPTED = "(texts, labels), a list of dicts, a pandas DataFrame or a datasets.Dataset"


def examples_from(
    data: Any,
    split: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    text_pair_column: str | None = None,
    label_separator: str | None = None,
    allow_empty_labels: bool = False,
    require_labels: bool = True,
) -> list[Example]:
    """The examples of one split given in memory, checked row by row."""
    text_key, label_key, pair_key = text_column or "text", label_column or "label", text_pair_column or "text_pair"
    rows = _rows(data, split, text_key, label_key if require_labels else None, pair_key)
    examples = []
    for i, (text, label, pair) in enumerate(rows):
        where = f"{split} row {i}"
        if isinstance(text, (tuple, list)) and pair is None:
            if len(text) != 2:
                raise MinbertError(f"{where}: a pair is two texts (first, second), got {len(text)} items")
            text, pair = text
        examples.append(
            Example(
                _text(text, where, "text"),
                _label(label, where, label_separator, allow_empty_labels, require_labels),
                split,
                i,
                _text(pair, where, "second text") if pair is not None else None,
            )
        )
    return examples


def texts_from(data: Any, split: str, text_column: str | None = None) -> list[Example]:
    """Unlabelled texts (out-of-scope texts, texts for a teacher to label): a list of strings or any form above."""
    if isinstance(data, Sequence) and not isinstance(data, (str, tuple)) and all(isinstance(t, str) for t in data):
        data = [{"text": t} for t in data]
    return examples_from(data, split, text_column=text_column, require_labels=False)


def _rows(data: Any, split: str, text_key: str, label_key: str | None, pair_key: str) -> list[tuple[Any, Any, Any]]:
    """(text, label, second text) per row; `label_key` None: labels are not read."""
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], str):
        texts, labels = data
        if len(texts) != len(labels):
            raise MinbertError(f"{split}: {len(texts)} texts but {len(labels)} labels; give one label per text")
        return [(t, y, None) for t, y in zip(texts, labels, strict=True)]
    if hasattr(data, "column_names") and hasattr(data, "features"):  # a datasets.Dataset
        names = _class_names(data.features.get(label_key)) if label_key else None
        return [
            (row.get(text_key), _named(row.get(label_key or ""), names), row.get(pair_key))
            for row in _mappings(iter(data), split, text_key, label_key, data.column_names)
        ]
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        columns = [str(c) for c in data.columns]
        records = data.to_dict("records")
        return [
            (r.get(text_key), r.get(label_key or ""), r.get(pair_key))
            for r in _mappings(records, split, text_key, label_key, columns)
        ]
    if isinstance(data, Sequence) and not isinstance(data, str):
        if all(isinstance(e, Example) for e in data):
            return [((e.text, e.text_pair) if e.text_pair else e.text, e.label, None) for e in data]
        if all(isinstance(r, Mapping) for r in data):
            rows = list(data)
            columns = list(rows[0]) if rows else []
            return [
                (r.get(text_key), r.get(label_key or ""), r.get(pair_key))
                for r in _mappings(rows, split, text_key, label_key, columns)
            ]
    raise MinbertError(f"{split}: cannot read a {type(data).__name__}; give {ACCEPTED}")


def _mappings(
    rows: Any, split: str, text_key: str, label_key: str | None, columns: list[str]
) -> list[Mapping[str, Any]]:
    """The rows, after checking that the text and label columns exist (the first row's keys, for dicts)."""
    rows = list(rows)
    for key, option in ((text_key, "text_column"), (label_key, "label_column")):
        if rows and key is not None and key not in columns:
            raise MinbertError(f"{split}: no column {key!r} (columns: {', '.join(columns)}); set {option}=...")
    return rows


def _class_names(feature: Any) -> list[str] | None:
    names = getattr(feature, "names", None)
    return list(names) if isinstance(names, list) else None


def _named(label: Any, names: list[str] | None) -> Any:
    if names is not None and isinstance(label, int) and 0 <= label < len(names):
        return names[label]
    return label


def _text(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str):
        raise MinbertError(f"{where}: the {what} is {type(value).__name__} {value!r}, not a string")
    if not value.strip():
        raise MinbertError(f"{where}: empty {what}; remove the row or fill it in")
    return value.strip()


def _label(value: Any, where: str, separator: str | None, allow_empty: bool, required: bool) -> Label:
    """A label as readers keep it: a class name or number as text, or a tuple of names (multi-label)."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if missing or (isinstance(value, str) and not value.strip()):
        if required:
            raise MinbertError(f"{where}: missing label; every training and evaluation row needs one")
        return None
    if isinstance(value, (list, tuple)) or (separator and isinstance(value, str)):
        names = tuple(value.split(separator)) if isinstance(value, str) and separator else tuple(map(str, value))
        unique = tuple(dict.fromkeys(n.strip() for n in names if str(n).strip()))
        if not unique and not allow_empty:
            raise MinbertError(f"{where}: an empty label set; fill it in, or set allow_empty_labels=True")
        return unique
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value).strip()
    if hasattr(value, "item"):  # a numpy scalar
        return _label(value.item(), where, separator, allow_empty, required)
    raise MinbertError(f"{where}: the label is {type(value).__name__} {value!r}; give a string, a number or a list")
