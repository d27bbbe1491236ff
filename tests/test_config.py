"""Run config: YAML/JSON, dotted overrides, clear errors."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minbert import MinbertError
from minbert.config import describe_fields, load_config
from tests.conftest import REPO


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  train: a.jsonl\ntrain:\n  lr: 5.0e-5\n  epochs: 2\n")
    config = load_config(
        path, ["--train.lr", "3e-5", "--data.format=csv", "--train.freeze", "bottom:2", "--train.max_grad_norm", "null"]
    )
    assert config.train.lr == 3e-5 and config.train.epochs == 2
    assert config.data.format == "csv" and str(config.data.train) == "a.jsonl"
    assert config.train.freeze == "bottom:2" and config.train.max_grad_norm is None


def test_json_config(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"output_dir": "runs/x", "model": {"pooling": "mean"}}))
    assert load_config(path).model.pooling == "mean"


def test_unknown_override_suggests_a_field():
    with pytest.raises(MinbertError, match=r"unknown config field --train\.lrr; did you mean --train\.lr\?"):
        load_config(None, ["--train.lrr", "1"])


def test_unknown_field_in_file_and_bad_value(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(MinbertError, match=r"run\.yaml: train\.epoch: .*\(unknown field\)"):
        load_config(path)
    path.write_text("train:\n  freeze: half\n")
    with pytest.raises(MinbertError, match=r"train\.freeze: .*bottom:K"):
        load_config(path)
    with pytest.raises(MinbertError, match=r"train\.lr: .*greater than 0"):
        load_config(None, ["--train.lr", "-1"])
    with pytest.raises(MinbertError, match=r"contrastive: .*views applies to objective supcon only"):
        load_config(None, ["--contrastive.objective", "simcse", "--contrastive.views", "2"])
    assert load_config(None, ["--contrastive.objective", "supcon", "--contrastive.views", "2"]).contrastive.views == 2
    with pytest.raises(MinbertError, match=r"pair_iterations applies to objective pairs only"):
        load_config(None, ["--contrastive.objective", "supcon", "--contrastive.pair_iterations", "5"])
    with pytest.raises(MinbertError, match=r"objective pairs regresses cosines and has none"):
        load_config(None, ["--contrastive.objective", "pairs", "--contrastive.temperature", "0.1"])
    assert (
        load_config(
            None, ["--contrastive.objective", "pairs", "--contrastive.pair_iterations", "5"]
        ).contrastive.pair_iterations
        == 5
    )


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(MinbertError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(MinbertError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)


def test_help_lists_every_field():
    text = describe_fields()
    for field in (
        "--data.train",
        "--data.text_column",
        "--train.llrd",
        "--train.warmup_ratio",
        "--model.pooling",
        "--output_dir",
    ):
        assert field in text


def test_global_option_after_the_command_is_explained():
    with pytest.raises(MinbertError, match=r"-q is a global option: put it before the command"):
        load_config(None, ["-q"])


def test_train_takes_the_config_positionally_or_as_an_option(tmp_path, capsys):
    from minbert.cli import main

    missing = tmp_path / "nope.yaml"
    assert main(["train", "--config", str(missing)]) == 2
    assert f"{missing}: config file not found" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert "no run config given: minbert train CONFIG" in capsys.readouterr().err
    assert main(["sweep", "a.yaml", "--config", "b.yaml"]) == 2
    assert "two run configs given (a.yaml and --config b.yaml)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["--task", "multitask", "--tasks", "[{name: a, data: {train: x.csv}}]", "--data.train", "t.jsonl"],
            "data: is the single-task run's data; a multitask run reads each task's own",
        ),
        (
            ["--task", "multitask", "--tasks", "[{name: a, data: {train: x.csv}}]", "--model.hidden_size", "64"],
            r"model.hidden_size sets the single-task head; .* \(tasks.NAME.head.hidden_size\)",
        ),
        (["--multitask.projection_size", "64"], "multitask: is read by task: multitask"),
        (["--contrastive.epochs", "3"], "contrastive.epochs is set but contrastive.objective is none"),
        (["--train.scl_lambda", "0.5"], "train.scl_lambda is read by train.objective ce\\+scl"),
        (
            ["--model.hidden_size", "0", "--model.activation", "gelu"],
            "model.activation is read by the head's hidden layer",
        ),
        (
            ["--task", "multitask", "--tasks", "[{name: a, data: {train: x.csv}, head: {target_range: [0, 5]}}]"],
            "tasks.a.head: target_range is read by regression heads only",
        ),
    ],
)
def test_a_field_the_run_would_not_read_is_an_error(overrides, message):
    with pytest.raises(MinbertError, match=message):
        load_config(None, overrides)


def test_a_resolved_config_reloads_as_it_was(tmp_path):
    """config.yaml writes every field, defaults included; reading it back must not trip the checks above."""
    for overrides in (
        ["--data.train", "t.jsonl"],
        ["--task", "multitask", "--tasks", "[{name: a, data: {train: x.csv}, head: {kind: regression}}]"],
    ):
        config = load_config(None, overrides)
        (tmp_path / "config.yaml").write_text(config.to_yaml())
        assert load_config(tmp_path / "config.yaml") == config


def test_a_saved_multitask_config_selects_on_overall_again(tmp_path):
    """A saved config.yaml writes every field; the selection metric left unset must stay unset there, or a re-run
    of a saved multitask config (or an experiment resuming it) is refused for a classification metric."""
    from minbert.run import selection_metric

    multitask = ["--task", "multitask", "--tasks", "[{name: a, data: {train: x.csv}}, {name: b, data: {train: y.csv}}]"]
    for overrides, expected in (
        (multitask, "overall"),
        ([*multitask, "--train.metric", "loss"], "loss"),
        (["--data.train", "t.csv"], "accuracy"),
        (["--data.train", "t.csv", "--train.metric", "macro_f1"], "macro_f1"),
    ):
        config = load_config(None, overrides)
        (tmp_path / "config.yaml").write_text(config.with_absolute_paths().to_yaml())
        assert selection_metric(config) == selection_metric(load_config(tmp_path / "config.yaml")) == expected
    with pytest.raises(MinbertError, match="a multitask run selects on overall or loss"):
        selection_metric(load_config(None, [*multitask, "--train.metric", "accuracy"]))


def test_a_saved_config_names_its_input_files_absolutely(tmp_path, monkeypatch):
    """A run's config.yaml is read again by refit, card, serve and re-runs, perhaps from another directory."""
    here = tmp_path / "start"
    (here / "ckpt").mkdir(parents=True)
    monkeypatch.chdir(here)
    overrides = ["--data.train", "../d/t.jsonl", "--data.exclude", "[{path: x.tsv, format: tsv}]"]
    config = load_config(None, [*overrides, "--distill.teacher", "runs/teacher", "--model.checkpoint", "ckpt"])
    saved = config.with_absolute_paths()
    root = tmp_path.resolve()
    assert saved.data.train == root / "d" / "t.jsonl" and saved.data.exclude[0].path == root / "start" / "x.tsv"
    assert saved.distill.teacher == root / "start" / "runs" / "teacher"
    assert saved.model.checkpoint == str(root / "start" / "ckpt")
    assert saved.output_dir == config.output_dir == Path("runs/latest")  # where it writes stays as given
    assert config.data.train == Path("../d/t.jsonl")  # the run's own config is untouched
    (tmp_path / "config.yaml").write_text(saved.to_yaml())
    monkeypatch.chdir(tmp_path)
    assert load_config(tmp_path / "config.yaml") == saved
    multitask = ["--task", "multitask", "--tasks", "[{name: a, data: {train: x.csv, oos_test: [o.csv]}}]"]
    (task,) = load_config(None, multitask).with_absolute_paths().tasks
    assert task.data.train == root / "x.csv" and task.data.oos_test == [root / "o.csv"]
    assert load_config(None, ["--model.checkpoint", "all-MiniLM-L6-v2"]).with_absolute_paths().model.checkpoint == (
        "all-MiniLM-L6-v2"
    )


