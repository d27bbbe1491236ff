"""The kept embedding gradient trains exactly as the dense one, and is undone afterwards; clipping gives
torch's gradients bit for bit."""

from __future__ import annotations

import importlib

import pytest
import torch

from minbert.config import TrainConfig
from minbert.data.readers import read_examples
from minbert.model.heads import HeadSpec
from minbert.model.task_model import Model
from minbert.tasks.head_task import HeadTask
from minbert.training.gradients import KeptEmbeddingGradients, clip_grad_norm
from minbert.training.metrics_log import MetricsLog
from minbert.training.trainer import Trainer

pytestmark = pytest.mark.slow
trainer_module = importlib.import_module("minbert.training.trainer")


def fit(tmp_path, data_dir, kept: bool, name: str) -> Model:
    rows = read_examples(data_dir / "massive_en_us" / "train.jsonl", "massive")[:96]
    torch.manual_seed(0)
    spec = HeadSpec("main", labels=sorted({e.label for e in rows}), hidden_size=0)
    model = Model.from_checkpoint(None, [spec], max_length=32)
    task = HeadTask(spec, model, rows, batch_size=16, seed=0)
    config = TrainConfig(epochs=1, batch_size=16, lr=1e-3, grad_accum=2, eval_before=False, progress=False, seed=0)
    real = KeptEmbeddingGradients
    trainer_module.KeptEmbeddingGradients = lambda model, enabled: real(model, enabled and kept)  # type: ignore[misc]
    try:
        log = MetricsLog(tmp_path / f"{name}.jsonl")
        Trainer(model, task, config, log, torch.device("cpu")).fit()
        log.close()
    finally:
        trainer_module.KeptEmbeddingGradients = real  # type: ignore[misc]
    return model


def test_a_kept_embedding_gradient_trains_the_same_weights(tmp_path, data_dir):
    dense, kept = fit(tmp_path, data_dir, False, "dense"), fit(tmp_path, data_dir, True, "kept")
    word = kept.encoder.embeddings.word
    assert not word.sparse and word.weight.grad is None  # undone after training
    start = Model.from_checkpoint(None, [kept.spec("main")], max_length=32).encoder.embeddings.word.weight
    assert not torch.equal(word.weight, start)  # the table did train
    # lr 1e-3: a step moves a weight by up to 1e-3, and a lost row would show at that size. What remains is float
    # rounding (summation order of repeated tokens), largest (8e-6) in the attention key biases, whose gradient is
    # mathematically zero, so Adam's normalisation scales their rounding noise up to a full step's direction.
    for (name, a), (_, b) in zip(dense.state_dict().items(), kept.state_dict().items(), strict=True):
        assert (a - b).abs().max().item() < 2e-5, name


def test_one_backward_gives_the_same_dense_gradient():
    torch.manual_seed(0)
    table = torch.nn.Embedding(5000, 8, padding_idx=0)
    ids = torch.tensor([[5, 7, 5, 0], [7, 4999, 5, 0]])  # repeated tokens and padding
    upstream = torch.randn(2, 4, 8)
    (table(ids) * upstream).sum().backward()
    dense = table.weight.grad.clone()
    table.weight.grad = None
    with KeptEmbeddingGradients(table) as kept:
        kept.reset()
        for _ in range(2):  # two micro-batches accumulate, as with grad_accum
            (table(ids) * upstream).sum().backward()
        assert not table.weight.grad.is_sparse and torch.allclose(table.weight.grad, 2 * dense, atol=1e-6)
        kept.reset()
        assert table.weight.grad.abs().sum() == 0
    assert table.weight.grad is None and not table.sparse


@pytest.mark.parametrize("case", ["clipped", "within the bound", "a NaN gradient"])
def test_clipping_gives_torchs_gradients_bit_for_bit(case):
    torch.manual_seed(0)
    shapes = [(30, 8), (8,), (5, 3, 2), (1,)]
    grads = [torch.randn(shape) * 0.3 for shape in shapes]
    if case == "a NaN gradient":
        grads[2][1, 1, 0] = float("nan")
    max_norm = 1e6 if case == "within the bound" else 0.5
    ours = [torch.zeros(shape, requires_grad=True) for shape in shapes]
    theirs = [torch.zeros(shape, requires_grad=True) for shape in shapes]
    for mine, reference, grad in zip(ours, theirs, grads, strict=True):
        mine.grad, reference.grad = grad.clone(), grad.clone()
    unused = torch.zeros(3, requires_grad=True)  # no gradient: skipped by both
    norm = clip_grad_norm([*ours, unused], max_norm)
    expected = torch.nn.utils.clip_grad_norm_([*theirs, unused], max_norm)
    assert torch.equal(norm, expected) or (norm.isnan() and expected.isnan())
    for mine, reference, grad in zip(ours, theirs, grads, strict=True):
        assert mine.grad is not None and reference.grad is not None
        assert torch.equal(mine.grad.nan_to_num(7.0), reference.grad.nan_to_num(7.0))
        assert torch.equal(mine.grad, grad) == (case == "within the bound")  # left alone exactly then


def test_touched_rows_give_the_clipping_of_the_whole_table():
    torch.manual_seed(0)
    table = torch.nn.Embedding(5000, 8, padding_idx=0)
    other = torch.nn.Linear(8, 2)
    ids = torch.tensor([[5, 7, 5, 0], [7, 4999, 5, 0]])
    with KeptEmbeddingGradients(table) as kept:
        kept.reset()
        for batch in (ids, torch.tensor([[9, 12, 0, 0]])):  # two micro-batches: the rows of both count
            other(table(batch)).pow(2).sum().backward()
        rows = kept.touched_rows()
        grad = table.weight.grad
        assert grad is not None and {5, 7, 9, 12, 4999} <= set(rows[grad].tolist()) <= {0, 5, 7, 9, 12, 4999}
        assert grad.abs().sum(1).nonzero().flatten().tolist() == [5, 7, 9, 12, 4999]  # the padding row: no gradient
        dense = [table.weight.grad.clone(), other.weight.grad.clone(), other.bias.grad.clone()]
        norm = clip_grad_norm([table.weight, other.weight, other.bias], 0.01, rows)
        expected = torch.linalg.vector_norm(torch.cat([g.flatten() for g in dense]))
        assert torch.allclose(norm, expected, rtol=1e-6)
        scale = 0.01 / (expected + 1e-6)
        for param, before in zip([table.weight, other.weight, other.bias], dense, strict=True):
            assert param.grad is not None and torch.allclose(param.grad, before * scale, rtol=1e-6, atol=0)
        kept.reset()  # zeroes the touched rows alone, and the whole table is zero again
        assert table.weight.grad.abs().sum() == 0
        assert kept.touched_rows()[table.weight.grad].numel() == 0


def test_a_dense_gradient_on_a_kept_table_makes_every_row_count():
    """A weight used elsewhere too (a tied output layer) gets a dense gradient: no row may be skipped then."""
    torch.manual_seed(0)
    table = torch.nn.Embedding(5000, 8)
    ids = torch.tensor([[5, 7]])
    with KeptEmbeddingGradients(table) as kept:
        kept.reset()
        hidden = table(ids)
        (hidden @ table.weight.t()).logsumexp(-1).sum().backward()  # tied: every row's gradient is nonzero
        assert kept.touched_rows() == {}
        before = table.weight.grad.clone()
        norm = clip_grad_norm([table.weight], 0.01, kept.touched_rows())
        assert torch.allclose(norm, torch.linalg.vector_norm(before), rtol=1e-6)
        kept.reset()
        assert table.weight.grad.abs().sum() == 0  # the whole table zeroed, not the looked-up rows only
