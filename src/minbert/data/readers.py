"""Every supported file format -> a list of `Example`s, with errors that name file and line.

Generic formats take a column mapping (`jsonl`, `csv`, `tsv`); named formats know their
benchmark's layout:

    massive  MASSIVE jsonl: release files (`utt`, `intent`, `partition`) or the SetFit export (`text`, `label_text`)
    pipe     `label ||| text` lines (SST-5, CFIMDB from the minBERT assignment)
    cs224n   the CS224N project's tab-separated csv (`sentence`, `sentiment`)
    glue     GLUE tsv with a header (`sentence`, `label`)
    uci      UCI Sentiment Labelled Sentences: `text<TAB>label`, no header (a directory reads all three files)
    goemotions  GoEmotions tsv: `text<TAB>label ids<TAB>id`, ids into labels.txt beside the file (multi-label)
    text     plain text, one text per line and no labels (what `minbert embed --data` is usually given)

A row may carry several labels (multi-label data): a JSON list in jsonl, a label field split on
`label_separator` (`a#b`), or a goemotions row. Such a label is a tuple of names; a row whose set is
empty is an error unless empty sets are allowed.

Nothing is dropped silently: a bad row stops the read with its file and line, unless the
user asked to skip bad rows, in which case every skipped row is counted and logged.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from minbert.errors import MinbertError

log = logging.getLogger(__name__)

csv.field_size_limit(10_000_000)


@dataclass(frozen=True)
class Example:
    """One input: a text (or a pair of texts), its label if known, and where it came from.

    The label is kept as written (a class name, or a number such as an STS similarity); the task
    decides whether it is a class or a regression target. A multi-label row's label is a tuple of names.
    """

    text: str
    label: str | tuple[str, ...] | None
    source: str
    line: int
    text_pair: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


class RowError(Exception):
    """A problem with one row; the reader adds file and line."""


@dataclass(frozen=True)
class Columns:
    text: str
    label: str
    pair: str | None = None
    label_required: bool = False  # a header without the label column is an error at line 1, not at every row


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """When the whole header reads as one column, the delimiter it seems to use."""
    if len(header) != 1:
        return ""
    for sign, name in ((";", "semicolon"), ("\t", "tab"), (",", "comma"), ("|", "pipe")):
        if sign != delimiter and sign in header[0]:
            expected = "tab" if delimiter == "\t" else "comma"
            return (
                f" (the header reads as one column: the file looks {name}-separated, and this format splits on "
                f"{expected}s; re-save it {'comma' if expected == 'comma' else 'tab'}-separated"
                + (", or use --data.format tsv)" if sign == "\t" else ")")
            )
    return ""


RowReader = Callable[[Path, "Columns", str | None], Iterator["RawRow"]]


@dataclass(frozen=True)
class Format:
    """One data format: its name, the fields it reads by default (None: a fixed layout), the line
    `minbert formats` and the docs show, and its row reader. A new format is one more entry in FORMAT_REGISTRY."""

    name: str
    columns: Columns | None
    help: str
    read: RowReader


Label = str | tuple[str, ...] | None
RawRow = tuple[int, str | None, Label, str | None]  # (line, text, label(s), second text of a pair)


def read_examples(
    path: str | Path,
    format: str = "jsonl",
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    text_pair_column: str | None = None,
    split: str | None = None,
    require_labels: bool = True,
    skip_bad_rows: bool = False,
    label_separator: str | None = None,
    allow_empty_labels: bool = False,
) -> list[Example]:
    """Read a file into examples; `split` selects a MASSIVE partition when the file has several.
    `label_separator` splits each label field into a label set (multi-label); a row whose set is empty is an
    error unless `allow_empty_labels`."""
    path = Path(path)
    if format not in FORMAT_REGISTRY:
        raise MinbertError(f"unknown data format {format!r}; choose one of {', '.join(FORMATS)}")
    if path.is_dir():
        files = sorted(path.glob(DIRECTORY_FILES.get(format, "")) if format in DIRECTORY_FILES else [])
        if not files:
            accepted = ", ".join(f"{f} ({pattern})" for f, pattern in DIRECTORY_FILES.items())
            raise MinbertError(
                f"{path}: a directory; give a file, or a directory of a format that reads one: {accepted}"
            )
        kwargs = {
            "text_column": text_column,
            "label_column": label_column,
            "text_pair_column": text_pair_column,
            "split": split,
            "require_labels": require_labels,
            "skip_bad_rows": skip_bad_rows,
            "label_separator": label_separator,
            "allow_empty_labels": allow_empty_labels,
        }
        return [example for file in files for example in read_examples(file, format, **kwargs)]  # type: ignore[arg-type]
    if not path.is_file():
        raise MinbertError(
            f"{path}: data file not found{'' if path.parent.is_dir() else ' (nor its folder)'}; check data.* paths"
        )
    if format == "text" and require_labels:
        raise MinbertError(
            f"{path}: format 'text' has no labels, and training and evaluation need them; "
            "choose a labelled format (see `minbert formats`)"
        )
    defaults = FORMAT_REGISTRY[format].columns
    columns = Columns(
        text_column or (defaults.text if defaults else ""),
        label_column or (defaults.label if defaults else ""),
        text_pair_column or (defaults.pair if defaults else None),
        label_required=require_labels,
    )
    rows = FORMAT_REGISTRY[format].read(path, columns, split)
    examples: list[Example] = []
    skipped: list[str] = []
    try:
        for line, text, label, pair in _readable(path, rows):
            try:
                label = _label_set(label, label_separator, allow_empty_labels or not require_labels)
                examples.append(_check_row(path, line, text, label, pair, require_labels, columns.label))
            except RowError as e:
                if not skip_bad_rows:
                    raise MinbertError(f"{path}:{line}: {e}") from None
                skipped.append(f"{line}: {e}")
    except RowError as e:  # raised by the row reader itself (bad JSON, missing separator, ...)
        raise MinbertError(f"{path}:{e}") from None
    if skipped:
        log.warning("%s: skipped %d bad rows (data.skip_bad_rows); first: line %s", path, len(skipped), skipped[0])
    if not examples:
        if path.is_file() and not path.read_bytes().strip():
            raise MinbertError(f"{path}: the file is empty; give a file with data rows")
        raise MinbertError(
            f"{path}: no examples read{f' for partition {split!r}' if split else ''}; is the format right?"
        )
    return examples


def _label_set(label: Label, separator: str | None, allow_empty: bool) -> Label:
    """A label field as a label set when it is one (a list, or a field with the separator in use): names stripped,
    duplicates dropped in order. An empty set stays () when allowed; else it is a missing label."""
    if separator and isinstance(label, str):
        label = tuple(label.split(separator)) if label.strip() else ()
    if not isinstance(label, tuple):
        return label
    names = [name.strip() for name in label]
    if any(not name for name in names) and any(names):
        raise RowError(f"an empty label name in {separator.join(label) if separator else list(label)!r}; remove it")
    unique = tuple(dict.fromkeys(name for name in names if name))
    if not unique and not allow_empty:
        raise RowError(
            "no label (an empty label set); fill it in, or set data.allow_empty_labels to train on rows without labels"
        )
    return unique


def _check_row(
    path: Path,
    line: int,
    text: str | None,
    label: Label,
    pair: str | None,
    require_labels: bool,
    label_column: str,
) -> Example:
    if text is None or not text.strip():
        raise RowError("empty text; remove the row or fill it in")
    if pair is not None and not pair.strip():
        raise RowError("empty second text of the pair; remove the row or fill it in")
    if isinstance(label, tuple):
        return Example(
            text=text.strip(), label=label, source=str(path), line=line, text_pair=pair.strip() if pair else None
        )
    if label is not None:
        label = label.strip()
    if require_labels and not label:
        where = f" (label field/column {label_column!r})" if label_column else ""
        raise RowError(
            f"missing label{where}; training and evaluation rows need one: fill it in or set data.label_column"
        )
    return Example(
        text=text.strip(), label=label or None, source=str(path), line=line, text_pair=pair.strip() if pair else None
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; a file that is not UTF-8 is an error."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
    except UnicodeDecodeError as e:
        raise MinbertError(
            f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save the file as UTF-8"
        ) from None


def _json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    for number, line in _lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            by_suffix = {".csv": "csv", ".tsv": "tsv", ".txt": "text"}.get(path.suffix.lower())
            hint = (
                f"this is a {path.suffix} file: read it with --data.format {by_suffix}"
                if by_suffix
                else "for one plain sentence per line, use format text"
            )
            raise RowError(f"{number}: not valid JSON ({e.msg}); each line must be one JSON object ({hint})") from None
        if not isinstance(row, dict):
            raise RowError(f"{number}: a JSON {type(row).__name__}, not an object")
        yield number, row


def _field(row: dict, name: str, number: int, role: str) -> str | None:
    if name not in row:
        raise RowError(
            f"{number}: no {role} field {name!r} (fields: {', '.join(map(str, row))}); set data.{role}_column"
        )
    value = row[name]
    return None if value is None else str(value)


def _read_jsonl(path: Path, columns: Columns, split: str | None) -> Iterator[RawRow]:
    for number, row in _json_rows(path):
        value = row.get(columns.label)
        label: Label = (
            tuple(str(x) for x in value)
            if isinstance(value, list)
            else _field(row, columns.label, number, "label")
            if columns.label in row
            else None
        )
        pair = _field(row, columns.pair, number, "text_pair") if columns.pair else None
        yield number, _field(row, columns.text, number, "text"), label, pair


def _read_massive(path: Path, columns: Columns, split: str | None) -> Iterator[RawRow]:
    partitions = {"dev": "dev", "validation": "dev", "train": "train", "test": "test"}
    for number, row in _json_rows(path):
        text_key = columns.text or ("utt" if "utt" in row else "text")
        label_key = columns.label or ("intent" if "intent" in row else "label_text")
        if split and "partition" in row and row["partition"] != partitions.get(split, split):
            continue
        label = _field(row, label_key, number, "label") if label_key in row else None
        yield number, _field(row, text_key, number, "text"), label, None


CLINC150_SPLITS = {
    "train": "train",
    "dev": "val",
    "validation": "val",
    "test": "test",
    "oos_train": "oos_train",
    "oos_dev": "oos_val",
    "oos_test": "oos_test",
}


def _read_clinc150(path: Path, columns: Columns, split: str | None) -> Iterator[RawRow]:
    """The release's one JSON object of splits, each a list of [text, intent]; rows are numbered within the split."""
    key = CLINC150_SPLITS.get(split or "train", split or "train")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise MinbertError(
            f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save the file as UTF-8"
        ) from None
    except json.JSONDecodeError as e:
        raise RowError(
            f"{e.lineno}: not valid JSON ({e.msg}); format clinc150 reads the release's data_full.json"
        ) from None
    if not isinstance(data, dict) or key not in data:
        found = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise RowError(f"1: no split {key!r} in this file (it has {found}); format clinc150 reads data_full.json")
    for number, row in enumerate(data[key], 1):
        if not (isinstance(row, list) and len(row) == 2 and all(isinstance(x, str) for x in row)):
            raise RowError(f"{number}: row {number} of split {key!r} is not a [text, intent] pair")
        yield number, row[0], row[1], None