def test_a_single_task_config_is_a_one_entry_task_list():
    config = load_config(None, ["--data.train", "t.jsonl", "--model.hidden_size", "64", "--model.dropout", "0.2"])
    (task,) = config.task_list()
    assert task.name == "main" and task.data == config.data
    assert (task.head.kind, task.head.input, task.head.loss, task.head.hidden_size, task.head.dropout) == (
        "classification",
        "single",
        "ce",
        64,
        0.2,
    )


# Free-text fields: every string a user types must reach the config unchanged (`freeze` and a task's name have
# patterns of their own, tested with their validators).
PATTERNED = {"train.freeze"}


def text_fields() -> list[str]:
    from minbert.config.loading import _annotation_kinds, field_paths

    return sorted(
        name
        for name, info in field_paths().items()
        if str in _annotation_kinds(info.annotation)
        and _annotation_kinds(info.annotation) <= {str, type(None)}
        and name not in PATTERNED
    )


def test_the_text_fields_are_found():
    fields = text_fields()
    assert {"data.label_separator", "data.text_column", "oos.label", "model.checkpoint", "data.format"} <= set(fields)
    assert "train.lr" not in fields and "train.bf16" not in fields


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(text_fields()), text=st.text(alphabet=st.characters(categories=["L", "N", "P", "S", "Zs"]))
)
def test_a_text_field_takes_any_printable_string_verbatim(field, text):
    """What the override parser hands the config is the text as typed (null: None, where the field is optional)."""
    from minbert.config import field_paths, parse_overrides

    optional = type(None) in typing.get_args(field_paths()[field].annotation)
    expected = None if text == "null" and optional else text
    for args in (["--" + field, text], [f"--{field}={text}"]):
        value = parse_overrides(args)
        for part in field.split("."):
            value = value[part]
        assert value == expected


