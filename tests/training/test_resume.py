"""A run killed with SIGKILL mid-training resumes from its checkpoint and ends with the same numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from minbert import load_config, train
from minbert.training.metrics_log import read_metrics

TRAIN = {
    "epochs": 3,
    "batch_size": 16,
    "lr": 1e-4,
    "warmup_ratio": 0.1,
    "seed": 7,
    "threads": 1,
    "progress": False,
    "checkpoint_every": 4,
    "checkpoint_interval_s": 0,
    "eval_every": 10,
}
STEPS = {"single": 45, "multitask": 48}  # 240 rows / 16 = 15 steps per epoch; multitask: 10 SST + 6 STS batches


def head_rows(source, rows: int, target) -> str:
    """The header and first rows of a real file, written to `target`."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text("".join(lines[:rows]), encoding="utf-8")
    return str(target)


def write_config(tmp_path, data_dir, kind: str = "single") -> str:
    if kind == "single":
        rows = (data_dir / "massive_en_us" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (tmp_path / "train.jsonl").write_text("".join(rows[:240]), encoding="utf-8")
        (tmp_path / "dev.jsonl").write_text("".join(rows[240:320]), encoding="utf-8")
        config = {
            "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl"), "format": "massive"},
            "model": {"max_length": 32, "hidden_size": 64},
            "train": TRAIN,
        }
    else:  # an SST-5 head on single sentences and an STS bi-encoder head, sampled in proportion
        cs224n = data_dir / "cs224n_multitask"
        config = {
            "task": "multitask",
            "model": {"max_length": 32},
            "tasks": [
                {
                    "name": "sst",
                    "head": {"hidden_size": 64},
                    "data": {
                        "train": head_rows(cs224n / "ids-sst-train.csv", 161, tmp_path / "sst-train.csv"),
                        "dev": head_rows(cs224n / "ids-sst-dev.csv", 41, tmp_path / "sst-dev.csv"),
                        "format": "cs224n",
                    },
                },
                {
                    "name": "sts",
                    "head": {"kind": "regression", "input": "bi", "features": "cosine", "loss": "cosent"},
                    "data": {
                        "train": head_rows(cs224n / "sts-train.csv", 97, tmp_path / "sts-train.csv"),
                        "dev": head_rows(cs224n / "sts-dev.csv", 41, tmp_path / "sts-dev.csv"),
                        "format": "sts",
                    },
                },
            ],
            "train": TRAIN,
        }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize("kind", ["single", "multitask"])
def test_killed_run_resumes_to_identical_results(tmp_path, data_dir, kind):
    config = write_config(tmp_path, data_dir, kind)
    reference = train(load_config(config, ["--output_dir", str(tmp_path / "whole")]))

    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "minbert", "-q", "train", config, "--output_dir", str(killed_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 600
    metrics = killed_dir / "metrics.jsonl"
    while True:  # kill once a mid-epoch checkpoint exists and training has moved past it
        steps = sum('"event": "train"' in line for line in metrics.read_text().splitlines()) if metrics.is_file() else 0
        if steps >= 22 and (killed_dir / "checkpoint" / "trainer.pt").is_file():
            break
        assert process.poll() is None, (
            f"training ended before it could be killed: {process.stderr.read().decode()[-1500:]}"
        )
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed_dir / "results.json").exists()
    saved_step = torch.load(killed_dir / "checkpoint" / "trainer.pt", weights_only=True)["step"]
    assert 0 < saved_step < STEPS[kind]  # killed part-way

    resumed = train(load_config(config, ["--output_dir", str(killed_dir), "--train.resume", "true"]))
    assert resumed.results == reference.results
    assert (
        resumed.summary["steps"] == reference.summary["steps"]
        and resumed.summary["best_step"] == reference.summary["best_step"]
    )
    whole, again = reference.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(whole[k], again[k]) for k in whole)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(killed_dir / "metrics.jsonl")]
    expected = [
        {k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / "whole" / "metrics.jsonl")
    ]
    assert strip == expected  # the records written after the checkpoint were replaced, not duplicated
    assert not (killed_dir / "checkpoint").exists()  # a finished run deletes its resumable state
    assert (
        json.loads((killed_dir / "results.json").read_text())["results"]
        == json.loads((tmp_path / "whole" / "results.json").read_text())["results"]
    )


def test_resume_without_checkpoint_starts_over(tmp_path, data_dir, caplog):
    config = write_config(tmp_path, data_dir)
    with caplog.at_level("WARNING"):
        run = train(
            load_config(
                config, ["--output_dir", str(tmp_path / "fresh"), "--train.resume", "true", "--train.epochs", "1"]
            )
        )
    assert run.summary["steps"] == 15 and "no checkpoint" in caplog.text


@pytest.mark.parametrize("sampling", ["proportional", "annealed"])
def test_multitask_epochs_are_a_pure_function_of_the_epoch(tokenizer, sampling):
    from minbert.data.readers import Example
    from minbert.model.heads import HeadSpec
    from minbert.model.task_model import Model
    from minbert.tasks.head_task import HeadTask
    from minbert.tasks.multitask import MultitaskTask

    a = [Example(f"text {i}", str(i % 2), "t", i) for i in range(50)]
    b = [Example(f"other {i}", str(i % 3), "t", i) for i in range(20)]
    specs = [HeadSpec("a", labels=["0", "1"]), HeadSpec("b", labels=["0", "1", "2"])]
    model = Model.from_checkpoint(None, specs)
    tasks = [HeadTask(specs[0], model, a, batch_size=8), HeadTask(specs[1], model, b, batch_size=8)]

    def signature(mixed: MultitaskTask, epoch: int) -> list:
        return [
            (x.task, x.batch.targets.tolist(), x.batch.first.input_ids.tolist()) for x in mixed.epoch_batches(epoch)
        ]

    first = MultitaskTask(tasks, sampling=sampling, epochs=3, seed=5)
    in_order = [signature(first, e) for e in range(3)]
    fresh = MultitaskTask(tasks, sampling=sampling, epochs=3, seed=5)
    assert signature(fresh, 2) == in_order[2]  # as a resumed run at epoch 3 would build it
    seen_b = [t for epoch in in_order for t, targets, _ in epoch if t == "b"]
    assert len(seen_b) > 3  # task b (3 batches per pass) ran out and started new passes