def _readable(path: Path, rows: Iterator[RawRow]) -> Iterator[RawRow]:
    """The reader's rows, with the file system's refusals as one-line errors."""
    try:
        yield from rows
    except PermissionError:
        raise MinbertError(
            f"{path}: permission denied: this user may not read the file; fix its permissions (chmod a+r)"
        ) from None
    except IsADirectoryError:
        raise MinbertError(f"{path}: is a directory; give a data file (format uci also takes the directory)") from None
    except OSError as e:
        raise MinbertError(f"{path}: cannot be read ({e.strerror})") from None


def _delimited(
    delimiter: str, quoting: Literal[0, 1, 2, 3] = csv.QUOTE_MINIMAL
) -> Callable[[Path, Columns, str | None], Iterator[RawRow]]:
    def read(path: Path, columns: Columns, split: str | None) -> Iterator[RawRow]:
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
                header = next(reader, None)
                if header is None:
                    return
                header = [h.strip() for h in header]
                repeated = sorted({h for h in header if h and header.count(h) > 1})
                if repeated:
                    raise RowError(f"1: the header names column {repeated[0]!r} twice; give every column its own name")
                if columns.text not in header:
                    raise RowError(
                        f"1: no text column {columns.text!r} in the header ({', '.join(header)}); set data.text_column"
                        + _delimiter_hint(header, delimiter)
                    )
                if columns.label_required and columns.label not in header:
                    raise RowError(
                        f"1: no label column {columns.label!r} in the header ({', '.join(header)}); set "
                        "data.label_column" + _delimiter_hint(header, delimiter)
                    )
                if columns.pair and columns.pair not in header:
                    raise RowError(
                        f"1: no second-text column {columns.pair!r} in the header ({', '.join(header)}); set data.text_pair_column"
                    )
                text_at = header.index(columns.text)
                label_at = header.index(columns.label) if columns.label in header else None
                pair_at = header.index(columns.pair) if columns.pair else None
                for row in reader:
                    number = reader.line_num
                    if not any(cell.strip() for cell in row):
                        continue
                    if [cell.strip() for cell in row] == header:
                        raise RowError(
                            f"{number}: the header line repeats here (files concatenated with their headers?); "
                            "delete this line, or the rows after it would be read with the header as a label"
                        )
                    if len(row) != len(header):
                        raise RowError(
                            f"{number}: {len(row)} fields but the header has {len(header)}; "
                            "check the delimiter and quoting of this row"
                        )
                    yield (
                        number,
                        row[text_at],
                        row[label_at] if label_at is not None else None,
                        row[pair_at] if pair_at is not None else None,
                    )
        except UnicodeDecodeError as e:
            raise MinbertError(
                f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save the file as UTF-8"
            ) from None
        except csv.Error as e:
            raise RowError(f"{reader.line_num}: {e}") from None

    return read


