"""Property-based fuzzing of the readers and the config parser (Hypothesis).

Two properties. Any bytes in a data file, any YAML text in a config, any command-line overrides:
minbert either reads them or raises MinbertError (the one-line error the CLI prints), never
another exception. And rows written correctly in a format are read back exactly: same count,
same texts, same labels, in order (no row silently dropped, merged or split).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minbert.config import load_config, parse_overrides
from minbert.data.readers import FORMATS, read_examples
from minbert.errors import MinbertError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text a user's data can hold: printable characters incl. non-ASCII, quotes, tabs inside csv cells, but no
# line breaks (a row is a line) and no lone surrogates (not encodable as UTF-8 at all).
cell = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\ufeff"), min_size=1, max_size=30
).filter(lambda text: text.strip() == text and text.strip())
label = st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=8)
rows = st.lists(st.tuples(cell, label), min_size=1, max_size=12)


def written(data: bytes, suffix: str = ".txt") -> Path:
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=suffix)
    handle.write(data)
    handle.close()
    return Path(handle.name)


@FUZZ
@given(data=st.binary(max_size=400), format=st.sampled_from([f for f in FORMATS if f != "text"]))
def test_any_bytes_in_any_format_read_or_fail_with_a_minbert_error(data, format):
    path = written(data)
    try:
        examples = read_examples(path, format)
    except MinbertError as e:
        assert str(path) in str(e) or "format" in str(e)  # the message names the file
        return
    finally:
        path.unlink()
    assert all(e.text.strip() for e in examples)


@FUZZ
@given(lines=st.lists(st.text(max_size=40), max_size=8), format=st.sampled_from(["jsonl", "csv", "tsv", "pipe", "uci"]))
def test_any_text_lines_read_or_fail_with_a_minbert_error(lines, format):
    path = written("\n".join(lines).encode("utf-8", "surrogatepass"))
    try:
        read_examples(path, format)
    except MinbertError:
        pass
    finally:
        path.unlink()


def serialise(format: str, data: list[tuple[str, str]]) -> str:
    if format == "jsonl":
        return "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in data)
    if format == "pipe":
        return "".join(f"{y} ||| {t}\n" for t, y in data)
    if format == "uci":
        return "".join(f"{t}\t{y}\n" for t, y in data)
    out = io.StringIO()
    writer = csv.writer(out, delimiter="," if format == "csv" else "\t", lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows(data)
    return out.getvalue()


@FUZZ
@given(data=rows, format=st.sampled_from(["jsonl", "csv", "tsv", "pipe"]))
def test_rows_written_correctly_are_read_back_exactly(data, format):
    if format == "pipe":  # its separator cannot appear inside a text or label
        data = [(t, y) for t, y in data if "|||" not in t and "|" not in y]
    if format in ("csv", "tsv"):  # a text that is the header repeated is refused (tested in test_inputs)
        data = [(t, y) for t, y in data if (t, y) != ("text", "label")]
    if not data:
        return
    path = written(serialise(format, data).encode())
    try:
        examples = read_examples(path, format)
    finally:
        path.unlink()
    assert [(e.text, e.label) for e in examples] == data


@FUZZ
@given(text=st.text(max_size=300))
def test_any_yaml_text_is_a_config_or_a_minbert_error(text):
    path = written(text.encode("utf-8", "surrogatepass"), suffix=".yaml")
    try:
        load_config(path)
    except MinbertError:
        pass
    finally:
        path.unlink()


field = st.sampled_from(
    ["--train.lr", "--train.epochs", "--model.pooling", "--data.format", "--train.bf16", "--model.max_length", "--task"]
)
token = st.one_of(
    field, st.text(max_size=12), st.sampled_from(["--", "-x", "--train.", "--nope.lr", "true", "1e-3", "[1,"])
)


@FUZZ
@given(arguments=st.lists(token, max_size=6))
def test_any_overrides_parse_or_fail_with_a_minbert_error(arguments):
    try:
        parse_overrides(arguments)
        load_config(None, ["--data.train", "t.jsonl", *arguments])
    except MinbertError:
        pass


@pytest.mark.parametrize("format", ["csv", "tsv"])
def test_a_quoted_line_break_inside_a_cell_is_one_row(tmp_path, format):
    """The one case where a row spans lines: the reader must not split it (nor miscount the lines after)."""
    delimiter = "," if format == "csv" else "\t"
    path = tmp_path / f"data.{format}"
    path.write_text(f'text{delimiter}label\n"two\nlines"{delimiter}a\nnext{delimiter}b\n')
    try:
        examples = read_examples(path, format)
    except MinbertError as e:  # refusing multi-line cells with file:line is also acceptable
        assert f"{path}:2" in str(e)
        return
    assert [(e.text, e.label) for e in examples] == [("two\nlines", "a"), ("next", "b")]
