"""Scoring saved models on labelled files: `minbert eval`, and the accuracy report of `minbert export`.

evaluate          one model (any backend) on one file: its head's metrics, or, for a sentence
                  encoder without heads, the cosine similarity of pairs against the gold score
compare_backends  the same file through PyTorch and each exported backend, with the change vs PyTorch
"""

from __future__ import annotations

from pathlib import Path

from minbert.data.prepare import read_texts
from minbert.data.readers import Example, read_examples
from minbert.errors import MinbertError
from minbert.evaluation.metrics import regression_metrics
from minbert.model.backends import load_backend
from minbert.model.task_model import Model
from minbert.tasks.head_task import model_inputs, score_raw, targets_of
from minbert.tasks.posthoc import oos_evaluation


def evaluate(
    model_dir: str | Path,
    data: str | Path,
    format: str = "jsonl",
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    batch_size: int = 128,
    backend: str = "torch",
    task: str | None = None,
    oos_data: str | Path | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """Score a saved model's head (PyTorch or its ONNX export) on a labelled file; or, for a sentence
    encoder (any checkpoint, no head), the cosine similarity of the pairs' embeddings against the gold score.
    With `oos_data`, out-of-scope texts: the head's rejection (its saved method and threshold) is scored too."""
    model = load_backend(model_dir, backend, device)
    examples = read_examples(data, format, text_column=text_column, label_column=label_column, split="test")
    if isinstance(model, Model) and not model.tasks:
        if task is not None:
            raise MinbertError(f"{model_dir}: a sentence encoder has no task heads; leave out --task")
        return {**cosine_scores(model, examples, data, batch_size), "examples": len(examples)}
    spec = model.spec(task or model.default_task())
    raw = model.raw_outputs(spec.name, model_inputs(spec, examples), batch_size)
    metrics = {**score_raw(spec, raw, targets_of(spec, examples)).metrics, "examples": len(examples)}
    if oos_data is not None:
        if spec.oos_method == "none":
            raise MinbertError(
                f"{model_dir}: --oos-data scores out-of-scope rejection, and this model has none (train with oos.method)"
            )
        oos = read_texts([Path(oos_data)], format, text_column=text_column, role="oos_test")
        metrics |= {**oos_evaluation(model, spec, examples, oos, batch_size).metrics, "oos_examples": len(oos)}
    return metrics


def compare_backends(
    model_dir: str | Path,
    data: str | Path,
    backends: list[str],
    format: str = "jsonl",
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    task: str | None = None,
) -> dict[str, dict[str, float]]:
    """`evaluate` through PyTorch and each given backend; every entry gets `change_vs_torch` of its headline metric (points)."""
    scores: dict[str, dict[str, float]] = {}
    for backend in ("torch", *backends):
        scores[backend] = evaluate(
            model_dir, data, format, text_column=text_column, label_column=label_column, backend=backend, task=task
        )
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
