"""Scoring saved models on labelled files: `minbert eval`, and the accuracy report of `minbert export`.

evaluate          one model (any backend) on one file: its head's metrics, or, for a sentence
                  encoder without heads, the cosine similarity of pairs against the gold score
compare_backends  the same file through PyTorch and each exported backend, with the change vs PyTorch
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from minbert.config import DataConfig, load_config
from minbert.data.prepare import read_file, read_texts
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.evaluation.metrics import regression_metrics
from minbert.model.backends import load_backend
from minbert.model.task_model import Model
from minbert.tasks.head_task import evaluate_examples
from minbert.tasks.posthoc import oos_evaluation
from minbert.tasks.specs import split_unseen

log = logging.getLogger("minbert")


def data_options(model_dir: str | Path, task: str | None = None, **given: Any) -> DataConfig:
    """How to read a file for a trained model: the options given (None = not given) over the ones its run was
    trained with (the run's config.yaml, when `model_dir` is a run or the model/ inside one), over the defaults.
    A file in another format than the run's does not inherit the run's columns."""
    trained = DataConfig()
    directory = Path(model_dir)
    for candidate in (directory / "config.yaml", directory.parent / "config.yaml"):
        if candidate.is_file() and (candidate.parent == directory or directory.name == "model"):
            try:
                tasks = load_config(candidate).task_list()
            except MinbertError:
                break  # a run whose config no longer reads: the defaults, and what was given
            chosen = next((t for t in tasks if t.name == task), tasks[0] if tasks else None)
            trained = chosen.data if chosen is not None else trained
            break
    fields = ("format", "text_column", "label_column", "text_pair_column", "label_separator", "allow_empty_labels")
    inherited = {f: getattr(trained, f) for f in fields}
    if given.get("format") not in (None, trained.format):
        inherited = {"format": given["format"]}
    inherited |= {"skip_bad_rows": trained.skip_bad_rows, "unseen_labels": trained.unseen_labels}
    return DataConfig(**{**inherited, **{k: v for k, v in given.items() if v is not None}})


def evaluate(
    model_dir: str | Path,
    data: str | Path,
    format: str | None = None,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    text_pair_column: str | None = None,
    label_separator: str | None = None,
    skip_bad_rows: bool | None = None,
    unseen_labels: str | None = None,
    batch_size: int = 128,
    backend: str = "torch",
    task: str | None = None,
    oos_data: str | Path | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """Score a saved model's head (PyTorch or its ONNX export) on a labelled file; or, for a sentence
    encoder (any checkpoint, no head), the cosine similarity of the pairs' embeddings against the gold score.
    The file is read as the run was trained unless told otherwise (see data_options); bad rows are skipped and
    counted with skip_bad_rows, and rows whose labels training never saw follow unseen_labels (error, skip, or
    count_wrong: scored as misses). With `oos_data`, out-of-scope texts: the head's rejection is scored too."""
    model = load_backend(model_dir, backend, device)
    options = data_options(
        model_dir,
        task,
        format=format,
        text_column=text_column,
        label_column=label_column,
        text_pair_column=text_pair_column,
        label_separator=label_separator,
        skip_bad_rows=skip_bad_rows,
        unseen_labels=unseen_labels,
    )
    examples = read_file(data, options, "test")
    if isinstance(model, Model) and not model.tasks:
        if task is not None:
            raise MinbertError(f"{model_dir}: a sentence encoder has no task heads; leave out --task")
        return {**cosine_scores(model, examples, data, batch_size), "examples": len(examples)}
    spec = model.spec(task or model.default_task())
    seen, unseen = split_unseen(spec, examples) if options.unseen_labels != "error" else (examples, [])
    if unseen:
        log.warning(
            "%s: %d rows have labels training never saw; unseen_labels %s: %s",
            data,
            len(unseen),
            options.unseen_labels,
            "left out" if options.unseen_labels == "skip" else "scored as misses",
        )
    oos = None
    if oos_data is not None:  # read and checked before the (long) scoring
        if spec.oos_method == "none":
            raise MinbertError(
                f"{model_dir}: --oos-data scores out-of-scope rejection, and this model has none (train with oos.method)"
            )
        oos = read_texts(
            [Path(oos_data)],
            options.format,
            text_column=options.text_column,
            role="oos_test",
            skip_bad_rows=options.skip_bad_rows,
        )
    counted = unseen if options.unseen_labels == "count_wrong" else []
    with model.encoding_once():  # the OOS metrics read the outputs on `seen` again: computed once
        evaluation = evaluate_examples(model, spec.name, seen, batch_size, unseen=counted)
        rejection = oos_evaluation(model, spec, seen, oos, batch_size).metrics if oos is not None else {}
    metrics = {
        **evaluation.metrics,
        "examples": len(seen) + len(counted),
    }
    if unseen and options.unseen_labels == "skip":
        metrics["skipped_unseen_label_rows"] = len(unseen)
    if oos is not None:
        metrics |= {**rejection, "oos_examples": len(oos)}
    return metrics


def compare_backends(
    model_dir: str | Path, data: str | Path, backends: list[str], task: str | None = None, **options: Any
) -> dict[str, dict[str, float]]:
    """`evaluate` through PyTorch and each given backend (the file read with `options`, as evaluate reads it);
    every entry gets `change_vs_torch` of its headline metric (points)."""
    scores: dict[str, dict[str, float]] = {}
    for backend in ("torch", *backends):
        scores[backend] = evaluate(model_dir, data, backend=backend, task=task, **options)
    headline = "accuracy" if "accuracy" in scores["torch"] else "pearson"
    for metrics in scores.values():
        metrics["change_vs_torch"] = 100 * (metrics[headline] - scores["torch"][headline])
    return scores


def cosine_scores(model: Model, examples: list[Example], data: str | Path, batch_size: int) -> dict[str, float]:
    """Zero-shot similarity: cosine of the two sentences' embeddings against the gold score."""
    if any(e.text_pair is None for e in examples):
        raise MinbertError(
            f"{data}: a sentence encoder is scored on sentence pairs (formats sts, stsb, quora, or a text_pair_column)"
        )
    try:
        gold = [float(e.label) for e in examples]  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise MinbertError(
            f"{data}: pair labels must be numbers (similarity or 0/1) to correlate with cosine: {e}"
        ) from None
    first = model.encode([e.text for e in examples], batch_size, normalize=True)
    second = model.encode([e.text_pair for e in examples], batch_size, normalize=True)  # type: ignore[misc]
    metrics = regression_metrics(gold, (first * second).sum(axis=1))
    return {"pearson": metrics["pearson"], "spearman": metrics["spearman"]}
