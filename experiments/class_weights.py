"""Class weights on a skewed MASSIVE train set: macro-F1 with and without train.class_weights balanced.

    python experiments/class_weights.py            # run what is missing, then render the table
    python experiments/class_weights.py --render   # only render experiments/class_weights.md

The skewed set is built from MASSIVE train only, seeded: the 30 alphabetically last intents keep 8
examples each, the others all of theirs (a 1:30-or-so imbalance). A frozen-encoder probe ([CLS] ->
512 -> intents, 30 epochs on cached vectors) is trained on it with and without balanced weights;
dev and test are the untouched MASSIVE splits. Resumable through experiments/results.csv.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import DATA_DIR, HERE, REPO, Run, main, mean_sd, read_rows, write_markdown  # noqa: E402

EXPERIMENT = "class_weights"
SKEWED = HERE / "runs" / EXPERIMENT / "skewed_train.jsonl"
RECIPES = {"none": [], "balanced": ["--train.class_weights", "balanced"]}
BASE = [
    *("--train.freeze", "encoder", "--train.epochs", "30", "--train.lr", "1e-3", "--train.schedule", "constant"),
    *("--train.warmup_ratio", "0", "--train.llrd", "1", "--train.metric", "macro_f1"),
]


def skewed_train() -> Path:
    """MASSIVE train with the last 30 intents cut to 8 examples each (seeded), written once."""
    if SKEWED.is_file():
        return SKEWED
    rows = [json.loads(line) for line in (DATA_DIR / "massive_en_us" / "train.jsonl").read_text().splitlines()]
    label = "label_text" if "label_text" in rows[0] else "intent"
    rare = sorted({r[label] for r in rows})[-30:]
    random.Random(0).shuffle(rows)
    kept, seen = [], {name: 0 for name in rare}
    for row in rows:
        if row[label] in seen:
            if seen[row[label]] >= 8:
                continue
            seen[row[label]] += 1
        kept.append(row)
    SKEWED.parent.mkdir(parents=True, exist_ok=True)
    SKEWED.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return SKEWED


def runs() -> list[Run]:
    train = skewed_train()
    return [
        Run(
            EXPERIMENT,
            recipe,
            REPO / "configs" / "massive_intent.yaml",
            seed,
            ["--data.train", str(train), *BASE, *extra],
        )
        for seed in (1, 2, 3)
        for recipe, extra in RECIPES.items()
    ]


def render() -> Path:
    rows = [r for r in read_rows() if r["experiment"] == EXPERIMENT]
    lines = [
        "# Class weights on a skewed MASSIVE train set",
        "",
        "Train: MASSIVE train with the 30 alphabetically last intents cut to 8 examples each (the other 30 keep all",
        "theirs); dev and test untouched. Frozen-encoder probe, 30 epochs, selected on dev macro-F1. Mean ± sd over seeds, %.",
        "",
        "| class_weights | seeds | test macro-F1 | test accuracy | dev macro-F1 |",
        "|---|---|---|---|---|",
    ]
    for recipe in RECIPES:
        mine = [r for r in rows if r["recipe"] == recipe]

        def values(split: str, metric: str, mine: list[dict] = mine) -> list[float]:
            return [float(r["value"]) for r in mine if r["split"] == split and r["metric"] == metric]

        lines.append(
            f"| {recipe} | {len({r['seed'] for r in mine})} | {mean_sd(values('test', 'macro_f1'))} | "
            f"{mean_sd(values('test', 'accuracy'))} | {mean_sd(values('dev', 'macro_f1'))} |"
        )
    lines += ["", "Machine-readable rows: `experiments/results.csv` (experiment `class_weights`).", ""]
    return write_markdown("class_weights.md", lines)


if __name__ == "__main__":
    main(__doc__, runs(), render)
