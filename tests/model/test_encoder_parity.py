"""Our encoder gives the reference implementation's hidden states on real checkpoints."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel

from minbert import Encoder, Tokenizer

TOLERANCE = 1e-4


def massive_sentences(data_dir, n: int = 24) -> list[str]:
    rows = (data_dir / "massive_en_us" / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(r)["text"] for r in rows[:n]]
    texts.append(" ".join(texts))  # one long item so most rows are padded
    return texts


def max_diff_at_real_tokens(ours, theirs, mask) -> float:
    return (ours - theirs)[mask.bool()].abs().max().item()


def test_default_checkpoint_matches_transformers(minilm, reference_bert, tokenizer, data_dir):
    batch = tokenizer(massive_sentences(data_dir))
    assert (batch.attention_mask == 0).any(), "the batch must exercise padding"
    with torch.no_grad():
        ours = minilm(**batch.as_kwargs(), output_hidden_states=True)
        theirs = reference_bert(**batch.as_kwargs(), output_hidden_states=True)
    hidden = max_diff_at_real_tokens(ours.last_hidden_state, theirs.last_hidden_state, batch.attention_mask)
    pooled = (ours.pooler_output - theirs.pooler_output).abs().max().item()
    print(f"\nall-MiniLM-L6-v2 max abs diff: last_hidden_state {hidden:.3e}, pooler_output {pooled:.3e}")
    assert hidden <= TOLERANCE
    assert pooled <= TOLERANCE
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 7
    for mine, ref in zip(ours.hidden_states, theirs.hidden_states, strict=True):
        assert max_diff_at_real_tokens(mine, ref, batch.attention_mask) <= TOLERANCE


def test_padding_does_not_change_a_sentence(minilm, tokenizer):
    alone = tokenizer(["set an alarm for seven"])
    padded = tokenizer(["set an alarm for seven", "a much longer sentence that forces padding onto the first one"])
    with torch.no_grad():
        a = minilm(**alone.as_kwargs()).last_hidden_state[0]
        b = minilm(**padded.as_kwargs()).last_hidden_state[0, : a.shape[0]]
    assert (a - b).abs().max().item() < 1e-5


def tiny_config() -> BertConfig:
    return BertConfig(
        vocab_size=120,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=40,
        type_vocab_size=2,
    )


@pytest.mark.parametrize("safe_serialization", [True, False], ids=["safetensors", "pytorch_bin"])
def test_random_small_bert_matches_transformers(tmp_path, safe_serialization):
    torch.manual_seed(1)
    reference = BertModel(tiny_config()).eval()
    if safe_serialization:
        reference.save_pretrained(tmp_path)
    else:
        (tmp_path / "config.json").write_text(reference.config.to_json_string())
        torch.save(reference.state_dict(), tmp_path / "pytorch_model.bin")
    ours = Encoder.from_pretrained(tmp_path)
    assert ours.config.hidden_size == 64 and ours.num_layers == 2
    input_ids = torch.randint(1, 120, (3, 17))
    mask = torch.ones_like(input_ids)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    types = torch.zeros_like(input_ids)
    types[:, 6:] = 1
    with torch.no_grad():
        a = ours(input_ids, mask, types)
        b = reference(input_ids=input_ids, attention_mask=mask, token_type_ids=types)
    assert max_diff_at_real_tokens(a.last_hidden_state, b.last_hidden_state, mask) <= TOLERANCE
    assert (a.pooler_output - b.pooler_output).abs().max().item() <= TOLERANCE


def test_prefixed_checkpoint_loads_and_reports_extra_keys(tmp_path):
    torch.manual_seed(2)
    classifier = BertForSequenceClassification(tiny_config()).eval()
    classifier.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="classifier.weight"):
        ours = Encoder.from_pretrained(tmp_path)
    ids = torch.randint(1, 120, (2, 9))
    with torch.no_grad():
        expected = classifier.bert(input_ids=ids).last_hidden_state
        assert (ours(ids).last_hidden_state - expected).abs().max().item() <= TOLERANCE


def test_missing_pooler_is_initialised_with_a_warning(tmp_path):
    reference = BertModel(tiny_config(), add_pooling_layer=False)
    reference.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="pooler"):
        ours = Encoder.from_pretrained(tmp_path)
    assert torch.isfinite(ours(torch.randint(1, 120, (1, 5))).pooler_output).all()


def test_train_mode_backward_gives_finite_gradients(tmp_path, tokenizer):
    torch.manual_seed(3)
    encoder = Encoder.from_pretrained().train()
    batch = tokenizer(["turn the lights off", "what's the weather like in paris tomorrow"])
    out = encoder(**batch.as_kwargs())
    loss = out.pooler_output.pow(2).mean() + out.last_hidden_state.mean()
    loss.backward()
    grads = [p.grad for p in encoder.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert encoder.layers[0].attention.query.weight.grad.abs().sum() > 0


def test_dropout_is_active_in_train_mode_only(minilm, tokenizer):
    batch = tokenizer(["play some jazz"])
    encoder = Encoder.from_pretrained()
    with torch.no_grad():
        assert torch.equal(
            encoder(**batch.as_kwargs()).last_hidden_state, encoder(**batch.as_kwargs()).last_hidden_state
        )
        encoder.train()
        assert not torch.equal(
            encoder(**batch.as_kwargs()).last_hidden_state, encoder(**batch.as_kwargs()).last_hidden_state
        )


def test_save_load_round_trip_is_bit_identical_and_transformers_reads_it(tmp_path, minilm, tokenizer):
    minilm.save_pretrained(tmp_path)
    again = Encoder.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(minilm.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    batch = tokenizer(["remind me to call mum", "hi"])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = minilm(**batch.as_kwargs())
        assert torch.equal(ours.last_hidden_state, again(**batch.as_kwargs()).last_hidden_state)
        reference = BertModel.from_pretrained(str(tmp_path)).eval()
        theirs = reference(**batch.as_kwargs())
    assert max_diff_at_real_tokens(ours.last_hidden_state, theirs.last_hidden_state, batch.attention_mask) <= TOLERANCE


def test_bf16_autocast_stays_close(minilm, tokenizer):
    from minbert.runtime import autocast

    batch = tokenizer(["book a table for two at eight"])
    with torch.no_grad():
        full = minilm(**batch.as_kwargs()).last_hidden_state
        with autocast(torch.device("cpu"), bf16=True):
            half = minilm(**batch.as_kwargs()).last_hidden_state
    cosine = torch.nn.functional.cosine_similarity(full.float(), half.float(), dim=-1)
    assert cosine.min().item() > 0.99


def test_tokenizer_built_from_vocab_matches_tokenizer_json(tmp_path, checkpoint_dir):
    for name in ("vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((checkpoint_dir / name).read_bytes())
    from_vocab = Tokenizer.from_pretrained(tmp_path, max_length=64)
    from_json = Tokenizer.from_pretrained(checkpoint_dir, max_length=64)
    texts = ["Crème Brûlée at the Café?", "naïve façade 😀 emoji", "UPPER lower MiXeD"]
    assert from_vocab.ids(texts) == from_json.ids(texts)


def test_reinit_top_layers_touches_only_the_top(minilm):
    encoder = Encoder.from_pretrained()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    encoder.reinit_top_layers(2)
    changed = {k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("layers.5.") for k in changed) and any(k.startswith("layers.4.") for k in changed)
    assert any(k.startswith("pooler.") for k in changed)
    assert not any(k.startswith(("layers.3.", "layers.0.", "embeddings.")) for k in changed)
    assert torch.equal(encoder.layers[5].attention_norm.weight, torch.ones(384))
