"""SetFit itself, as a contender beside minbert on the same few-shot splits, checkpoint and CPU.

    python experiments/setfit_contender.py --setup        # make experiments/.venv-setfit once (setfit 1.2, CPU torch)
    python experiments/setfit_contender.py --check        # train SetFit on a tiny split there, print its result

SetFit runs in its own environment (as the benchmark's sentence-transformers ONNX contenders do): minbert's own
code never imports it. The experiment scripts call `run_setfit(checkpoint, train, test, seed, folder)`, which writes
the split to files, trains SetFit in that environment with the paper's protocol (contrastive pairs, 20 iterations,
batch 16, one epoch, body lr 2e-5, logistic-regression head) and returns its test accuracy and wall time. In a
folder of its own a stopped run resumes from SetFit's last checkpoint (every 500 steps, SetFit's default): with
MPNet-base a CLINC150 split trains for 2-4 hours on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-setfit"
REQUIREMENTS = ["torch==2.13.0", "setfit==1.2.0"]


def setup() -> None:
    """Make (or keep) SetFit's environment; torch is the CPU wheel this machine has on disk."""
    python = VENV / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    for requirement in REQUIREMENTS:  # torch first, so setfit's own torch requirement is already met
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", requirement], check=True)


def run_setfit(
    checkpoint: str | Path,
    train: list[tuple[str, str]],
    test: list[tuple[str, str]],
    seed: int,
    threads: int = 1,
    folder: Path | None = None,
) -> dict[str, Any]:
    """SetFit trained on `train` (text, label) rows from `checkpoint` (a local directory), scored on `test`. With a
    `folder`, the run lives there: a run stopped part-way goes on from its last checkpoint, and a finished one
    returns its result (the caller starts the folder afresh when the rows or the machine change)."""
    python = VENV / "bin" / "python"
    if not python.is_file():
        raise SystemExit(f"SetFit's environment is missing: run `python {Path(__file__).name} --setup` once")
    if folder is None:
        with tempfile.TemporaryDirectory() as temporary:
            return run_in(Path(temporary), python, checkpoint, train, test, seed, threads)
    return run_in(folder, python, checkpoint, train, test, seed, threads)


def run_in(
    folder: Path,
    python: Path,
    checkpoint: str | Path,
    train: list[tuple[str, str]],
    test: list[tuple[str, str]],
    seed: int,
    threads: int,
) -> dict[str, Any]:
    """`run_setfit` in `folder`: its result once it has one, else SetFit run there (going on from a checkpoint)."""
    out = folder / "result.json"
    if not out.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for name, rows in (("train", train), ("test", test)):
            files[name] = folder / f"{name}.jsonl"
            files[name].write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
        command = [
            *(str(python), __file__, "--worker", "--checkpoint", str(checkpoint), "--seed", str(seed)),
            *("--train", str(files["train"]), "--test", str(files["test"]), "--out", str(out)),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        log = folder / "setfit.log"  # its training loss and epoch every 50 steps: the progress of a run of hours
        with log.open("a") as stream:  # its checkpoints/ go to the folder too
            done = subprocess.run(command, env=env, stdout=stream, stderr=subprocess.STDOUT, cwd=folder)
        if done.returncode:
            raise RuntimeError(f"SetFit failed ({log}): {log.read_text().strip()[-1500:]}")
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # done: its 1.3 GB (MPNet) are no longer needed
    return dict(json.loads(out.read_text()))


def last_checkpoint(folder: Path) -> Path | None:
    """The latest checkpoint SetFit finished writing in `folder` (its trainer state is written last, so a sitting
    stopped while saving leaves one without it), or None."""
    finished = []
    for path in folder.glob("checkpoint-*"):
        if not path.name.removeprefix("checkpoint-").isdigit():
            continue
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        finished.append(path)
    return max(finished, key=lambda path: int(path.name.removeprefix("checkpoint-")), default=None)


def worker(args: argparse.Namespace) -> None:
    """Runs inside SetFit's environment."""
    import torch
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    def rows(path: str) -> list[dict]:
        return [json.loads(line) for line in Path(path).read_text().splitlines()]

    train, test = rows(args.train), rows(args.test)
    started = time.perf_counter()
    model = SetFitModel.from_pretrained(args.checkpoint)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            batch_size=16,
            num_epochs=1,
            num_iterations=20,
            body_learning_rate=2e-5,
            seed=args.seed,
            show_progress_bar=False,
        ),
        train_dataset=Dataset.from_list(train),
    )
    resume = last_checkpoint(Path("checkpoints"))
    if resume is not None:  # SetFit's train() offers no resume, its sentence-transformers trainer does
        train_body = trainer.st_trainer.train
        trainer.st_trainer.train = lambda: train_body(resume_from_checkpoint=str(resume))
    trainer.train()
    trained = time.perf_counter() - started
    predicted = list(model.predict([r["text"] for r in test], batch_size=64))
    accuracy = sum(str(p) == r["label"] for p, r in zip(predicted, test, strict=True)) / len(test)
    written = Path(args.out).with_suffix(".tmp")  # a result file is whole or absent: a run that has one is done
    written.write_text(
        json.dumps(
            {
                "accuracy": accuracy,
                "train_seconds": trained,
                "wall_s": time.perf_counter() - started,
                "resumed_from": None if resume is None else resume.name,
            }
        )
    )
    os.replace(written, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", action="store_true", help="make SetFit's environment")
    parser.add_argument("--check", action="store_true", help="train SetFit on a tiny split and print the result")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--checkpoint", "--train", "--test", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.setup:
        setup()
    if args.check:
        sys.path.insert(0, str(HERE.parent / "src"))
        from minbert.model.checkpoint import resolve_checkpoint

        train = [(t, y) for t, y in [("wake me up at seven", "alarm"), ("play some jazz", "music")] * 4]
        print(run_setfit(resolve_checkpoint(None), train, train[:2], seed=0))


if __name__ == "__main__":
    main()
