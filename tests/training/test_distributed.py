"""Data-parallel training: 2 gloo processes on CPU give the single-process result at the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from minbert.model.tokenizer import Batch
from minbert.tasks.head_task import HeadBatch
from minbert.tasks.multitask import TaskBatch
from minbert.training.distributed import shard
from tests.training.test_resume import head_rows


def test_shard_splits_every_tensor_of_nested_batches():
    inputs = Batch(torch.arange(10).view(5, 2), torch.ones(5, 2, dtype=torch.long), torch.zeros(5, 2, dtype=torch.long))
    batch = TaskBatch("sts", HeadBatch(inputs, None, torch.arange(5.0)))
    first, second = shard(batch, 0, 2), shard(batch, 1, 2)
    assert first.task == "sts" and first.batch.second is None
    assert first.batch.targets.tolist() == [0.0, 1.0, 2.0] and second.batch.targets.tolist() == [3.0, 4.0]
    assert torch.equal(torch.cat([first.batch.first.input_ids, second.batch.first.input_ids]), inputs.input_ids)
    assert len(shard(HeadBatch(inputs, None, torch.arange(5)), 1, 2)) == 2


@pytest.mark.parametrize("kind", ["single", "multitask"])
def test_two_processes_match_one(tmp_path, data_dir, kind):
    train = {"epochs": 2, "batch_size": 16, "lr": 1e-4, "seed": 5, "progress": False, "threads": 1}
    if kind == "single":
        rows = (data_dir / "massive_en_us" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (tmp_path / "train.jsonl").write_text("".join(rows[:200]), encoding="utf-8")
        (tmp_path / "dev.jsonl").write_text("".join(rows[200:280]), encoding="utf-8")
        config = {  # dropout off: with dropout each process would draw different masks than the single process
            "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl"), "format": "massive"},
            "model": {"max_length": 32, "hidden_size": 64, "dropout": 0.0, "encoder_dropout": 0.0},
            "train": train,
        }
        metric, tolerance = "accuracy", 1e-4
    else:  # 128 SST rows (8 batches) + 80 STS pairs (5 batches): the same 13 global batches per epoch
        cs224n = data_dir / "cs224n_multitask"
        config = {
            "task": "multitask",
            "model": {"max_length": 32, "encoder_dropout": 0.0},
            "tasks": [
                {
                    "name": "sst",
                    "head": {"hidden_size": 64, "dropout": 0.0},
                    "data": {
                        "train": head_rows(cs224n / "ids-sst-train.csv", 129, tmp_path / "sst-train.csv"),
                        "dev": head_rows(cs224n / "ids-sst-dev.csv", 41, tmp_path / "sst-dev.csv"),
                        "format": "cs224n",
                    },
                },
                {
                    "name": "sts",
                    "head": {"kind": "regression", "input": "bi", "dropout": 0.0, "loss": "mse"},
                    "data": {
                        "train": head_rows(cs224n / "sts-train.csv", 81, tmp_path / "sts-train.csv"),
                        "dev": head_rows(cs224n / "sts-dev.csv", 41, tmp_path / "sts-dev.csv"),
                        "format": "sts",
                    },
                },
            ],
            "train": train,
        }
        # The heads agree to 1e-6; rarely seen word-embedding rows get gradients so small that float rounding of the
        # shard sums changes Adam's normalised step (about +-lr each): 26 steps at lr 1e-4 bound that drift by 2.6e-3.
        metric, tolerance = "sst_accuracy", 1e-3
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "minbert",
                "-q",
                "train",
                str(tmp_path / "run.yaml"),
                "--output_dir",
                str(tmp_path / name),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("one", "two"))
    assert two["summary"]["steps"] == one["summary"]["steps"] == 26  # 200 examples / 16 = 13 global batches per epoch
    assert two["results"]["dev"][metric] == one["results"]["dev"][metric]
    for file in ("encoder/model.safetensors", "heads.safetensors"):
        a, b = load_file(str(tmp_path / "one" / "model" / file)), load_file(str(tmp_path / "two" / "model" / file))
        assert max((a[k] - b[k]).abs().max().item() for k in a) < tolerance
    losses = [
        [
            json.loads(line)["loss"]
            for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()
            if '"train"' in line
        ]
        for n in ("one", "two")
    ]
    assert len(losses[0]) == len(losses[1]) == 26
    assert max(abs(x - y) for x, y in zip(*losses, strict=True)) < 1e-3  # rank 0 logs the global batch's loss
    assert not (tmp_path / "two" / "checkpoint").exists()


def test_a_refused_output_dir_stops_every_process_with_one_line(tmp_path, data_dir):
    """Rank 0 alone claims the output_dir; when it refuses one holding an earlier run, the other rank must
    not be left waiting (it hung until killed), whether minbert or torchrun launched the processes."""
    rows = (data_dir / "massive_en_us" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "train.jsonl").write_text("".join(rows[:64]), encoding="utf-8")
    config = {"data": {"train": str(tmp_path / "train.jsonl"), "format": "massive"}, "train": {"epochs": 1}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / ".minbert-run").write_text("")
    (earlier / "results.json").write_text("{}")
    train = ["-m", "minbert", "train", str(tmp_path / "run.yaml"), "--output_dir", str(earlier)]
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for command in ([*train, "--nproc", "2"], [*torchrun, *train]):
        done = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode != 0 and "holds an earlier run" in done.stderr
    assert (earlier / "results.json").read_text() == "{}"
