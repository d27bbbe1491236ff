"""Parameter groups (LLRD, weight-decay exclusions, head LR), freezing, and LR schedules."""

from __future__ import annotations

import math

import pytest
import torch

from minbert.model.encoder import Encoder, EncoderConfig
from minbert.model.heads import ClassificationHead
from minbert.training.optim import apply_freezing, parameter_groups
from minbert.training.schedule import build_scheduler, lr_factor


class TinyClassifier(torch.nn.Module):
    def __init__(self, layers: int = 4) -> None:
        super().__init__()
        config = EncoderConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=16,
        )
        self.encoder = Encoder(config)
        self.head = ClassificationHead(16, 3, hidden_size=8)


def lr_of(groups, parameter) -> float:
    return next(g["lr"] for g in groups if any(p is parameter for p in g["params"]))


def wd_of(groups, parameter) -> float:
    return next(g["weight_decay"] for g in groups if any(p is parameter for p in g["params"]))


def test_llrd_gives_each_layer_its_rate():
    model = TinyClassifier(layers=4)
    groups = parameter_groups(model, lr=1e-4, head_lr=1e-3, weight_decay=0.01, llrd=0.5)
    enc = model.encoder
    assert lr_of(groups, enc.layers[3].attention.query.weight) == pytest.approx(1e-4)
    assert lr_of(groups, enc.layers[2].feed_forward.up.weight) == pytest.approx(5e-5)
    assert lr_of(groups, enc.layers[0].attention.out.weight) == pytest.approx(1e-4 * 0.5**3)
    assert lr_of(groups, enc.embeddings.word.weight) == pytest.approx(1e-4 * 0.5**4)
    assert lr_of(groups, enc.pooler.dense.weight) == pytest.approx(1e-4)
    assert lr_of(groups, model.head.layers[1].weight) == pytest.approx(1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_no_weight_decay_on_bias_and_layernorm():
    model = TinyClassifier()
    groups = parameter_groups(model, lr=1e-4, weight_decay=0.1)
    enc = model.encoder
    assert wd_of(groups, enc.layers[0].attention.query.weight) == 0.1
    assert wd_of(groups, enc.layers[0].attention.query.bias) == 0.0
    assert wd_of(groups, enc.layers[0].attention_norm.weight) == 0.0
    assert wd_of(groups, enc.embeddings.norm.weight) == 0.0
    assert wd_of(groups, model.head.layers[-1].bias) == 0.0


@pytest.mark.parametrize(
    "mode, frozen_prefixes, trainable_prefixes",
    [
        ("encoder", ["encoder."], ["head."]),
        ("embeddings", ["encoder.embeddings."], ["encoder.layers.0.", "head."]),
        (
            "bottom:2",
            ["encoder.embeddings.", "encoder.layers.0.", "encoder.layers.1."],
            ["encoder.layers.2.", "encoder.pooler.", "head."],
        ),
        ("none", [], ["encoder.", "head."]),
    ],
)
def test_freezing_modes(mode, frozen_prefixes, trainable_prefixes):
    model = TinyClassifier()
    apply_freezing(model, mode)
    for name, parameter in model.named_parameters():
        if any(name.startswith(p) for p in frozen_prefixes):
            assert not parameter.requires_grad, name
        if any(name.startswith(p) for p in trainable_prefixes):
            assert parameter.requires_grad, name
    groups = parameter_groups(model, lr=1e-4)
    assert all(p.requires_grad for g in groups for p in g["params"])


def test_schedule_values_at_known_steps():
    assert lr_factor(0, 100, 10, "linear") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "linear") == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, "linear") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, "linear") == pytest.approx(0.0)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(10 + 90 // 4, 100, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 22 / 90)))
    assert lr_factor(3, 100, 10, "constant") == pytest.approx(0.4)
    assert lr_factor(80, 100, 10, "constant") == 1.0
    assert lr_factor(0, 100, 0, "linear") == 1.0


def test_scheduler_drives_every_group_including_llrd():
    model = TinyClassifier()
    optimizer = torch.optim.AdamW(parameter_groups(model, lr=1e-4, head_lr=1e-3, llrd=0.5))
    scheduler = build_scheduler(optimizer, total_steps=20, warmup_ratio=0.1, kind="linear")
    peaks = [g["initial_lr"] for g in optimizer.param_groups]
    seen = []
    for _ in range(20):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx([p * 0.5 for p in peaks])
    assert seen[1] == pytest.approx(peaks)
    assert seen[11] == pytest.approx([p * (1 - 9 / 18) for p in peaks])


def test_freezing_errors_are_user_errors():
    from minbert import MinbertError
    from minbert.training.optim import build_optimizer

    with pytest.raises(MinbertError, match=r"bottom:9 but the encoder has 4 layers"):
        apply_freezing(TinyClassifier(layers=4), "bottom:9")
    model = TinyClassifier()
    model.requires_grad_(False)
    with pytest.raises(MinbertError, match="no trainable parameters"):
        build_optimizer(model, lr=1e-4)