def _read_pipe(path: Path, columns: Columns, split: str | None) -> Iterator[RawRow]:
    for number, line in _lines(path):
        label, separator, text = line.partition(" ||| ")
        if not separator:
            raise RowError(f"{number}: no ' ||| ' separator; pipe lines look like 'label ||| text'")
        yield number, text, label, None


def _read_uci(path: Path, columns: Columns, split: str | None) -> Iterator[RawRow]:
    for number, line in _lines(path):
        text, separator, label = line.rpartition("\t")
        if not separator:
            raise RowError(f"{number}: no tab; UCI lines look like 'text<TAB>label'")
        yield number, text, label, None


def _read_stsb(path: Path, columns: Columns, split: str | None) -> Iterator[RawRow]:
    """genre, file, year, id, score, sentence1, sentence2 [, source1, source2]; quotes are literal."""
    for number, line in _lines(path):
        fields = line.split("\t")
        if len(fields) < 7:
            raise RowError(f"{number}: {len(fields)} tab-separated fields, STS-B rows have 7 (or 9)")
        yield number, fields[5], fields[4], fields[6]


def _read_goemotions(path: Path, columns: Columns, split: str | None) -> Iterator[RawRow]:
    """`text<TAB>ids<TAB>comment id`; the ids index labels.txt, which lies beside the file (as in the release)."""
    names_file = path.parent / "labels.txt"
    if not names_file.is_file():
        raise MinbertError(
            f"{names_file}: not found; format goemotions reads the label names from labels.txt beside {path.name}"
        )
    names = [line for _, line in _lines(names_file)]
    for number, line in _lines(path):
        fields = line.split("\t")
        if len(fields) != 3:
            raise RowError(f"{number}: {len(fields)} tab-separated fields; goemotions rows are text, label ids, id")
        text, ids = fields[0], fields[1]
        try:
            labels = tuple(names[int(i)] for i in ids.split(",")) if ids.strip() else ()
        except (ValueError, IndexError):
            raise RowError(
                f"{number}: label ids {ids!r} are not comma-separated indices into the {len(names)} names of {names_file}"
            ) from None
        yield number, text, labels, None


