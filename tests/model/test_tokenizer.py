"""Token ids match the reference tokenizer on singles, pairs, accents, emoji and long text."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from minbert import Tokenizer

TEXTS = [
    "wake me up at nine am on friday",
    "Crème brûlée, jalapeño and a façade: naïve café déjà vu",
    "I love this 😍🔥 soooo much!!! #blessed",
    "Ça coûte 12,50 € — über-expensive?",
    "中文字符 and Ελληνικά mixed with English",
    "",
]


@pytest.fixture(scope="module")
def reference(checkpoint_dir):
    return AutoTokenizer.from_pretrained(str(checkpoint_dir))


def real_sentences(data_dir) -> list[str]:
    lines = (data_dir / "sst5" / "sst-dev.txt").read_text(encoding="utf-8").splitlines()[:40]
    return [line.split(" ||| ", 1)[1] for line in lines]


def test_single_sentences_match(reference, tokenizer, data_dir):
    texts = TEXTS + real_sentences(data_dir)
    expected = reference(texts, truncation=True, max_length=tokenizer.max_length)["input_ids"]
    assert tokenizer.ids(texts) == expected


def test_long_text_is_truncated_like_the_reference(reference, data_dir):
    review = max((data_dir / "cfimdb" / "cfimdb-dev.txt").read_text(encoding="utf-8").splitlines(), key=len)
    ours = Tokenizer.from_pretrained(max_length=128)
    expected = reference([review], truncation=True, max_length=128)["input_ids"]
    got = ours.ids([review])
    assert got == expected
    assert len(got[0]) == 128 and got[0][-1] == reference.sep_token_id


def test_pairs_match_with_token_types(reference, tokenizer, data_dir):
    rows = (data_dir / "cs224n_multitask" / "sts-dev.csv").read_text(encoding="utf-8").splitlines()[1:20]
    pairs = [tuple(r.split("\t")[2:4]) for r in rows]
    batch = tokenizer(pairs)
    expected = reference([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    assert batch.input_ids.tolist() == expected["input_ids"].tolist()
    assert batch.token_type_ids.tolist() == expected["token_type_ids"].tolist()
    assert batch.attention_mask.tolist() == expected["attention_mask"].tolist()
    assert batch.token_type_ids.max() == 1


def test_dynamic_padding_pads_to_longest_not_max_length(tokenizer):
    batch = tokenizer(["hi", "set an alarm for six thirty"])
    assert batch.input_ids.shape[1] == len(tokenizer.ids(["set an alarm for six thirty"])[0])
    assert batch.attention_mask[0].sum() == 3
    assert (batch.input_ids[0, 3:] == tokenizer.pad_id).all()


def test_save_and_reload_gives_same_ids(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    again = Tokenizer.from_pretrained(tmp_path)
    assert again.ids(TEXTS) == tokenizer.ids(TEXTS)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["do_lower_case"] is True
    assert AutoTokenizer.from_pretrained(str(tmp_path))(TEXTS[:3])["input_ids"] == tokenizer.ids(TEXTS[:3])


def test_over_long_texts_are_cut_before_tokenising_with_the_same_tokens_kept(tokenizer):
    from minbert.model.tokenizer import CHARS_PER_TOKEN

    short = Tokenizer.from_pretrained(max_length=16)
    long_text = "wake me up at seven " * 2_000  # 40,000 characters
    assert len(short.cut([long_text])[0]) == CHARS_PER_TOKEN * 16
    whole = short.backend.encode(long_text).ids  # the backend alone: every token, then truncated
    assert short.ids([long_text])[0] == whole
    pair = short.cut([(long_text, "play some jazz")])[0]
    assert len(pair[0]) == CHARS_PER_TOKEN * 16 and pair[1] == "play some jazz"
