"""train.class_weights: balanced as scikit-learn computes it, by label, and in the CE / BCE losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from minbert import MinbertError, load_config
from minbert.model.heads import HeadSpec
from minbert.tasks.head_task import class_weights, head_loss


def test_balanced_weights_are_scikit_learns():
    spec = HeadSpec("main", labels=["a", "b", "c"])
    targets = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 0])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=targets.numpy())
    assert class_weights(spec, targets, "balanced").numpy() == pytest.approx(expected)
    assert class_weights(spec, targets, "none") is None


def test_weights_by_label_and_their_errors():
    spec = HeadSpec("main", labels=["a", "b", "c"])
    assert class_weights(spec, torch.tensor([0, 1]), {"b": 3.0}).tolist() == [1.0, 3.0, 1.0]
    with pytest.raises(MinbertError, match="'z' is not a label of task 'main'"):
        class_weights(spec, torch.tensor([0]), {"z": 2.0})
    with pytest.raises(MinbertError, match="above 0"):
        class_weights(spec, torch.tensor([0]), {"a": 0.0})


def test_weighted_losses_by_hand():
    raw = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([0, 1, 1])
    weights = torch.tensor([1.0, 3.0])
    ce = head_loss(HeadSpec("main", labels=["a", "b"]), raw, targets, weights)
    per_row = F.cross_entropy(raw, targets, reduction="none")
    assert ce.item() == pytest.approx(((per_row * weights[targets]).sum() / weights[targets].sum()).item())
    logits = torch.tensor([0.5, -1.0, 2.0])
    bce = head_loss(HeadSpec("main", loss="bce", labels=["a", "b"]), logits, targets.float(), weights)
    by_hand = -(3.0 * targets * F.logsigmoid(logits) + (1 - targets) * F.logsigmoid(-logits)).mean()
    assert bce.item() == pytest.approx(by_hand.item())


def test_class_weights_config_is_checked(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: multitask\ntasks: [{name: a, data: {train: t.jsonl}}]\ntrain: {class_weights: {x: 2}}\n")
    with pytest.raises(MinbertError, match="names one head's labels"):
        load_config(path)
    assert (
        load_config(None, ["--data.train", "t.jsonl", "--train.class_weights", "balanced"]).train.class_weights
        == "balanced"
    )
