"""`minbert export --to sentence-transformers`: SentenceTransformer(DIR).encode equals minbert's embeddings."""

from __future__ import annotations

import numpy as np
import torch

from minbert.cli import main
from minbert.model.heads import HeadSpec
from minbert.model.st_export import export_sentence_transformers
from minbert.model.task_model import Model, load

TEXTS = ["wake me up at seven tomorrow", "will it rain in paris", "play some jazz", "hi", "a much longer sentence " * 8]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def test_the_plain_checkpoint_exports_and_encodes_the_same(tmp_path):
    from sentence_transformers import SentenceTransformer

    assert main(["export", "all-MiniLM-L6-v2", "--to", "sentence-transformers", "--out", str(tmp_path / "st")]) == 0
    theirs = SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(TEXTS)
    ours = load("all-MiniLM-L6-v2").encode(TEXTS)
    assert min_cosine(theirs, ours) >= 0.9999 and np.allclose(theirs, ours, atol=1e-4)


def test_a_model_with_a_projection_and_heads_exports_its_sentence_vectors(tmp_path):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = Model.from_checkpoint(
        None, [HeadSpec("main", labels=["a", "b"])], pooling="cls", projection_size=48, normalize=True, max_length=16
    )
    model.save(tmp_path / "model")
    export_sentence_transformers(tmp_path / "model", tmp_path / "st")
    theirs = SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(TEXTS)
    ours = load(tmp_path / "model").encode(TEXTS)  # truncated at 16 tokens on both sides
    assert theirs.shape == (len(TEXTS), 48) and min_cosine(theirs, ours) >= 0.9999


def test_a_pooler_model_exports_as_cls_pooling_and_a_tanh_dense_layer(tmp_path):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = Model.from_checkpoint(None, [HeadSpec("main", labels=["a", "b"])], pooling="pooler", max_length=16)
    model.save(tmp_path / "model")
    export_sentence_transformers(tmp_path / "model", tmp_path / "st")
    loaded = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    assert [type(m).__name__ for m in loaded] == ["Transformer", "Pooling", "Dense", "Normalize"]
    ours = load(tmp_path / "model").encode(TEXTS)
    assert min_cosine(loaded.encode(TEXTS), ours) >= 0.9999
    plain = load("all-MiniLM-L6-v2").encode(TEXTS)  # mean pooling: the pooler really is in the path
    assert min_cosine(plain, ours) < 0.99
