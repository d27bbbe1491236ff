"""The real all-mpnet-base-v2 against transformers and sentence-transformers. It is a 470 MB download that
CI does not make: these tests run where `minbert download all-mpnet-base-v2` has installed it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import minbert
from minbert.model.download import installed

pytestmark = pytest.mark.skipif(
    installed("all-mpnet-base-v2") is None,
    reason="all-mpnet-base-v2 is not installed (run `minbert download all-mpnet-base-v2`; CI skips the 470 MB download)",
)

SENTENCES = [
    "A man is playing a guitar.",
    "Héllo wörld, naïve café déjà vu",
    "emoji 😀🚀 and symbols ©®",
    "short",
    " ".join(["a long sentence that goes on"] * 40),
    "Two\tsentences? Yes. Really!",
]


@pytest.fixture(scope="module")
def directory():
    return installed("all-mpnet-base-v2")


def test_hidden_states_match_transformers_mpnet(directory):
    from transformers import AutoTokenizer, MPNetModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference, reference_tokenizer = (
            MPNetModel.from_pretrained(directory).eval(),
            AutoTokenizer.from_pretrained(directory),
        )
    ours, tokenizer = (
        minbert.Encoder.from_pretrained("all-mpnet-base-v2"),
        minbert.Tokenizer.from_pretrained("all-mpnet-base-v2", max_length=128),
    )
    batch = tokenizer(SENTENCES)
    expected = reference_tokenizer(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")
    assert torch.equal(batch.input_ids, expected["input_ids"])
    pair = ("The cat sits.", "A dog runs outside.")
    assert tokenizer.ids([pair])[0] == reference_tokenizer(*pair)["input_ids"]  # <s> a </s></s> b </s>
    with torch.no_grad():
        got = ours(**batch.as_kwargs())
        want = reference(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"])
    real = batch.attention_mask.bool()
    difference = (got.last_hidden_state[real] - want.last_hidden_state[real]).abs().max().item()
    print(f"\nall-mpnet-base-v2: max |last_hidden_state - MPNetModel| {difference:.2e}")
    assert difference < 1e-4
    assert (got.pooler_output - want.pooler_output).abs().max().item() < 1e-4


def test_embed_matches_sentence_transformers(directory):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(directory), device="cpu").encode(SENTENCES)
    ours = minbert.load("all-mpnet-base-v2").encode(SENTENCES)
    cosine = (reference * ours).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(ours, axis=1)
    print(f"\nall-mpnet-base-v2: min cosine to SentenceTransformer.encode {cosine.min():.7f}")
    assert cosine.min() >= 0.9999
