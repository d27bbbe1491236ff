"""Sentence embeddings: parity with sentence-transformers on the default checkpoint, and the embed command."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minbert
from minbert.cli import main
from minbert.model.task_model import Model


@pytest.fixture(scope="module")
def sentences(data_dir):
    rows = (data_dir / "massive_en_us" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    texts = [json.loads(r)["text"] for r in rows]
    return texts + ["Crème brûlée 😋 — déjà vu", " ".join(texts)]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_encode_matches_sentence_transformers(checkpoint_dir, sentences):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(checkpoint_dir), device="cpu").encode(sentences, batch_size=16)
    ours = minbert.load().encode(sentences, batch_size=16)
    assert isinstance(minbert.load(), Model) and minbert.load().tasks == []
    cosine = cosine_rows(ours, reference)
    print(f"\nminimum cosine to SentenceTransformer.encode over {len(sentences)} sentences: {cosine.min():.7f}")
    assert cosine.min() >= 0.9999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # the checkpoint's Normalize module


def test_plain_checkpoint_gets_mean_pooling(tmp_path, minilm, tokenizer):
    minilm.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    encoder = Model.from_pretrained(tmp_path)
    assert encoder.pooling.mode == "mean" and encoder.config.normalize is False
    raw = encoder.encode(["hello there"], normalize=False)
    assert raw.shape == (1, 384) and abs(np.linalg.norm(raw) - 1) > 1e-3


def test_embed_command_writes_npy(tmp_path, capsys):
    data = tmp_path / "texts.jsonl"
    data.write_text('{"text": "wake me up at six"}\n{"text": "play jazz"}\n{"text": "what is the time"}\n')
    out = tmp_path / "emb.npy"
    assert main(["-q", "embed", "all-MiniLM-L6-v2", "--data", str(data), "--out", str(out)]) == 0
    vectors = np.load(out)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(
        vectors, minbert.load().encode(["wake me up at six", "play jazz", "what is the time"]), atol=1e-6
    )
    assert main(["-q", "embed", "all-MiniLM-L6-v2", "--out", str(out)]) == 2


def test_eval_pairs_with_a_sentence_encoder(tmp_path, checkpoint_dir, data_dir, capsys):
    from scipy.stats import pearsonr, spearmanr
    from sentence_transformers import SentenceTransformer

    lines = (data_dir / "stsb" / "sts-dev.csv").read_text(encoding="utf-8").splitlines()[:150]
    pairs = tmp_path / "sts-dev-slice.csv"
    pairs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "metrics.json"
    assert main(["-q", "eval", "all-MiniLM-L6-v2", "--data", str(pairs), "--format", "stsb", "--out", str(out)]) == 0
    ours = json.loads(out.read_text())
    reference = SentenceTransformer(str(checkpoint_dir), device="cpu")
    fields = [line.split("\t") for line in lines]
    a, b = reference.encode([f[5] for f in fields]), reference.encode([f[6] for f in fields])
    cosine = (a * b).sum(1)
    gold = [float(f[4]) for f in fields]
    assert ours["examples"] == 150
    assert ours["pearson"] == pytest.approx(pearsonr(gold, cosine)[0], abs=1e-4)
    assert ours["spearman"] == pytest.approx(spearmanr(gold, cosine)[0], abs=1e-3)
    single = tmp_path / "single.jsonl"
    single.write_text('{"text": "no pair here", "label": "a"}\n')
    assert main(["-q", "eval", "all-MiniLM-L6-v2", "--data", str(single)]) == 2
    assert "scored on sentence pairs" in capsys.readouterr().err
