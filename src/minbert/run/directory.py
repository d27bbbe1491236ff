"""A run's output directory: claiming it (and what --overwrite may remove), its log file, its config,
its resumable checkpoint and its results.json."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from minbert.config import RunConfig, TrainConfig
from minbert.errors import MinbertError
from minbert.runtime import resolve_device, seed_everything, set_threads
from minbert.training.distributed import is_main

log = logging.getLogger("minbert")
CHECKPOINT_DIR = "checkpoint"  # output_dir/checkpoint/: the resumable training state (see training/resume.py)
MARKER = ".minbert-run"  # written first into every output_dir: what --overwrite may clear is a minbert run's
# What a run writes into its output_dir; the first three are an earlier run worth keeping (a finished or a
# resumable one). A directory with only the config and logs of a run that failed is simply reused.
RUN_FILES = (
    *("results.json", "model", CHECKPOINT_DIR, "config.yaml", "metrics.jsonl", "report.md", "train.log"),
    "per_class.json",
)
KEPT_RUN_FILES = RUN_FILES[:3]
RUN_PLOTS = ("learning_curves.png", "lr_schedule.png", "reliability.png", "oos_scores.png", "confusion_*.png")


def is_run_directory(directory: Path) -> bool:
    """A directory a minbert run wrote: its marker, or (runs from before the marker) results.json, a model or a
    resumable training state."""
    return (
        (directory / MARKER).is_file()
        or (directory / "results.json").is_file()
        or (directory / "model" / "minbert.json").is_file()
        or has_checkpoint(directory / CHECKPOINT_DIR)
    )


def claim_output_dir(output_dir: Path, cfg: TrainConfig, source: Path | None = None) -> None:
    """An output_dir holding an earlier run is refused unless the run resumes it (--resume) or replaces it
    (--overwrite); replacing first removes the earlier run's results and model, so a run that then fails
    never leaves the old model beside the new config. Only a minbert run's own files are ever removed: a folder
    of other files named like them is refused, and so is a folder inside `source` (the run a refit reads)."""
    if source is not None and output_dir.resolve().is_relative_to(source.resolve()):
        raise MinbertError(
            f"{output_dir}: is inside the run it reads ({source}), which stays as it was; choose another --output_dir"
        )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MinbertError(
            f"{output_dir}: cannot create the output_dir ({e.strerror}); choose another --output_dir"
        ) from None
    earlier = [name for name in RUN_FILES if (output_dir / name).exists()]
    plots = sorted({p for pattern in RUN_PLOTS for p in output_dir.glob(pattern)})
    if (earlier or plots) and not is_run_directory(output_dir) and not _failed_run(output_dir):
        named = ", ".join([*earlier, *(p.name for p in plots)][:4])
        raise MinbertError(
            f"{output_dir}: holds files that no minbert run wrote ({named}); minbert never replaces them: "
            "choose another --output_dir"
        )
    if any(name in KEPT_RUN_FILES for name in earlier) and not (cfg.resume or cfg.overwrite):
        raise MinbertError(
            f"{output_dir}: holds an earlier run ({', '.join(earlier)}); pass --overwrite to replace it, --resume to "
            "continue it, or choose another --output_dir"
        )
    if earlier and cfg.overwrite and not cfg.resume:
        for name in earlier:
            path = output_dir / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        for plot in plots:
            plot.unlink()
    probe = output_dir / ".minbert-write-test"
    try:
        probe.write_text("")
        probe.unlink()
        (output_dir / MARKER).write_text("a minbert run directory: --overwrite may replace what the run wrote\n")
    except OSError as e:
        raise MinbertError(
            f"{output_dir}: cannot write there ({e.strerror}); fix its permissions or choose another --output_dir"
        ) from None


def _failed_run(directory: Path) -> bool:
    """The config and log a failed run of an older minbert left (before the marker): reused as before."""
    return (directory / "config.yaml").is_file() and (directory / "train.log").is_file()


def log_to_file(output_dir: Path, append: bool = False) -> logging.Handler:
    """train.log: everything minbert logs while the run lasts (rank 0 only)."""
    if not is_main():
        return logging.NullHandler()
    handler = logging.FileHandler(output_dir / "train.log", mode="a" if append else "w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("minbert").addHandler(handler)
    logging.getLogger("minbert").setLevel(logging.INFO)
    return handler


def close_log(handler: logging.Handler) -> None:
    logging.getLogger("minbert").removeHandler(handler)
    handler.close()


def log_failure(handler: logging.Handler, error: BaseException) -> None:
    """train.log says why the run stopped (the console gets the error from the caller)."""
    failure = ("run failed: %s: %s", (type(error).__name__, error))
    handler.handle(logging.LogRecord("minbert", logging.ERROR, __file__, 0, failure[0], failure[1], None))


@contextlib.contextmanager
def logged_run(output_dir: Path | None, cfg: TrainConfig) -> Iterator[None]:
    """train.log for the run's duration (appended to when the run resumes from a checkpoint), with the reason
    when it fails; no output_dir, no log file."""
    if output_dir is None:
        yield
        return
    handler = log_to_file(output_dir, append=cfg.resume and has_checkpoint(output_dir / CHECKPOINT_DIR))
    try:
        yield
    except BaseException as e:
        log_failure(handler, e)
        raise
    finally:
        close_log(handler)


def start_run(config: RunConfig, output_dir: Path | None) -> torch.device:
    """What every run does first: record the resolved config (with an output_dir), seed, pick threads and device."""
    if output_dir is not None and is_main():
        (output_dir / "config.yaml").write_text(config.with_absolute_paths().to_yaml(), encoding="utf-8")
    seed_everything(config.train.seed)
    set_threads(config.train.threads)
    return resolve_device(config.train.device)


def has_checkpoint(checkpoints: Path) -> bool:
    """A trainer state of any stage (trainer.pt, contrastive_trainer.pt) to resume from."""
    return any(checkpoints.glob("*trainer.pt"))


def resuming(cfg: TrainConfig, checkpoints: Path | None) -> bool:
    """A resumed run keeps its metrics.jsonl and train.log; without a checkpoint, --resume starts over."""
    if checkpoints is None:
        if cfg.resume:
            raise MinbertError("train.resume continues from output_dir/checkpoint/: give an output directory")
        return False
    found = cfg.resume and has_checkpoint(checkpoints)
    if cfg.resume and not found:
        log.warning("train.resume: no checkpoint in %s; starting the run from the beginning", checkpoints)
    return bool(found)


def finish_checkpoints(cfg: TrainConfig, checkpoints: Path) -> None:
    """A finished run's model is in model/; the (large) resumable state is deleted unless asked to keep it."""
    if not cfg.keep_checkpoint and checkpoints.is_dir():
        shutil.rmtree(checkpoints)


def write_results(output_dir: Path, results: dict[str, dict[str, float]], summary: dict[str, Any]) -> None:
    (output_dir / "results.json").write_text(
        json.dumps({"results": results, "summary": summary}, indent=2) + "\n", encoding="utf-8"
    )
