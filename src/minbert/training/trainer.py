"""The training loop. It knows nothing about tasks: a task gives it batches, a loss and dev metrics.

for each epoch: for each batch: loss -> backward -> (every grad_accum) clip, step, schedule
evaluate on dev every epoch or every N steps; keep the best weights; stop early on patience
save a resumable checkpoint at epoch ends (or every N steps); `resume` continues from it
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from minbert.config import TrainConfig
from minbert.runtime import autocast
from minbert.training.distributed import DataParallelLoss, is_main, world
from minbert.training.gradients import KeptEmbeddingGradients, clip_grad_norm
from minbert.training.metrics_log import MetricsLog
from minbert.training.optim import build_optimizer
from minbert.training.resume import load_state, restore_rng, save_state
from minbert.training.schedule import build_scheduler
from minbert.training.step_losses import StepLosses

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 30.0  # a progress line this often when stderr is not a terminal


class Task(Protocol):
    """What the trainer needs from a task; the model argument is whatever module the task trains."""

    @property
    def num_train_examples(self) -> int: ...

    def epoch_batches(self, epoch: int) -> Sequence[Any]: ...

    def loss(self, model: Any, batch: Any) -> torch.Tensor: ...

    def evaluate(self, model: Any) -> dict[str, float] | None: ...


@dataclass
class FitResult:
    best_metric: float | None
    best_step: int
    best_epoch: float
    steps: int
    stopped_early: bool
    train_seconds: float
    examples_seen: int
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / max(self.train_seconds, 1e-9)


# Called with (step, dev metrics) after each evaluation: progress callbacks, a sweep pruning its trial.
EvaluationHook = Callable[[int, dict[str, float]], None]


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        task: Task,
        config: TrainConfig,
        metrics: MetricsLog,
        device: torch.device,
        stage: str = "",
        checkpoint_dir: Path | None = None,
        on_evaluate: EvaluationHook | None = None,
    ) -> None:
        """`stage` prefixes the metrics.jsonl events of a run with several stages (e.g. 'contrastive_');
        `checkpoint_dir` (None = not resumable) holds the state that `config.resume` continues from."""
        self.model, self.task, self.config, self.metrics, self.device, self.stage = (
            model,
            task,
            config,
            metrics,
            device,
            stage,
        )
        self.checkpoint_dir = checkpoint_dir
        self.on_evaluate = (
            on_evaluate  # called with (step, dev metrics) after each evaluation, e.g. to prune a sweep trial
        )
        self.metric = config.metric or "accuracy"  # the run sets it (run.selection_metric); unset: accuracy
        self.higher_is_better = self.metric != "loss"

    def fit(self) -> FitResult:
        with KeptEmbeddingGradients(self.model, enabled=world()[1] == 1) as self.kept:
            return self._fit()

    def _fit(self) -> FitResult:
        cfg = self.config
        first_epoch = self.task.epoch_batches(0)
        steps_per_epoch = math.ceil(len(first_epoch) / cfg.grad_accum)
        total_steps = steps_per_epoch * cfg.epochs
        optimizer = build_optimizer(
            self.model, lr=cfg.lr, head_lr=cfg.head_lr, weight_decay=cfg.weight_decay, llrd=cfg.llrd
        )
        scheduler = build_scheduler(optimizer, total_steps, cfg.warmup_ratio, cfg.schedule)
        # Clip what the optimizer updates; walking every module per step is a fifth of a cached-probe epoch.
        trainable = [p for group in optimizer.param_groups for p in group["params"]]
        self.model.to(self.device)
        self.kept.reset()
        result = FitResult(None, 0, 0.0, 0, False, 0.0, 0)
        self.best_state: dict[str, torch.Tensor] | None = None
        self.pending_losses: StepLosses | None = None  # this epoch's step losses not yet in metrics.jsonl
        self.bad_evaluations = 0
        self.eval_seconds = 0.0
        rank, processes = world()
        parallel_loss = DataParallelLoss(self.model, self.task) if processes > 1 else None
        if processes > 1:
            log.info(
                "data parallel: rank %d of %d processes, each takes its share of every batch of %d",
                rank,
                processes,
                cfg.batch_size,
            )
        step, start_epoch, start_batch, trained_seconds = 0, 0, 0, 0.0
        resumed = load_state(self.checkpoint_path) if cfg.resume and self.checkpoint_path else None
        if resumed is not None:
            step, start_epoch, start_batch, trained_seconds = self._restore(resumed, optimizer, scheduler, result)
            first_epoch = self.task.epoch_batches(start_epoch) if start_epoch else first_epoch
            log.info(
                "resumed from %s: step %d, epoch %d, batch %d", self.checkpoint_path, step, start_epoch + 1, start_batch
            )
        elif cfg.eval_before:
            self._evaluate(result, step=0, epoch=0.0)
        self.last_checkpoint = time.perf_counter()

        started = time.perf_counter() - trained_seconds
        rate = 0.0
        for epoch in range(start_epoch, cfg.epochs):
            if self.bad_evaluations_exhausted():  # resumed with a patience its evaluations have already used up
                log.info("early stop: no dev %s improvement in %d evaluations", self.metric, self.bad_evaluations)
                result.stopped_early = True
                break
            batches = first_epoch if epoch == start_epoch else self.task.epoch_batches(epoch)
            skip = start_batch if epoch == start_epoch else 0
            self.model.train()
            bar = tqdm(
                total=len(batches),
                initial=skip,
                desc=f"{self.stage}epoch {epoch + 1}/{cfg.epochs}",
                disable=not cfg.progress or rank > 0 or not sys.stderr.isatty(),
                leave=False,
            )
            next_report = time.perf_counter() + PROGRESS_EVERY_S
            epoch_started, epoch_examples = time.perf_counter(), 0
            losses = StepLosses(self.metrics, f"{self.stage}train", lazy=self.device.type != "cpu")
            self.pending_losses = losses
            for i, batch in enumerate(batches):
                if i < skip:
                    continue
                batch = batch.to(self.device)
                with autocast(self.device, cfg.bf16):
                    loss = parallel_loss(batch) if parallel_loss else self.task.loss(self.model, batch)
                (loss / cfg.grad_accum).backward()
                bar.update(1)
                epoch_examples += len(batch)
                losses.add(parallel_loss.global_value(loss) if parallel_loss else loss)
                if (i + 1) % cfg.grad_accum and i + 1 != len(batches):
                    continue
                if cfg.max_grad_norm:
                    clip_grad_norm(trainable, cfg.max_grad_norm, self.kept.touched_rows())
                lrs = [group["lr"] for group in optimizer.param_groups]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                self.kept.reset()
                step += 1
                rate = epoch_examples / max(time.perf_counter() - epoch_started, 1e-9)
                losses.close_step(step, epoch=epoch + (i + 1) / len(batches), lr=max(lrs))
                if losses.running is not None:
                    bar.set_postfix(loss=f"{losses.running:.4f}", lr=f"{max(lrs):.2e}", ex_s=f"{rate:.0f}")
                if bar.disable and cfg.progress and rank == 0 and time.perf_counter() >= next_report:
                    # stderr is a file or a pipe: plain lines now and then instead of a bar's carriage returns
                    next_report = time.perf_counter() + PROGRESS_EVERY_S
                    losses.flush()
                    log.info(
                        "%sepoch %d/%d: batch %d/%d, loss %.4f, lr %.2e, %.0f examples/s",
                        self.stage,
                        epoch + 1,
                        cfg.epochs,
                        i + 1,
                        len(batches),
                        losses.running,
                        max(lrs),
                        rate,
                    )
                if (
                    cfg.eval_every
                    and step % cfg.eval_every == 0
                    and self._evaluate(result, step, epoch + (i + 1) / len(batches))
                ):
                    break
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and i + 1 < len(batches):
                    self._checkpoint(optimizer, scheduler, result, step, epoch, i + 1, time.perf_counter() - started)
            bar.close()
            result.examples_seen += epoch_examples
            # The epoch mean, not the progress bar's moving average: that follows the last few batches and
            # swings with them (small contrastive batches), which reads like the model getting worse.
            log.info(
                "epoch %d/%d: mean loss %.4f over %d batches, %.0f examples/s",
                epoch + 1,
                cfg.epochs,
                *losses.epoch_mean(),
                rate,
            )
            if result.stopped_early:  # by an evaluation inside the epoch (eval_every)
                break
            if not cfg.eval_every and self._evaluate(result, step, float(epoch + 1)):
                break
            if epoch + 1 < cfg.epochs:
                self._checkpoint(optimizer, scheduler, result, step, epoch + 1, 0, time.perf_counter() - started)
        if cfg.eval_every and step % cfg.eval_every and not result.stopped_early:
            self._evaluate(result, step, float(cfg.epochs))  # the last steps were never evaluated
        if cfg.keep_checkpoint:  # asked to keep one: the final state, however short the run was
            self._checkpoint(
                optimizer, scheduler, result, step, cfg.epochs, 0, time.perf_counter() - started, force=True
            )
        result.train_seconds = time.perf_counter() - started - self.eval_seconds
        result.steps = step
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        return result

    @property
    def checkpoint_path(self) -> Path | None:
        return self.checkpoint_dir / f"{self.stage}trainer.pt" if self.checkpoint_dir else None

    def _checkpoint(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        result: FitResult,
        step: int,
        epoch: int,
        batch: int,
        seconds: float,
        force: bool = False,
    ) -> None:
        """Save everything a resumed run needs, at an optimizer-step boundary (no pending gradients);
        at most every checkpoint_interval_s seconds unless `force`."""
        if self.pending_losses is not None:  # the state records how many metrics.jsonl lines it covers
            self.pending_losses.flush()
        path = self.checkpoint_path
        due = (
            force
            or self.config.checkpoint_every
            or time.perf_counter() - self.last_checkpoint >= self.config.checkpoint_interval_s
        )
        if path is None or not is_main() or not due:
            return
        save_state(
            path,
            {
                "model": self.model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "epoch": epoch,
                "batch": batch,
                "seconds": seconds,
                "result": asdict(result),
                "best_state": self.best_state,
                "bad_evaluations": self.bad_evaluations,
                "eval_seconds": self.eval_seconds,
                "metrics_lines": self.metrics.lines,
            },
        )
        self.last_checkpoint = time.perf_counter()

    def _restore(
        self, state: dict[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any, result: FitResult
    ) -> tuple[int, int, int, float]:
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        for key, value in state["result"].items():
            setattr(result, key, value)
        self.best_state, self.bad_evaluations, self.eval_seconds = (
            state["best_state"],
            state["bad_evaluations"],
            state["eval_seconds"],
        )
        self.metrics.truncate(state["metrics_lines"])
        restore_rng(state["rng"])
        return state["step"], state["epoch"], state["batch"], state["seconds"]

    def bad_evaluations_exhausted(self) -> bool:
        return self.config.patience is not None and self.bad_evaluations >= self.config.patience

    def _evaluate(self, result: FitResult, step: int, epoch: float) -> bool:
        """Evaluate on dev, keep the best weights; True when early stopping says stop."""
        if self.pending_losses is not None:  # the train steps before it go first in metrics.jsonl
            self.pending_losses.flush()
        started = time.perf_counter()
        metrics = self.task.evaluate(self.model)
        if metrics is None:  # no dev set: the last weights are the result
            return False
        seconds = time.perf_counter() - started
        self.eval_seconds += seconds if step > 0 else 0.0
        self.metrics.write(f"{self.stage}dev", step, epoch=epoch, seconds=seconds, **metrics)
        result.evaluations.append({"step": step, "epoch": epoch, **metrics})
        value = metrics[self.metric]
        if self.on_evaluate is not None and step > 0:
            self.on_evaluate(step, metrics)
        log.info("dev at step %d (epoch %.2f): %s", step, epoch, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        improved = result.best_metric is None or (
            value > result.best_metric if self.higher_is_better else value < result.best_metric
        )
        if improved:
            result.best_metric, result.best_step, result.best_epoch = value, step, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.bad_evaluations = 0
        elif step > 0:
            self.bad_evaluations += 1
            if self.bad_evaluations_exhausted():
                log.info("early stop: no dev %s improvement in %d evaluations", self.metric, self.config.patience)
                result.stopped_early = True
                return True
        self.model.train()
        return False
