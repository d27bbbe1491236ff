"""Seed 000's table on MASSIVE en-US: baseline, + LLRD, + warm-up, both, and the `make demo` recipe.

    python experiments/massive_table.py            # run what is missing, then render the table
    python experiments/massive_table.py --render   # only render experiments/massive_table.md
    python experiments/massive_table.py --checkpoint all-mpnet-base-v2 --bf16 --recipes demo

Train on train, select on dev, report test. Three seeds for the baseline and the best recipe,
one for the others. Resumable: finished runs are read from experiments/results.csv.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import REPO, Run, checkpoints_in, main, mean_sd, read_rows, write_markdown  # noqa: E402

EXPERIMENT = "massive_seed000"
# recipe -> (config, seeds, the seed report's BERT-base test accuracy in %)
RECIPES = {
    "best": ("massive_best.yaml", [1, 2, 3], 90.05),
    "baseline": ("massive_baseline.yaml", [1, 2, 3], 88.97),
    "llrd": ("massive_llrd.yaml", [1], 89.21),
    "warmup": ("massive_warmup.yaml", [1], 89.91),
    "demo": ("massive_intent.yaml", [1, 2, 3], 90.05),
}
LABELS = {
    "baseline": "baseline (bs 64, lr 5e-5, constant)",
    "llrd": "+ LLRD 0.9",
    "warmup": "+ warm-up 0.08, bs 16",
    "best": "LLRD 0.95 + warm-up 0.07 + linear decay, bs 16",
    "demo": "`make demo`: 3 epochs, bs 32, lr 1e-4 (head 1e-3), LLRD 0.9, warm-up 0.06, linear",
}


def runs() -> list[Run]:
    order = [
        (recipe, seed)
        for seed_index in range(3)
        for recipe, (_, seeds, _) in RECIPES.items()
        if seed_index < len(seeds)
        for seed in [seeds[seed_index]]
    ]
    return [Run(EXPERIMENT, recipe, REPO / "configs" / RECIPES[recipe][0], seed) for recipe, seed in order]


def render() -> Path:
    rows = [r for r in read_rows(checkpoint=None) if r["experiment"] == EXPERIMENT]
    lines = [
        "# Seed 000 on MASSIVE en-US (60 intents)",
        "",
        "Train on train (11,514), select the epoch on dev (2,033), report test (2,974). Accuracy in %, mean ± sd over seeds.",
        "The seed report used BERT-base (110M parameters); minbert fine-tunes all-MiniLM-L6-v2 (22M, 6 layers) and",
        "all-mpnet-base-v2 (110M, 12 layers) on a 2-core CPU. The base model ran the `make demo` recipe (3 epochs) and seed 000's",
        "best recipe (10 epochs, bs 16: about 92 min per seed on one core in bf16, so its seeds land one session at a time).",
        "The seed report's number beside `demo` is its best recipe's.",
        "",
        "| checkpoint | recipe | seeds | test accuracy | dev accuracy | test macro-F1 | dev acc. before fine-tuning | seed report (BERT-base) | wall per run | train ex/s | precision, CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for checkpoint, recipe in [(c, r) for c in checkpoints_in(rows) for r in RECIPES]:
        seeds, reference = RECIPES[recipe][1], RECIPES[recipe][2]
        mine = [r for r in rows if r["recipe"] == recipe and r["checkpoint"] == checkpoint]
        if not mine and checkpoint != "all-MiniLM-L6-v2":
            continue

        def values(split: str, metric: str, mine: list[dict] = mine) -> list[float]:
            return [float(r["value"]) for r in mine if r["split"] == split and r["metric"] == metric]

        done = sorted({r["seed"] for r in mine})
        trained = [r for r in mine if r["wall_s"]]  # (inference rows of the distillation table have no wall time)
        walls = sorted({(r["seed"], float(r["wall_s"])) for r in trained})
        rates = sorted({(r["seed"], float(r["examples_per_s"])) for r in trained})
        wall = f"{statistics.mean(w for _, w in walls) / 60:.1f} min" if walls else ""
        rate = f"{statistics.mean(x for _, x in rates):.0f}" if rates else ""
        machine = (
            "; ".join(sorted({f"{r['precision']}, {r['cpu']}" for r in trained if r.get("cpu")})) or "not recorded"
        )
        lines.append(
            f"| {checkpoint} | {LABELS[recipe]} | {len(done)}/{len(seeds)} | {mean_sd(values('test', 'accuracy'))} | {mean_sd(values('dev', 'accuracy'))} | "
            f"{mean_sd(values('test', 'macro_f1'))} | {mean_sd(values('dev', 'accuracy_before_finetuning'))} | {reference:.2f} | {wall} | {rate} | {machine} |"
        )
    lines += [
        "",
        "Wall time and examples/s are as measured on a 2-core CPU, including time shared with other work on the machine",
        "(best, seed 1 ran beside tests and a benchmark); `benchmarks/` has the clean speed numbers.",
        "Machine-readable rows: `experiments/results.csv` (experiment `massive_seed000`).",
        "",
        "Sentence embeddings of the first 10 test intents before and after fine-tuning (best recipe, seed 1), as in seed 000's figures:",
        "`minbert plot-embeddings all-MiniLM-L6-v2 experiments/runs/massive_seed000/best/seed1 --data .../test.jsonl --format massive`",
        "(before: the checkpoint's mean-pooled sentence embedding; after: the classifier's [CLS] vector; numbers in the .json beside it).",
        "",
        "![t-SNE before and after](figures/massive_tsne_before_after.png)",
        "",
    ]
    return write_markdown("massive_table.md", lines)


if __name__ == "__main__":
    main(__doc__, runs(), render)
