"""Readers: every format on tiny files, every malformed input as a clear file:line error, real files' row counts."""

from __future__ import annotations

import json
import logging

import pytest

from minbert import MinbertError
from minbert.data.labels import LabelVocab
from minbert.data.readers import read_examples, subsample


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_with_column_mapping(tmp_path):
    path = write(
        tmp_path,
        "d.jsonl",
        '{"utt": "wake me up", "intent": "alarm_set"}\n\n{"utt": "stop", "intent": "audio_volume_mute"}\n',
    )
    examples = read_examples(path, "jsonl", text_column="utt", label_column="intent")
    assert [(e.text, e.label, e.line) for e in examples] == [
        ("wake me up", "alarm_set", 1),
        ("stop", "audio_volume_mute", 3),
    ]


def test_massive_release_layout_filters_partition(tmp_path):
    rows = [
        {"id": "1", "partition": "train", "utt": "wake me up at nine", "intent": "alarm_set"},
        {"id": "2", "partition": "dev", "utt": "olly quiet", "intent": "audio_volume_mute"},
        {"id": "3", "partition": "test", "utt": "what time is it", "intent": "datetime_query"},
    ]
    path = write(tmp_path, "en-US.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert [e.text for e in read_examples(path, "massive", split="dev")] == ["olly quiet"]
    assert [e.label for e in read_examples(path, "massive", split="train")] == ["alarm_set"]


def test_massive_setfit_layout(tmp_path):
    path = write(tmp_path, "train.jsonl", '{"id":"1","label":48,"text":"wake me up","label_text":"alarm_set"}\n')
    assert read_examples(path, "massive")[0].label == "alarm_set"


def test_csv_and_tsv_with_quotes(tmp_path):
    csv_path = write(tmp_path, "d.csv", 'id,text,intent\n1,"hello, world",greet\n2,"she said ""hi""",greet\n')
    examples = read_examples(csv_path, "csv", label_column="intent")
    assert [e.text for e in examples] == ["hello, world", 'she said "hi"']
    tsv_path = write(tmp_path, "d.tsv", "text\tlabel\nfine day\tpos\n")
    assert read_examples(tsv_path, "tsv")[0].label == "pos"


def test_pipe_glue_cs224n_uci(tmp_path):
    pipe = write(tmp_path, "sst.txt", "3 ||| A gorgeous film .\n0 ||| Awful ||| truly .\n")
    assert [(e.label, e.text) for e in read_examples(pipe, "pipe")] == [
        ("3", "A gorgeous film ."),
        ("0", "Awful ||| truly ."),
    ]
    glue = write(tmp_path, "train.tsv", 'sentence\tlabel\nit \'s a "charming" journey \t1\n')
    assert read_examples(glue, "glue")[0].text == 'it \'s a "charming" journey'
    cs = write(tmp_path, "ids-sst-dev.csv", "\tid\tsentence\tsentiment\n0\tabc\t It 's a lovely film .\t3\n")
    assert read_examples(cs, "cs224n")[0].label == "3"
    uci = write(tmp_path, "yelp.txt", 'Wow... Loved this place.\t1\nA "quote\tbut not\t0\n')
    assert [(e.text, e.label) for e in read_examples(uci, "uci")] == [
        ("Wow... Loved this place.", "1"),
        ('A "quote\tbut not', "0"),
    ]


@pytest.mark.parametrize(
    "name, text, format, kwargs, message",
    [
        ("bad.jsonl", '{"text": "ok", "label": "a"}\n{"text": "broken\n', "jsonl", {}, r"bad\.jsonl:2: not valid JSON"),
        (
            "col.jsonl",
            '{"utt": "hello", "label": "a"}\n',
            "jsonl",
            {},
            r"col\.jsonl:1: no text field 'text' \(fields: utt, label\); set data\.text_column",
        ),
        (
            "empty.jsonl",
            '{"text": "ok", "label": "a"}\n{"text": "  ", "label": "b"}\n',
            "jsonl",
            {},
            r"empty\.jsonl:2: empty text",
        ),
        (
            "nolabel.jsonl",
            '{"text": "ok"}\n',
            "jsonl",
            {},
            r"nolabel\.jsonl:1: missing label \(label field/column 'label'\)",
        ),
        (
            "cols.csv",
            "id,sentence\n1,hello\n",
            "csv",
            {},
            r"cols\.csv:1: no text column 'text' in the header \(id, sentence\); set data\.text_column",
        ),
        (
            "fields.csv",
            "text,label\nhello,a\nhello,a,extra\n",
            "csv",
            {},
            r"fields\.csv:3: 3 fields but the header has 2",
        ),
        ("pipe.txt", "3 ||| fine\njust text\n", "pipe", {}, r"pipe\.txt:2: no ' \|\|\| ' separator"),
        ("uci.txt", "good\t1\nno tab here\n", "uci", {}, r"uci\.txt:2: no tab"),
        (
            "unlabeled.csv",
            "\tid\tsentence\n0\tx\thello\n",
            "cs224n",
            {},
            r"unlabeled\.csv:1: no label column 'sentiment' in the header \(, id, sentence\); set data\.label_column",
        ),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path, name, text, format, kwargs, message):
    with pytest.raises(MinbertError, match=message):
        read_examples(write(tmp_path, name, text), format, **kwargs)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(MinbertError, match=r"nope\.jsonl: data file not found"):
        read_examples(tmp_path / "nope.jsonl")
    with pytest.raises(MinbertError, match=r"unknown data format 'xml'; choose one of jsonl, csv"):
        read_examples(write(tmp_path, "a.xml", "<a/>"), "xml")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("1 ||| caf\xe9\n".encode("latin-1"))
    with pytest.raises(MinbertError, match=r"latin1\.txt: not UTF-8"):
        read_examples(path, "pipe")


def test_skip_bad_rows_counts_them(tmp_path, caplog):
    path = write(
        tmp_path,
        "d.jsonl",
        '{"text": "ok", "label": "a"}\n{"text": "", "label": "b"}\n{"text": "fine", "label": "b"}\n',
    )
    with caplog.at_level(logging.WARNING):
        examples = read_examples(path, "jsonl", skip_bad_rows=True)
    assert [e.line for e in examples] == [1, 3]
    assert "skipped 1 bad rows" in caplog.text and "2: empty text" in caplog.text


def test_unlabeled_files_read_for_prediction(tmp_path):
    path = write(tmp_path, "test.tsv", "index\tsentence\n0\tuplifting\n")
    assert read_examples(path, "glue", require_labels=False)[0].label is None


def test_plain_text_lines_for_embedding(tmp_path):
    path = write(tmp_path, "texts.txt", "a cat sat ||| on a mat\n\n  spaced  \tout \n")
    examples = read_examples(path, "text", require_labels=False)
    assert [(e.text, e.label, e.line) for e in examples] == [
        ("a cat sat ||| on a mat", None, 1),
        ("spaced  \tout", None, 3),
    ]
    with pytest.raises(MinbertError, match=r"texts\.txt: format 'text' has no labels.*choose a labelled format"):
        read_examples(path, "text")
    with pytest.raises(
        MinbertError, match=r"texts\.txt:1: not valid JSON .*this is a \.txt file: read it with --data\.format text"
    ):
        read_examples(path, "jsonl", require_labels=False)


def test_label_vocab_from_train_and_unseen_label(tmp_path):
    train = read_examples(write(tmp_path, "t.txt", "10 ||| a\n2 ||| b\n0 ||| c\n"), "pipe")
    vocab = LabelVocab.from_examples(train)
    assert vocab.labels == ["0", "2", "10"]
    dev = read_examples(write(tmp_path, "d.txt", "2 ||| fine\n7 ||| unseen\n"), "pipe")
    with pytest.raises(MinbertError, match=r"d\.txt:2: label '7' does not occur in the training data"):
        vocab.encode_all(dev)


def test_subsample_is_seeded_and_ordered(tmp_path):
    examples = read_examples(write(tmp_path, "t.txt", "".join(f"{i % 3} ||| text {i}\n" for i in range(50))), "pipe")
    a, b = subsample(examples, 10, seed=3), subsample(examples, 10, seed=3)
    assert a == b and len(a) == 10 and [e.line for e in a] == sorted(e.line for e in a)
    assert subsample(examples, 10, seed=4) != a


@pytest.mark.parametrize(
    "relative, format, kwargs, rows, labels",
    [
        ("massive_en_us/train.jsonl", "massive", {}, 11514, 60),
        ("massive_en_us/validation.jsonl", "massive", {}, 2033, 59),
        ("sst5/sst-train.txt", "pipe", {}, 8544, 5),
        ("cfimdb/cfimdb-dev.txt", "pipe", {}, 245, 2),
        ("cs224n_multitask/ids-sst-train.csv", "cs224n", {}, 8544, 5),
        ("sst2/dev.tsv", "glue", {}, 872, 2),
        ("uci_sentiment/imdb_labelled.txt", "uci", {}, 1000, 2),
    ],
)
def test_real_benchmark_files_read_completely(data_dir, relative, format, kwargs, rows, labels):
    examples = read_examples(data_dir / relative, format, **kwargs)
    assert len(examples) == rows
    assert len({e.label for e in examples}) == labels


def test_pair_formats_on_tiny_files(tmp_path):
    quora = write(
        tmp_path,
        "quora.csv",
        "\tid\tsentence1\tsentence2\tis_duplicate\n0\ta1\tHow do I cook rice?\tHow to cook rice\t1.0\n",
    )
    example = read_examples(quora, "quora")[0]
    assert (example.text, example.text_pair, example.label) == ("How do I cook rice?", "How to cook rice", "1.0")
    sts = write(
        tmp_path, "sts.csv", "\tid\tsentence1\tsentence2\tsimilarity\n0\tb\tA man plays.\tA man is playing.\t4.6\n"
    )
    assert read_examples(sts, "sts")[0].label == "4.6"
    stsb = write(
        tmp_path, "sts-b.csv", 'main-news\tfile\t2012\t0001\t3.2\tShe said "hi.\tShe greeted them.\tsrc1\tsrc2\n'
    )
    example = read_examples(stsb, "stsb")[0]
    assert (example.text, example.text_pair, example.label) == ('She said "hi.', "She greeted them.", "3.2")
    jsonl = write(tmp_path, "pairs.jsonl", '{"a": "x one", "b": "y two", "score": 0.5}\n')
    assert (
        read_examples(jsonl, "jsonl", text_column="a", text_pair_column="b", label_column="score")[0].text_pair
        == "y two"
    )


def test_pair_errors(tmp_path):
    bad = write(tmp_path, "q.csv", "\tid\tsentence1\tsentence2\tis_duplicate\n0\ta\tfirst\t \t0.0\n")
    with pytest.raises(MinbertError, match=r"q\.csv:2: empty second text of the pair"):
        read_examples(bad, "quora")
    missing = write(tmp_path, "m.csv", "\tid\tsentence1\tis_duplicate\n0\ta\tfirst\t0.0\n")
    with pytest.raises(MinbertError, match=r"m\.csv:1: no second-text column 'sentence2'.*set data\.text_pair_column"):
        read_examples(missing, "quora")
    short = write(tmp_path, "s.csv", "genre\tfile\t2012\t1\t2.0\tonly one sentence\n")
    with pytest.raises(MinbertError, match=r"s\.csv:1: 6 tab-separated fields"):
        read_examples(short, "stsb")


@pytest.mark.parametrize(
    "relative, format, rows",
    [
        ("cs224n_multitask/sts-train.csv", "sts", 6040),
        ("cs224n_multitask/sts-dev.csv", "sts", 863),
        ("stsb/sts-train.csv", "stsb", 5749),
        ("stsb/sts-dev.csv", "stsb", 1500),
        ("stsb/sts-test.csv", "stsb", 1379),
    ],
)
def test_real_pair_files_read_completely(data_dir, relative, format, rows):
    examples = read_examples(data_dir / relative, format)
    assert len(examples) == rows
    assert all(e.text_pair for e in examples)
    assert all(0.0 <= float(e.label) <= 5.0 for e in examples)


def test_quora_dev_has_two_unlabelled_rows_reported_not_dropped(data_dir, caplog):
    path = data_dir / "cs224n_multitask" / "quora-dev.csv"
    with pytest.raises(MinbertError, match=r"quora-dev\.csv:\d+: missing label"):
        read_examples(path, "quora")
    with caplog.at_level(logging.WARNING):
        examples = read_examples(path, "quora", skip_bad_rows=True)
    assert len(examples) == 20212 and "skipped 2 bad rows" in caplog.text
    assert {e.label for e in examples} == {"0.0", "1.0"}


def test_label_sets_from_a_separator_and_from_json_lists(tmp_path):
    csv_file = write(tmp_path, "t.csv", "text,label\nhappy and grateful,joy# gratitude\njust joy,joy\ntwice,joy#joy\n")
    rows = read_examples(csv_file, "csv", label_separator="#")
    assert [e.label for e in rows] == [("joy", "gratitude"), ("joy",), ("joy",)]
    jsonl = write(tmp_path, "t.jsonl", '{"text": "a", "label": ["x", "y"]}\n{"text": "b", "label": "x"}\n')
    assert [e.label for e in read_examples(jsonl, "jsonl")] == [("x", "y"), "x"]
    vocab = LabelVocab.from_examples(rows, multilabel=True)
    assert vocab.labels == ["gratitude", "joy"] and vocab.multi_hot(rows[:2]) == [[1.0, 1.0], [0.0, 1.0]]
    with pytest.raises(MinbertError, match=r"t\.csv:2: holds a label set .* train a multilabel head"):
        vocab.encode_all(rows)


def test_empty_label_sets_are_errors_unless_allowed(tmp_path):
    path = write(tmp_path, "t.jsonl", '{"text": "a", "label": ["x"]}\n{"text": "b", "label": []}\n')
    with pytest.raises(MinbertError, match=r"t\.jsonl:2: no label \(an empty label set\).*data\.allow_empty_labels"):
        read_examples(path, "jsonl")
    assert read_examples(path, "jsonl", allow_empty_labels=True)[1].label == ()
    tsv = write(tmp_path, "t.tsv", "text\tlabel\na\tx#\n")
    with pytest.raises(MinbertError, match=r"t\.tsv:2: an empty label name in 'x#'"):
        read_examples(tsv, "tsv", label_separator="#")


def test_an_unknown_label_in_a_dev_set_names_its_file_and_line(tmp_path):
    train = read_examples(write(tmp_path, "train.jsonl", '{"text": "a", "label": ["x", "y"]}\n'), "jsonl")
    dev = read_examples(
        write(tmp_path, "dev.jsonl", '{"text": "b", "label": ["x"]}\n{"text": "c", "label": ["x", "z"]}\n'), "jsonl"
    )
    with pytest.raises(MinbertError, match=r"dev\.jsonl:2: label 'z' does not occur in the training data"):
        LabelVocab.from_examples(train, multilabel=True).multi_hot(dev)


def test_goemotions_reader_maps_ids_to_names_and_checks_them(tmp_path):
    write(tmp_path, "labels.txt", "admiration\namusement\nneutral")
    rows = read_examples(write(tmp_path, "train.tsv", "nice one\t0,2\tid1\nlol\t1\tid2\n"), "goemotions")
    assert [e.label for e in rows] == [("admiration", "neutral"), ("amusement",)]
    with pytest.raises(MinbertError, match=r"bad\.tsv:1: label ids '3' are not comma-separated indices"):
        read_examples(write(tmp_path, "bad.tsv", "x\t3\tid\n"), "goemotions")
    (tmp_path / "labels.txt").unlink()
    with pytest.raises(MinbertError, match=r"labels\.txt: not found; format goemotions reads the label names"):
        read_examples(tmp_path / "train.tsv", "goemotions")


@pytest.mark.parametrize(("split", "rows", "multi"), [("train", 43410, 7102), ("dev", 5426, 878), ("test", 5427, 837)])
def test_real_goemotions_files_read_completely(data_dir, split, rows, multi):
    examples = read_examples(data_dir / "goemotions" / f"{split}.tsv", "goemotions")
    assert len(examples) == rows and sum(len(e.label) > 1 for e in examples) == multi  # PROVENANCE.md's counts
    assert len(LabelVocab.from_examples(examples, multilabel=True)) == 28


@pytest.mark.parametrize(
    ("text", "format", "message"),
    [
        ("", "csv", r"x\.csv: the file is empty; give a file with data rows"),
        ("text;intent\nhello;greet\n", "csv", r"x\.csv:1: no text column 'text' .*looks semicolon-separated"),
        ("text,intent\nhello,greet\n", "csv", r"x\.csv:1: no label column 'label' in the header \(text, intent\)"),
        (
            "text,label\nhello,greet\n",
            "jsonl",
            r"x\.csv:1: not valid JSON .*this is a \.csv file: read it with --data\.format csv",
        ),
    ],
)
def test_error_hints_fit_the_file(tmp_path, text, format, message):
    path = tmp_path / "x.csv"
    path.write_text(text)
    with pytest.raises(MinbertError, match=message):
        read_examples(path, format)
