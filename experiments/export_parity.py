"""A trained model exported to transformers and sentence-transformers answers as minbert does.

    python experiments/export_parity.py RUN_OR_MODEL_DIR [--data FILE --format massive]

Exports the model with `minbert export --to transformers` and `--to sentence-transformers`, then runs
every text of the data file (default: the run's test file) through `transformers.pipeline` and
`SentenceTransformer.encode` and compares with `Model.predict` and `Model.encode`: labels that differ,
the largest probability difference, and the smallest cosine. Writes experiments/export_parity.md.
transformers and sentence-transformers are references here, as in the tests; minbert never imports them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from minbert.cli import main as minbert
from minbert.config import RunConfig, load_config
from minbert.data.readers import read_examples
from minbert.model.task_model import load

HERE = Path(__file__).resolve().parent


def trained_with(run: Path, config: RunConfig | None) -> list[str]:
    """A line on how a run's model was trained and how it scored (nothing for a bare model directory)."""
    if config is None or not (run / "results.json").is_file():
        return []
    results = json.loads((run / "results.json").read_text())["results"]
    model, train = config.model, config.train
    scores = ", ".join(f"{split} accuracy {100 * m['accuracy']:.2f}" for split, m in results.items() if "accuracy" in m)
    return [
        "",
        f"Trained: {model.checkpoint}, pooling {model.pooling}, hidden_size {model.hidden_size}, "
        f"{train.epochs} epochs, lr {train.lr}, seed {train.seed}, calibration {config.calibration}; {scores}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a training run directory or a saved model directory")
    parser.add_argument("--data", help="texts to compare on (default: the run's test file)")
    parser.add_argument("--format", help="the data file's format (default: the run's; jsonl for a model directory)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=HERE / "export_parity.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    source = args.run  # a run directory or a model directory: minbert accepts both
    config = load_config(args.run / "config.yaml") if (args.run / "config.yaml").is_file() else None
    data: Path | None = args.data or (config.data.test if config else None)
    if data is None:
        parser.error(f"{args.run} has no config.yaml with a test file: give --data FILE --format FORMAT")
    fmt = args.format or (config.data.format if config else "jsonl")
    texts = [e.text for e in read_examples(data, fmt, require_labels=False)]
    ours = load(source)
    lines = [
        "# Export parity: a trained model in transformers and sentence-transformers",
        "",
        f"Model: `{source}` ({ours.config.heads[0].name} head, pooling `{ours.config.pooling}`); "
        f"texts: `{Path(data).name}`, {len(texts):,} rows. Command: `python experiments/export_parity.py {args.run}`.",
        *trained_with(args.run, config),
        "",
        "| format | loaded with | compared | result | seconds |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        lines.append(transformers_row(source, Path(tmp) / "hf", ours, texts, args.batch_size))
        lines.append(sentence_transformers_row(source, Path(tmp) / "st", ours, texts, args.batch_size))
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(args.out.read_text())


def transformers_row(source: Path, out: Path, ours, texts: list[str], batch_size: int) -> str:  # noqa: ANN001
    from transformers import pipeline

    if minbert(["export", str(source), "--to", "transformers", "--out", str(out)]) != 0:
        return "| transformers | - | - | export refused (see the error above) | - |"
    started = time.perf_counter()
    mine = ours.predict(texts, batch_size=batch_size)
    classify = pipeline("text-classification", model=str(out), top_k=None, device="cpu")
    theirs = cast(list[list[dict[str, Any]]], classify(texts, batch_size=batch_size))  # top_k=None: every label
    differ, worst = 0, 0.0
    for prediction, rows in zip(mine, theirs, strict=True):
        probabilities = {row["label"]: row["score"] for row in rows}
        differ += max(probabilities, key=probabilities.__getitem__) != prediction.label
        worst = max(worst, max(abs(probabilities[k] - v) for k, v in prediction.probabilities.items()))
    seconds = time.perf_counter() - started
    config = json.loads((out / "config.json").read_text())
    return (
        f'| transformers (`{config["architectures"][0]}`) | `pipeline("text-classification")` | top label, '
        f"every probability vs `minbert predict` | {differ} of {len(texts):,} labels differ; "
        f"max probability difference {worst:.1e} | {seconds:.0f} |"
    )


def sentence_transformers_row(source: Path, out: Path, ours, texts: list[str], batch_size: int) -> str:  # noqa: ANN001
    from sentence_transformers import SentenceTransformer

    if minbert(["export", str(source), "--to", "sentence-transformers", "--out", str(out)]) != 0:
        return "| sentence-transformers | - | - | export refused (see the error above) | - |"
    started = time.perf_counter()
    mine = ours.encode(texts, batch_size=batch_size)
    theirs = SentenceTransformer(str(out), device="cpu").encode(texts, batch_size=batch_size)
    mine = mine / np.linalg.norm(mine, axis=1, keepdims=True)
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    cosine = float((mine * theirs).sum(axis=1).min())
    seconds = time.perf_counter() - started
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((out / "modules.json").read_text())]
    return (
        f"| sentence-transformers ({' + '.join(modules)}) | `SentenceTransformer(DIR).encode` | sentence vectors vs "
        f"`minbert embed` | min cosine {cosine:.6f} over {len(texts):,} texts | {seconds:.0f} |"
    )


if __name__ == "__main__":
    main()
