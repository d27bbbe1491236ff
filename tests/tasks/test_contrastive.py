"""Contrastive objectives inside real training: gradients reach the encoder; the two-stage protocol runs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import minbert
from minbert.data.labels import LabelVocab
from minbert.data.readers import read_examples
from minbert.model.checkpoint import resolve_checkpoint
from minbert.tasks.contrastive import ContrastiveModel, ContrastiveTask
from minbert.tasks.head_task import HeadTask
from minbert.training.metrics_log import read_metrics
from tests.helpers import classifier
from tests.test_train_end_to_end import slice_config


@pytest.fixture(scope="module")
def few_examples(data_dir):
    examples = read_examples(data_dir / "massive_en_us" / "train.jsonl", "massive")
    return examples[:2000:50]  # 40 sentences, several intents repeated


@pytest.mark.parametrize("objective", ["simcse", "supcon", "pairs"])
def test_contrastive_loss_reaches_the_encoder(few_examples, objective):
    labels = LabelVocab.from_examples(few_examples)
    model = classifier(labels.labels)
    stage = ContrastiveModel(model.encoder, model.pooling, projection_size=32).train()
    task = ContrastiveTask(
        model.tokenizer, labels, few_examples, objective=objective, temperature=0.1, batch_size=16, seed=0
    )
    batch = task.epoch_batches(0)[0]
    loss = task.loss(stage, batch)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert model.encoder.layers[0].attention.query.weight.grad.abs().sum() > 0
    assert stage.projection[0].weight.grad.abs().sum() > 0


def test_pairs_give_every_sentence_a_same_and_an_other_label_partner_each_round(few_examples):
    """SetFit's drawing: per round one positive (same label, never itself) and one negative per sentence; a
    sentence alone in its class gets negatives only; seeded by the epoch; batches hold both sides of every pair,
    a sentence shared by pairs of one batch only once."""
    labels = LabelVocab.from_examples(few_examples)
    model = classifier(labels.labels)
    task = ContrastiveTask(
        model.tokenizer,
        labels,
        few_examples,
        objective="pairs",
        temperature=0.1,
        batch_size=16,
        seed=0,
        pair_iterations=3,
    )
    names = [str(e.label) for e in few_examples]
    pairs = task.pairs(0)
    alone = {i for i, name in enumerate(names) if names.count(name) == 1}
    assert 0 < len(alone) < len(names)
    for i in range(len(names)):
        mine = [(j, target) for first, j, target in pairs if first == i]
        assert sorted(target for _, target in mine) == [0.0] * 3 + ([] if i in alone else [1.0] * 3)
        assert all((names[j] == names[i]) == (target == 1.0) and j != i for j, target in mine)
    assert task.pairs(0) == pairs and task.pairs(1) != pairs
    batches = task.epoch_batches(0)
    assert sum(len(b) for b in batches) == len(pairs) == task.pairs_per_epoch == 3 * (2 * len(names) - len(alone))
    drawn = []
    for b in batches:
        rows = [
            tuple(ids[mask.bool()].tolist())
            for ids, mask in zip(b.inputs.input_ids, b.inputs.attention_mask, strict=True)
        ]
        assert len(set(rows)) == len(rows)
        drawn += [(rows[a], rows[c], t) for a, c, t in zip(*b.pair_rows.tolist(), b.targets.tolist(), strict=True)]
    assert sorted(drawn) == sorted((tuple(task.ids[i]), tuple(task.ids[j]), t) for i, j, t in pairs)
    assert sum(len(b.inputs.input_ids) for b in batches) < 0.9 * 2 * len(pairs)


def test_two_view_supcon_gives_every_anchor_a_positive(few_examples):
    """At bs 16 over many intents one view leaves most anchors without a positive; two views leave none."""
    torch.manual_seed(0)
    labels = LabelVocab.from_examples(few_examples)
    model = classifier(labels.labels)
    stage = ContrastiveModel(model.encoder, model.pooling).train()
    single = ContrastiveTask(
        model.tokenizer, labels, few_examples, objective="supcon", temperature=0.1, batch_size=16, seed=0
    )
    double = ContrastiveTask(
        model.tokenizer, labels, few_examples, objective="supcon", temperature=0.1, batch_size=16, seed=0, views=2
    )
    batch = single.epoch_batches(0)[0]
    assert len(set(batch.targets.tolist())) > len(batch.targets) // 2
    loss = double.loss(stage, batch)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > single.loss(stage, batch).item()
    assert model.encoder.layers[0].attention.query.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="views"):
        ContrastiveTask(
            model.tokenizer, labels, few_examples, objective="supcon", temperature=0.1, batch_size=16, seed=0, views=3
        )


def test_ce_plus_scl_loss_reaches_the_encoder(few_examples):
    labels = LabelVocab.from_examples(few_examples)
    model = classifier(labels.labels).train()
    spec = model.spec("main")
    task = HeadTask(spec, model, few_examples, batch_size=16, scl=(0.5, 0.3))
    batch = task.epoch_batches(0)[0]
    loss = task.loss(model, batch)
    loss.backward()
    ce_only = HeadTask(spec, model, few_examples, batch_size=16).loss(model, batch)
    assert loss.item() != pytest.approx(ce_only.item())
    assert model.encoder.layers[0].feed_forward.up.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_two_stage_supcon_then_frozen_probe(tmp_path, data_dir):
    config = minbert.load_config(
        slice_config(tmp_path, data_dir, train_rows=96),
        [
            "--contrastive.objective",
            "supcon",
            "--contrastive.epochs",
            "1",
            "--contrastive.batch_size",
            "16",
            "--contrastive.temperature",
            "0.1",
            "--train.freeze",
            "encoder",
            "--train.epochs",
            "3",
            "--train.lr",
            "1e-3",
            "--output_dir",
            str(tmp_path / "run"),
        ],
    )
    run = minbert.train(config)
    events = [r["event"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert events.count("contrastive_train") == 6 and events.count("train") == 3 * 6
    tuned = load_file(str(tmp_path / "run" / "model" / "encoder" / "model.safetensors"))
    original = load_file(str(resolve_checkpoint(None) / "model.safetensors"))
    assert not torch.equal(
        tuned["encoder.layer.5.output.dense.weight"], original["encoder.layer.5.output.dense.weight"]
    )
    assert run.summary["trainable_parameters"] == sum(p.numel() for p in run.model.heads.parameters())
    assert json.loads((tmp_path / "run" / "results.json").read_text())["results"]["test"]["accuracy"] > 0


@pytest.mark.slow
def test_setfit_recipe_pairs_then_frozen_probe(tmp_path, data_dir):
    """SetFit's recipe end to end, as configs/fewshot_sst5_pairs.yaml runs it: the pairs stage moves the encoder,
    the probe trains the head alone on top, and the saved model predicts as the trained one."""
    config = minbert.load_config(
        slice_config(tmp_path, data_dir, train_rows=400),
        [
            *("--data.shots_per_class", "2", "--contrastive.objective", "pairs", "--contrastive.pair_iterations", "2"),
            *("--contrastive.batch_size", "16", "--contrastive.lr", "5e-5", "--train.freeze", "encoder"),
            *("--train.epochs", "3", "--output_dir", str(tmp_path / "run")),
        ],
    )
    run = minbert.train(config)
    events = [r["event"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert events.count("contrastive_train") >= 2 * run.summary["train_examples"] // 16
    tuned = load_file(str(tmp_path / "run" / "model" / "encoder" / "model.safetensors"))
    original = load_file(str(resolve_checkpoint(None) / "model.safetensors"))
    assert not torch.equal(
        tuned["encoder.layer.5.output.dense.weight"], original["encoder.layer.5.output.dense.weight"]
    )
    assert run.summary["trainable_parameters"] == sum(p.numel() for p in run.model.heads.parameters())
    texts = ["wake me up at seven", "what is the weather like tomorrow"]
    assert minbert.load(tmp_path / "run" / "model").predict(texts) == run.model.predict(texts)


def test_few_shot_keeps_the_full_label_vocabulary(tmp_path, data_dir):
    config = minbert.load_config(
        slice_config(tmp_path, data_dir, train_rows=400),
        [
            "--data.few_shot",
            "20",
            "--data.label_noise",
            "0.1",
            "--train.epochs",
            "1",
            "--output_dir",
            str(tmp_path / "fs"),
            "--train.eval_before",
            "false",
        ],
    )
    config.data.dev = config.data.test = None
    run = minbert.train(config)
    assert run.summary["train_examples"] == 20
    assert len(run.model.labels) == len({e.label for e in read_examples(config.data.train, "massive")})
