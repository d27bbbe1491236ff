"""Data-parallel training: 2 gloo processes on CPU give the single-process result at the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
import yaml
from safetensors.torch import load_file

from minbert.model.tokenizer import Batch
from minbert.tasks.classification import TrainingBatch
from minbert.tasks.head_task import HeadBatch
from minbert.tasks.multitask import TaskBatch
from minbert.train.distributed import shard


def test_shard_splits_every_tensor_of_nested_batches():
    inputs = Batch(torch.arange(10).view(5, 2), torch.ones(5, 2, dtype=torch.long), torch.zeros(5, 2, dtype=torch.long))
    batch = TaskBatch("sts", HeadBatch(inputs, None, torch.arange(5.0)))
    first, second = shard(batch, 0, 2), shard(batch, 1, 2)
    assert first.task == "sts" and first.batch.second is None
    assert first.batch.targets.tolist() == [0.0, 1.0, 2.0] and second.batch.targets.tolist() == [3.0, 4.0]
    assert torch.equal(torch.cat([first.batch.first.input_ids, second.batch.first.input_ids]), inputs.input_ids)
    assert len(shard(TrainingBatch(inputs, torch.arange(5)), 1, 2)) == 2


def test_two_processes_match_one(tmp_path, data_dir):
    rows = (data_dir / "massive_en_us" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "train.jsonl").write_text("".join(rows[:200]), encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text("".join(rows[200:280]), encoding="utf-8")
    config = {  # dropout off: with dropout each process would draw different masks than the single process
        "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl"), "format": "massive"},
        "model": {"max_length": 32, "hidden_size": 64, "dropout": 0.0, "encoder_dropout": 0.0},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1e-4, "seed": 5, "progress": False, "threads": 1},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        done = subprocess.run(
            [sys.executable, "-m", "minbert", "-q", "train", str(tmp_path / "run.yaml"), "--output_dir", str(tmp_path / name), *extra],
            capture_output=True, text=True, timeout=900, check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("one", "two"))
    assert two["summary"]["steps"] == one["summary"]["steps"] == 26  # 200 examples / 16 = 13 global batches per epoch
    assert two["results"]["dev"]["accuracy"] == one["results"]["dev"]["accuracy"]
    for file in ("encoder/model.safetensors", "head.safetensors"):
        a, b = load_file(str(tmp_path / "one" / "model" / file)), load_file(str(tmp_path / "two" / "model" / file))
        assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    losses = [[json.loads(line)["loss"] for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines() if '"train"' in line] for n in ("one", "two")]
    assert len(losses[0]) == len(losses[1]) == 26
    assert max(abs(x - y) for x, y in zip(*losses, strict=True)) < 1e-3  # rank 0 logs the global batch's loss
    assert not (tmp_path / "two" / "checkpoint").exists()