@settings(max_examples=100, deadline=None)
@given(
    field=st.sampled_from(["data.label_separator", "data.text_column", "data.label_column", "oos.label"]),
    text=st.text(alphabet=st.characters(categories=["L", "N", "P", "S", "Zs"]), min_size=1),
)
def test_a_text_value_reaches_the_validated_config_unchanged(field, text):
    expected = None if text == "null" and field != "oos.label" else text
    value = load_config(None, ["--" + field, text])
    for part in field.split("."):
        value = getattr(value, part)
    assert value == expected


@settings(max_examples=200, deadline=None)
@given(
    lr=st.floats(min_value=1e-9, max_value=10, allow_nan=False),
    epochs=st.integers(min_value=1, max_value=1000),
    bf16=st.booleans(),
    split=st.sampled_from([[0.8, 0.2], [0.8, 0.1, 0.1], [0.5, 0.25, 0.25]]),
    threshold=st.one_of(st.sampled_from(["global", "per_label"]), st.floats(min_value=0, max_value=1)),
)
def test_a_typed_field_parses_to_its_value(lr, epochs, bf16, split, threshold):
    config = load_config(
        None,
        [
            *("--train.lr", repr(lr), "--train.epochs", str(epochs), "--train.bf16", str(bf16).lower()),
            *("--data.split", str(split), "--model.multilabel_threshold", str(threshold)),
        ],
    )
    assert (config.train.lr, config.train.epochs, config.train.bf16) == (lr, epochs, bf16)
    assert config.data.split == split and config.model.multilabel_threshold == threshold


@pytest.mark.parametrize(
    ("args", "field", "expected"),
    [
        (["--data.label_separator", "#"], "data.label_separator", "#"),
        (["--data.label_separator", " | "], "data.label_separator", " | "),
        (["--oos.label", "no"], "oos.label", "no"),
        (["--data.text_column", "on"], "data.text_column", "on"),
        (["--data.label_column", "null"], "data.label_column", None),
        (["--oos.label", "null"], "oos.label", "null"),
        (["--tasks.sts.data.label_separator", "#"], "tasks", "#"),
    ],
)
def test_the_probe_cases_read_as_typed(args, field, expected):
    config = load_config(
        REPO / "configs" / ("cs224n_multitask.yaml" if field == "tasks" else "massive_intent.yaml"), args
    )
    if field == "tasks":
        assert config.tasks[2].data.label_separator == expected
        return
    section, name = field.split(".")
    assert getattr(getattr(config, section), name) == expected


def test_a_new_train_file_with_the_configs_dev_and_test_is_named_in_a_warning(caplog):
    with caplog.at_level("WARNING", logger="minbert"):
        load_config(REPO / "configs" / "massive_intent.yaml", ["--data.train", "mine.csv", "--data.test", "t.csv"])
    assert "data.dev ../shared/data/massive_en_us/validation.jsonl still come from" in caplog.text
    assert "data.test" not in caplog.text.split("still come from")[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="minbert"):
        load_config(
            REPO / "configs" / "massive_intent.yaml", ["--data.dev", "null", "--data.train", "a", "--data.test", "null"]
        )
    assert caplog.text == ""
