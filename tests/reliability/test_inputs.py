"""Bad input gets a one-line error or an error line of its own, never a traceback and never a
silently dropped or misaligned row."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from minbert import MinbertError, load_config
from minbert.cli import main
from minbert.data.readers import read_examples
from tests.helpers import classifier


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return classifier(["alarm_set", "play_music"], hidden_size=0, max_length=16).save(
        tmp_path_factory.mktemp("m") / "model"
    )


def stdin_bytes(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_predict_answers_every_input_line_in_order(saved, monkeypatch, capsys):
    stdin_bytes(monkeypatch, b"wake me up\r\n\r\ncaf\xe9 au lait\nplay jazz\n")
    assert main(["-q", "predict", str(saved)]) == 1  # some lines could not be labelled
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == 4
    assert out[0]["text"] == "wake me up" and "label" in out[0]  # CRLF: no '\r' echoed
    assert out[1] == {"line": 2, "error": "line 2: empty; there is nothing to label"}
    assert out[2]["line"] == 3 and "not valid utf-8" in out[2]["error"] and "--encoding" in out[2]["error"]
    assert out[3]["text"] == "play jazz"


def test_predict_decodes_with_the_stated_encoding_and_checks_arguments(saved, monkeypatch, capsys):
    stdin_bytes(monkeypatch, b"caf\xe9 au lait\n")
    assert main(["-q", "predict", str(saved), "--encoding", "latin-1"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "café au lait"
    argument = os.fsdecode(b"caf\xe9")  # a non-UTF-8 argument, as Python receives it
    assert main(["-q", "predict", str(saved), argument, "play jazz"]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert "not valid utf-8" in first["error"] and second["text"] == "play jazz"
    assert main(["-q", "predict", str(saved), "--encoding", "klingon", "hi"]) == 2
    assert "--encoding 'klingon' is not a known text encoding" in capsys.readouterr().err


def test_a_lone_surrogate_is_refused_by_name(saved):
    import minbert

    with pytest.raises(MinbertError, match=r"text 1 is not valid Unicode \(a lone surrogate"):
        minbert.load(saved).predict(["fine", "\ud800 x"])


def test_a_header_repeated_mid_file_or_a_duplicated_column_is_an_error(tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("text,intent\nwake me,alarm\ntext,intent\nplay,music\n")
    with pytest.raises(MinbertError, match=r"train.csv:3: the header line repeats here"):
        read_examples(data, "csv", text_column="text", label_column="intent")
    data.write_text("text,intent,text\nwake me,alarm,x\n")
    with pytest.raises(MinbertError, match=r"train.csv:1: the header names column 'text' twice"):
        read_examples(data, "csv", text_column="text", label_column="intent")


def test_config_files_that_cannot_be_read_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(MinbertError, match="is a directory, not a config file"):
        load_config(tmp_path)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"# caf\xe9\ntrain: {epochs: 1}\n")
    with pytest.raises(MinbertError, match=r"latin.yaml: not UTF-8 text"):
        load_config(latin)
    good = tmp_path / "good.yaml"
    good.write_text("train: {epochs: 1}\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", denied)  # root reads everything, so the refusal is simulated
    with pytest.raises(MinbertError, match=r"good.yaml: permission denied"):
        load_config(good)


def test_a_data_file_that_cannot_be_read_is_a_one_line_error(tmp_path, monkeypatch):
    data = tmp_path / "train.csv"
    data.write_text("text,intent\nwake me,alarm\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(MinbertError, match=r"train.csv: permission denied"):
        read_examples(data, "csv", text_column="text", label_column="intent")


def test_an_override_type_error_names_the_command_line_not_the_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("train: {epochs: 2}\n")
    with pytest.raises(
        MinbertError, match=r"^--train\.lr: input should be a valid number.*\(given on the command line\)$"
    ):
        load_config(config, ["--train.lr", "fast"])
    config.write_text("train: {epochs: two}\n")
    with pytest.raises(MinbertError, match=r"run\.yaml: train\.epochs: input should be a valid integer"):
        load_config(config, ["--train.lr", "1e-4"])
