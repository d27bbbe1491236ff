"""data.exclude keeps evaluation sentences out of extra training data (minbert.data.overlap)."""

from __future__ import annotations

import logging
import re
import sys

import pytest

from minbert import MinbertError
from minbert.config import load_config
from minbert.data.overlap import drop_overlap, squeeze
from minbert.data.prepare import prepare_train, read_task
from minbert.data.readers import Example, read_examples
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "experiments"))

from runner import rehome  # noqa: E402


def test_squeeze_ignores_case_spacing_and_punctuation():
    assert squeeze("It 's  GREAT !") == squeeze("it's great") == "itsgreat"


def test_drop_overlap_matches_either_text_of_a_pair():
    examples = [
        Example("A fine film .", "1", "t", 1),
        Example("dull", "0", "t", 2),
        Example("x y", "1", "t", 3, text_pair="Dull!"),
    ]
    kept, dropped = drop_overlap(examples, ["a fine film", "DULL"])
    assert [e.line for e in kept] == [] and [e.line for e in dropped] == [1, 2, 3]
    kept, dropped = drop_overlap(examples, ["a fine"])
    assert [e.line for e in kept] == [1, 2, 3] and dropped == []


def test_exclude_drops_logs_and_refuses_to_empty_train(tmp_path, caplog):
    train = tmp_path / "train.jsonl"
    train.write_text(
        '{"text": "good movie", "label": "1"}\n{"text": "Awful.", "label": "0"}\n{"text": "fine", "label": "1"}\n'
    )
    held_out = tmp_path / "eval.txt"
    held_out.write_text("awful\nnot in train\n")
    config = load_config(None, ["--data.train", str(train), "--data.exclude", f"[{{path: {held_out}, format: text}}]"])
    with caplog.at_level(logging.INFO, logger="minbert"):
        kept = prepare_train(read_examples(train), config.data, seed=1)
    assert [e.text for e in kept] == ["good movie", "fine"]
    assert "dropped 1 training rows" in caplog.text and "train.jsonl:2 'Awful.'" in caplog.text
    pairs = tmp_path / "pairs.tsv"  # both sentences of an evaluation pair are held out
    pairs.write_text("id\tsentence1\tsentence2\tsimilarity\n1\tsomething else\tFINE\t3.0\n")
    paired = load_config(None, ["--data.train", str(train), "--data.exclude", f"[{{path: {pairs}, format: sts}}]"])
    assert [e.text for e in prepare_train(read_examples(train), paired.data, seed=1)] == ["good movie", "Awful."]
    held_out.write_text("good movie\nawful\nfine\n")
    with pytest.raises(MinbertError, match="data.exclude dropped every training row"):
        prepare_train(read_examples(train), config.data, seed=1)


def test_sst2_stage_trains_on_no_sst5_or_uci_evaluation_sentence(data_dir):
    """GLUE SST-2's phrases come from SST train sentences, yet short stock phrases ("bad", "awful", "gets the job
    done") are also SST-5 / UCI evaluation sentences; the stage's data.exclude must remove every one of them."""
    config = rehome(load_config(REPO / "configs" / "sst2_intermediate.yaml"), data_dir)
    task = config.tasks[0]
    evaluation = {
        "CS224N SST-5 dev": read_examples(data_dir / "cs224n_multitask" / "ids-sst-dev.csv", "cs224n"),
        "SST-5 test": read_examples(data_dir / "sst5" / "sst-test.txt", "pipe"),
        "UCI (all 3,000)": read_examples(data_dir / "uci_sentiment", "uci"),
    }
    raw = {squeeze(e.text) for e in read_examples(task.data.train, "glue")}
    for name, examples in evaluation.items():  # without the exclusion: a few short phrases, no real sentence
        shared = [e.text for e in examples if squeeze(e.text) in raw]
        assert 0 < len(shared) <= 0.01 * len(examples), name
        assert all(len(re.findall(r"[A-Za-z0-9]+", text)) <= 5 for text in shared), name
    train = read_task(task, seed=1).train
    kept = {squeeze(e.text) for e in train}
    assert len(train) > 67_000
    for name, examples in evaluation.items():
        assert not [e.where for e in examples if squeeze(e.text) in kept], name
