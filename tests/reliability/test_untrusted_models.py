"""A model directory is untrusted input: sizes and numbers in its config.json and minbert.json are checked
before anything is allocated, and every bad value is a one-line MinbertError, never a traceback or a
process that allocates until the machine runs out of memory."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minbert import MinbertError, load
from minbert.model.layout import description_digest
from tests.helpers import classifier


@pytest.fixture
def saved(tmp_path):
    return classifier(["alarm", "music"], hidden_size=8, max_length=16).save(tmp_path / "model")


def rewrite(path, change):
    """Change a JSON file; in minbert.json keep the description's digest in step, as a deliberate attacker would
    (the digest catches damage and careless edits; the checks behind it must hold on their own)."""
    from minbert.model.layout import description_digest

    raw = json.loads(path.read_text())
    change(raw)
    if "description_sha256" in raw and isinstance(raw, dict):
        raw["description_sha256"] = description_digest(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_hidden_layers", 100_000, "num_hidden_layers 100000 is not a whole number from 1 to 256"),
        ("hidden_size", 10**9, "hidden_size 1000000000 is not a whole number from 1 to 16,384"),
        ("vocab_size", "30522", "vocab_size '30522' is not a whole number"),
        ("intermediate_size", 65_536, "parameters"),
        ("hidden_dropout_prob", 2.5, "hidden_dropout_prob 2.5 is not a probability"),
    ],
)
def test_encoder_sizes_are_checked_before_allocating(saved, field, value, message):
    """A plain checkpoint directory (what a Hub id or a download gives) with absurd sizes in its config.json."""
    config = saved / "encoder" / "config.json"
    rewrite(config, lambda raw: raw.update({field: value}))
    if field == "intermediate_size":  # each size allowed, together too many weights
        rewrite(config, lambda raw: raw.update(hidden_size=16_384, num_attention_heads=16, num_hidden_layers=256))
    started = time.perf_counter()
    with pytest.raises(MinbertError, match=message):
        load(saved / "encoder")
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["heads"][0].update(labels=[f"l{i}" for i in range(1_000_000)]), "minbert heads hold at most"),
        (lambda raw: raw["heads"][0].update(temperature=float("nan")), "temperature nan is not a positive number"),
        (lambda raw: raw.update(max_length="64"), "max_length '64' is not a whole number"),
        (lambda raw: raw.update(max_length=-1), "max_length -1 is not a whole number"),
        (lambda raw: raw.update(max_length=0), "max_length 0 is not a whole number"),
        (lambda raw: raw.update(projection_size=10**9), "projection_size 1000000000"),
        (lambda raw: raw["heads"][0].update(oos_bank_size=10**12), "oos_bank_size"),
        (lambda raw: raw["heads"].append(5), "not a model description minbert can read"),
        (lambda raw: raw.update(heads=5), "not a model description minbert can read"),
        (lambda raw: raw.update(files=[]), "its files manifest is not"),
        (lambda raw: raw["files"].update({"../outside": {"bytes": 1, "sha256": "x"}}), "its files manifest is not"),
        (lambda raw: raw["files"].update({"extra": 5}), "its files manifest is not"),
    ],
)
def test_a_tampered_description_is_a_one_line_error(saved, change, message):
    rewrite(saved / "minbert.json", change)
    started = time.perf_counter()
    with pytest.raises(MinbertError, match=message) as caught:
        load(saved)
    assert "\n" not in str(caught.value) and time.perf_counter() - started < 10


def test_a_yaml_alias_bomb_in_a_checkpoint_readme_is_not_expanded(tmp_path, checkpoint_dir):
    import shutil

    from minbert.card import base_license

    folder = tmp_path / "checkpoint"
    shutil.copytree(checkpoint_dir, folder)
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (folder / "README.md").write_text("---\n" + "\n".join(levels) + "\nlicense: apache-2.0\n---\n# card\n")
    started = time.perf_counter()
    assert base_license(str(folder)).startswith("unknown (its README front matter is not plain YAML)")
    assert time.perf_counter() - started < 5
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# card\n")
    assert base_license(str(folder)) == "apache-2.0"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
FIELDS = ["heads", "pooling", "projection_size", "normalize", "max_length", "base_checkpoint", "format_version"]
HEAD_FIELDS = ["name", "kind", "input", "loss", "labels", "hidden_size", "activation", "dropout", "target_range"]
HEAD_FIELDS += ["temperature", "oos_method", "oos_threshold", "oos_k", "oos_bank_size", "multilabel", "thresholds"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.sampled_from(["top", "head"]),
    field=st.sampled_from(FIELDS + HEAD_FIELDS),
    value=JSON,
)
def test_fuzzed_descriptions_load_and_predict_or_fail_in_one_line(saved, where, field, value):
    """Hypothesis over minbert.json: any JSON value in any field gives a model that predicts, or a MinbertError
    (never another exception), within seconds."""
    original = (saved / "minbert.json").read_text()
    try:
        raw = json.loads(original)
        if where == "head" and field in HEAD_FIELDS:
            raw["heads"][0][field] = value
        elif field in FIELDS:
            raw[field] = value
        raw["description_sha256"] = description_digest(raw)
        (saved / "minbert.json").write_text(json.dumps(raw))
        started = time.perf_counter()
        try:
            load(saved).predict(["wake me up"])
        except MinbertError as e:
            assert "\n" not in str(e)
        assert time.perf_counter() - started < 10
    finally:
        (saved / "minbert.json").write_text(original)


def test_a_truncated_or_foreign_onnx_file_is_a_one_line_error(saved):
    from minbert.model.backends import ONNX_DIR, OnnxModel

    (saved / ONNX_DIR).mkdir()
    for content in (b"\x08\x07garbage that is not a protobuf", b""):
        (saved / ONNX_DIR / "model.onnx").write_bytes(content)
        with pytest.raises(MinbertError, match="not an ONNX model ONNX Runtime can load") as caught:
            OnnxModel(saved)
        assert "\n" not in str(caught.value)


def test_outputs_that_do_not_fit_the_heads_labels_are_a_one_line_error():
    import torch

    from minbert.model.heads import HeadSpec
    from minbert.model.task_model import predictions

    with pytest.raises(MinbertError, match="gives 3 outputs per input where its head has 2; .* export it again"):
        predictions(HeadSpec("main", labels=["a", "b"]), torch.zeros(4, 3))


def test_card_and_refit_on_a_damaged_run_are_one_line_errors_and_write_nothing(tmp_path, saved):
    import shutil

    from minbert.card import write_card
    from minbert.run import refit

    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(saved, run / "model")
    (run / "config.yaml").write_text(f"data: {{train: {tmp_path / 'train.jsonl'}}}\n")
    for damaged in ("[]", '{"results": 5}', "{", '{"summary": [1]}'):
        (run / "results.json").write_text(damaged)
        if damaged != '{"summary": [1]}':
            with pytest.raises(MinbertError, match="is the run damaged"):
                write_card(run)
        if damaged != '{"results": 5}':
            with pytest.raises(MinbertError, match="results.json: .*is the run damaged"):
                refit(run, ["--output_dir", str(tmp_path / "refitted")])
            assert not (tmp_path / "refitted").exists()


def test_heads_whose_shapes_differ_from_the_description_are_a_one_line_error(saved):
    from safetensors.torch import load_file, save_file

    from minbert.model.layout import manifest

    weights = load_file(str(saved / "heads.safetensors"))
    weights = {k: v[:1] if v.dim() and v.shape[0] == 2 else v for k, v in weights.items()}  # one class fewer
    save_file(weights, str(saved / "heads.safetensors"))
    rewrite(saved / "minbert.json", lambda raw: raw.update(files=manifest(saved)))
    with pytest.raises(MinbertError, match="heads.safetensors: does not match minbert.json .size mismatch") as caught:
        load(saved)
    assert "\n" not in str(caught.value)


def test_an_onnx_export_is_in_the_manifest_and_a_changed_one_is_refused(saved):
    pytest.importorskip("onnxruntime", reason="the ONNX backends need minbert[onnx]")
    from minbert.model.backends import OnnxModel, export_onnx

    files = export_onnx(saved)
    assert "onnx/model.onnx" in json.loads((saved / "minbert.json").read_text())["files"]
    assert OnnxModel(saved).predict(["wake me up"])[0].label in ("alarm", "music")
    data = bytearray(files["onnx"].read_bytes())
    data[-1] ^= 1
    files["onnx"].write_bytes(bytes(data))
    with pytest.raises(MinbertError, match="model.onnx: does not match the manifest"):
        OnnxModel(saved)
