"""Knowledge distillation: a frozen teacher's outputs for a student's training rows, computed once.

The teacher is a saved minbert model. For each student head it must have a head of the same name
and kind (and, for classification, the same labels in the same order, since the soft targets are
compared class by class). Its raw outputs (logits, or regression outputs) for every training row
are computed once before training, so a distillation epoch costs about a student epoch, and kept
in $MINBERT_HOME/teacher_outputs/ under a hash of the teacher's minbert.json (which holds its
weights' SHA-256), the head and the inputs: the next student of the same teacher and data (another
seed, another recipe) reads them instead of running the teacher again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from minbert.errors import MinbertError
from minbert.model.download import minbert_home
from minbert.model.heads import HeadSpec
from minbert.model.layout import MODEL_FILE, model_directory
from minbert.model.task_model import Model, load

log = logging.getLogger(__name__)


@dataclass
class Distillation:
    teacher: Model
    alpha: float
    temperature: float
    source: str = "teacher"
    fingerprint: str | None = None  # SHA-256 of the teacher's minbert.json; None: outputs are not kept on disk

    @classmethod
    def load(cls, path: str | Path, alpha: float, temperature: float) -> Distillation:
        teacher = load(path)
        if not teacher.tasks:
            raise MinbertError(f"distill.teacher {path}: a sentence encoder without heads has no outputs to distil")
        fingerprint = hashlib.sha256((model_directory(path) / MODEL_FILE).read_bytes()).hexdigest()
        return cls(teacher.eval(), alpha, temperature, str(path), fingerprint)

    def check(self, spec: HeadSpec) -> HeadSpec:
        """The teacher's head for the student's `spec`, or an error saying what does not match."""
        if spec.name not in self.teacher.tasks:
            raise MinbertError(
                f"distill.teacher {self.source} has no head {spec.name!r} (it has {', '.join(self.teacher.tasks)}); "
                "a student head distils from the teacher's head of the same name"
            )
        theirs = self.teacher.spec(spec.name)
        if (theirs.kind, theirs.input) != (spec.kind, spec.input):
            raise MinbertError(
                f"distill.teacher {self.source}: head {spec.name!r} is {theirs.kind} on {theirs.input} inputs, "
                f"the student's is {spec.kind} on {spec.input} inputs"
            )
        if spec.kind == "classification" and list(theirs.labels) != list(spec.labels):
            extra = sorted(set(spec.labels) ^ set(theirs.labels))
            why = f"labels differ ({', '.join(extra[:5])})" if extra else "the labels are in another order"
            raise MinbertError(
                f"distill.teacher {self.source}: head {spec.name!r}: {why}; train the student on the teacher's label set"
            )
        if theirs.multilabel != spec.multilabel:
            raise MinbertError(
                f"distill.teacher {self.source}: head {spec.name!r} is {'' if theirs.multilabel else 'not '}multilabel, "
                f"the student's is {'' if spec.multilabel else 'not '}multilabel; distil like into like"
            )
        if spec.kind == "classification" and theirs.loss != spec.loss:
            raise MinbertError(
                f"distill.teacher {self.source}: head {spec.name!r} uses loss {theirs.loss}, the student's {spec.loss}"
            )
        return theirs

    def adopt_labels(self, spec: HeadSpec) -> HeadSpec:
        """The student's head with the teacher's label set (the student's own training labels must be among
        them), so a student trained on a few labelled rows still predicts every class the teacher knows."""
        if spec.kind != "classification" or spec.name not in self.teacher.tasks:
            self.check(spec)  # a missing head or another kind: the error says which
            return spec
        theirs = self.teacher.spec(spec.name)
        unknown = sorted(set(spec.labels) - set(theirs.labels))
        if unknown:
            raise MinbertError(
                f"distill.teacher {self.source}: head {spec.name!r} does not know the labels {', '.join(unknown[:5])} "
                "of the student's training data; distil on data labelled with the teacher's classes"
            )
        adopted = dataclasses.replace(spec, labels=list(theirs.labels))
        self.check(adopted)
        return adopted

    def outputs(self, spec: HeadSpec, inputs: list[Any], batch_size: int, bf16: bool) -> torch.Tensor:
        """The teacher's raw outputs for the student's training inputs (in their order)."""
        self.check(spec)
        kept = self._kept(spec.name, inputs, bf16)
        if kept is not None and kept.is_file():
            raw = load_file(kept)["outputs"]
            if len(raw) == len(inputs):
                log.info("distillation: the teacher's outputs for %d rows read from %s", len(inputs), kept)
                return raw
        started = time.perf_counter()
        raw = self.teacher.raw_outputs(spec.name, inputs, batch_size, bf16).float()
        log.info(
            "distillation: teacher %s labelled %d training rows of head %s in %.1f s",
            self.source,
            len(inputs),
            spec.name,
            time.perf_counter() - started,
        )
        if kept is not None:
            try:
                kept.parent.mkdir(parents=True, exist_ok=True)
                partial = kept.with_suffix(f".{os.getpid()}.tmp")
                save_file({"outputs": raw.contiguous()}, partial)
                os.replace(partial, kept)  # whole or absent: never a half-written file
            except OSError as e:  # a read-only home only costs the next run the teacher pass
                log.warning("distillation: could not keep the teacher's outputs in %s (%s)", kept.parent, e)
        return raw

    def _kept(self, head: str, inputs: list[Any], bf16: bool) -> Path | None:
        if self.fingerprint is None:
            return None
        key = hashlib.sha256(json.dumps([self.fingerprint, head, bf16, inputs], ensure_ascii=False).encode())
        return minbert_home() / "teacher_outputs" / f"{key.hexdigest()}.safetensors"