def _read_text(path: Path, columns: Columns, split: str | None) -> Iterator[RawRow]:
    for number, line in _lines(path):
        yield number, line, None, None


# Every format the readers know, in the order `minbert formats` lists them.
FORMAT_REGISTRY: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "jsonl",
            Columns("text", "label"),
            "one JSON object per line; fields chosen by text_column / label_column (default text, label)",
            _read_jsonl,
        ),
        Format(
            "csv",
            Columns("text", "label"),
            "comma-separated with a header row; columns chosen by text_column / label_column",
            _delimited(","),
        ),
        Format(
            "tsv",
            Columns("text", "label"),
            "tab-separated with a header row; columns chosen by text_column / label_column",
            _delimited("\t"),
        ),
        Format(
            "massive",
            None,
            "MASSIVE jsonl: utt/intent (release, filtered by partition) or text/label_text (SetFit export)",
            _read_massive,
        ),
        Format("pipe", None, "'label ||| text' per line (SST-5, CFIMDB)", _read_pipe),
        Format(
            "cs224n",
            Columns("sentence", "sentiment"),
            "CS224N project csv: tab-separated, header, columns sentence and sentiment",
            _delimited("\t"),
        ),
        Format(
            "glue",
            Columns("sentence", "label"),
            "GLUE tsv: header, columns sentence and label",
            _delimited("\t", csv.QUOTE_NONE),
        ),
        Format("uci", None, "UCI Sentiment Labelled Sentences: 'text<TAB>label', no header", _read_uci),
        Format(
            "quora",
            Columns("sentence1", "is_duplicate", "sentence2"),
            "CS224N Quora csv (pairs): tab-separated, header, sentence1, sentence2, is_duplicate",
            _delimited("\t"),
        ),
        Format(
            "sts",
            Columns("sentence1", "similarity", "sentence2"),
            "CS224N STS csv (pairs): tab-separated, header, sentence1, sentence2, similarity (0-5)",
            _delimited("\t"),
        ),
        Format(
            "stsb",
            None,
            "official STS Benchmark csv (pairs): genre, file, year, id, score, sentence1, sentence2, no header",
            _read_stsb,
        ),
        Format(
            "clinc150",
            None,
            "CLINC150 data_full.json: one JSON object of splits (train, val, test, oos_train, oos_val, oos_test); the split follows the file's role (data.dev reads val, data.oos_dev oos_val, eval --oos-data oos_test)",
            _read_clinc150,
        ),
        Format(
            "goemotions",
            None,
            "GoEmotions tsv (multi-label): 'text<TAB>label ids<TAB>comment id', no header; the comma-separated ids index labels.txt in the same folder",
            _read_goemotions,
        ),
        Format("text", None, "plain text: one text per line, no header, no labels (for embed)", _read_text),
    )
}
FORMATS = tuple(FORMAT_REGISTRY)


# Formats whose datasets come as several files: a directory reads every matching file, in name order.
DIRECTORY_FILES = {"uci": "*_labelled.txt"}


def subsample(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """A seeded random subset of n examples, kept in file order."""
    if n is None or n >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


@dataclass
class InputLine:
    """One line given to `minbert predict`: its text, or why it has none (the line still gets an answer)."""

    number: int
    text: str | None
    error: str | None = None


def input_lines(raw: Iterable[bytes], encoding: str = "utf-8") -> list[InputLine]:
    """Decode lines (stdin, or arguments as the bytes they were) with a stated encoding. Line endings
    (LF or CRLF) are dropped; a line that does not decode, or is blank, keeps its place with an error."""
    lines = []
    for number, line in enumerate(raw, 1):
        line = line.removesuffix(b"\n").removesuffix(b"\r")
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError as e:
            error = f"line {number}: not valid {encoding} ({e.reason} at byte {e.start}); re-encode the input or pass --encoding"
            lines.append(InputLine(number, None, error))
            continue
        if not text.strip():
            lines.append(InputLine(number, None, f"line {number}: empty; there is nothing to label"))
        else:
            lines.append(InputLine(number, text))
    return lines
