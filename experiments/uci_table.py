"""Seed 004: UCI Sentiment Labelled Sentences, a shared projection with a sentiment head (CE) and an
intensity head (sigmoid + BCE), under the four freezing scenarios.

    python experiments/uci_table.py            # run what is missing, then render the table
    python experiments/uci_table.py --render   # only render experiments/uci_table.md

The split is a seeded, stratified 80/10/10 of the 3,000 sentences (configs/uci_multitask.yaml); test is
scored once with the best-on-dev epoch. Resumable through experiments/results.csv (experiment uci_seed004).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import REPO, Run, main, mean_sd, read_rows, write_markdown  # noqa: E402

EXPERIMENT = "uci_seed004"
METRICS = {"sentiment_accuracy": "accuracy", "sentiment_macro_f1": "macro_f1", "intensity_pearson": "intensity_pearson", "overall": "overall"}
SCENARIOS = {
    "none": "nothing frozen",
    "encoder": "encoder frozen (projection + heads train)",
    "heads": "heads frozen (encoder + projection train)",
    "all": "everything frozen (no training: the untrained heads)",
}
SEEDS = [1, 2, 3]


# Beyond the seed's recipe: MiniLM-L6 is small and learns little at lr 1e-5 in 3 epochs. Nothing frozen;
# recipe -> (label, overrides). The later recipes are chosen on seed 1's dev accuracy, then run on seeds 2 and 3.
WARM = ["--train.epochs", "5", "--train.warmup_ratio", "0.1"]
TUNED = {
    "tuned": ("nothing frozen, tuned: lr 5e-5 (heads 2e-4), 5 epochs, 10 % warm-up",
              ["--train.lr", "5e-5", "--train.head_lr", "2e-4", *WARM]),
    "tuned_head1e-3": ("nothing frozen, tuned: lr 5e-5 (heads 1e-3), 5 epochs, 10 % warm-up",
                       ["--train.lr", "5e-5", "--train.head_lr", "1e-3", *WARM]),
    "tuned_lr1e-4_llrd": ("nothing frozen, tuned: lr 1e-4 (heads 1e-3), LLRD 0.9, 5 epochs, 10 % warm-up",
                          ["--train.lr", "1e-4", "--train.head_lr", "1e-3", "--train.llrd", "0.9", *WARM]),
}

# Is the miss the model or the split? The recipe with the best mean dev accuracy, on five other seeded
# 80/10/10 splits (run seed 1); the table's split is sample_seed 4.
SELECTED = "tuned_head1e-3"
OTHER_SPLITS = [1, 2, 3, 5, 6]


def split_overrides(split_seed: int) -> list[str]:
    return [arg for task in ("sentiment", "intensity") for arg in (f"--tasks.{task}.data.sample_seed", str(split_seed))]


def runs() -> list[Run]:
    config = REPO / "configs" / "uci_multitask.yaml"
    plan = [Run(EXPERIMENT, f"freeze_{scenario}", config, seed, ["--train.freeze", scenario], metrics=METRICS)
            for seed in SEEDS for scenario in SCENARIOS]
    tuned = [Run(EXPERIMENT, recipe, config, seed, overrides, metrics=METRICS) for recipe, (_, overrides) in TUNED.items() for seed in SEEDS]
    by_seed_first = sorted(tuned, key=lambda run: run.seed != 1)
    splits = [Run(EXPERIMENT, f"{SELECTED}_split{k}", config, 1, [*TUNED[SELECTED][1], *split_overrides(k)], metrics=METRICS)
              for k in OTHER_SPLITS]
    return plan[: len(SCENARIOS)] + by_seed_first + plan[len(SCENARIOS) :] + splits


def render() -> Path:
    rows = [r for r in read_rows() if r["experiment"] == EXPERIMENT]

    def values(recipe: str, split: str, metric: str) -> list[float]:
        return [float(r["value"]) for r in rows if r["recipe"] == recipe and r["split"] == split and r["metric"] == metric]

    lines = [
        "# Seed 004: UCI sentiment, shared projection + two heads, four freezing scenarios (all-MiniLM-L6-v2)",
        "",
        "3,000 sentences (amazon, imdb, yelp), seeded stratified 80/10/10 split; projection 256 (L2-normalised), encoder lr 1e-5,",
        "projection and heads 2e-5, 3 epochs, bs 16, round-robin between the two heads. Mean ± sd over seeds, in %.",
        "The intensity head's target is the label read as a number (0/1): it learns P(positive); its Pearson r with the label is shown.",
        "",
        "| scenario | seeds | test accuracy | dev accuracy | test intensity r | seed 004 (BERT-base, 80/20) | wall per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for recipe, label in [*((f"freeze_{k}", v) for k, v in SCENARIOS.items()), *((k, label) for k, (label, _) in TUNED.items())]:
        scenario = recipe.removeprefix("freeze_")
        walls = {r["seed"]: float(r["wall_s"]) for r in rows if r["recipe"] == recipe}
        r_values = values(recipe, "test", "intensity_pearson")
        r_cell = f"{statistics.mean(r_values):.3f}" if r_values else ""
        lines.append(
            f"| {label} | {len(walls)}/{len(SEEDS)} | {mean_sd(values(recipe, 'test', 'accuracy'))} | {mean_sd(values(recipe, 'dev', 'accuracy'))} | "
            f"{r_cell} | {'94 (scenario not stated)' if scenario == 'none' else ''} | {statistics.mean(walls.values()) / 60:.1f} min |"
            if walls else f"| {label} | 0/{len(SEEDS)} | not run yet | | | | |"
        )
    lines += [
        "",
        f"## The same recipe on other splits ({TUNED[SELECTED][0]}; run seed 1)",
        "",
        "The recipe with the best mean dev accuracy above, on five other seeded stratified 80/10/10 splits of the same",
        "3,000 sentences: how much of the distance to 94 is the one test split of 300 sentences.",
        "",
        "| split seed | test accuracy | dev accuracy | wall |",
        "|---|---|---|---|",
    ]
    split_tests = []
    for k in OTHER_SPLITS:
        recipe = f"{SELECTED}_split{k}"
        test, dev = values(recipe, "test", "accuracy"), values(recipe, "dev", "accuracy")
        walls = [float(r["wall_s"]) for r in rows if r["recipe"] == recipe]
        split_tests += test
        lines.append(f"| {k} | {mean_sd(test)} | {mean_sd(dev)} | {walls[0] / 60:.1f} min |" if walls else f"| {k} | not run yet | | |")
    def seed_one(split: str) -> list[float]:
        return [float(r["value"]) for r in rows
                if r["recipe"] == SELECTED and r["seed"] == "1" and r["split"] == split and r["metric"] == "accuracy"]

    table_split = seed_one("test")
    table_wall = [float(r["wall_s"]) for r in rows if r["recipe"] == SELECTED and r["seed"] == "1"]
    wall_cell = f"{table_wall[0] / 60:.1f} min" if table_wall else ""
    lines.append(f"| 4 (the table's split) | {mean_sd(table_split)} | {mean_sd(seed_one('dev'))} | {wall_cell} |")
    all_tests = split_tests + table_split
    lines.append(f"| mean of the {len(all_tests)} splits run | {mean_sd(all_tests)} | | |")
    if all_tests:
        reached = sum(t >= 0.94 for t in all_tests)
        lines += [
            "",
            f"{reached} of the {len(all_tests)} splits reach 94 %. One test sentence is 0.33 points; the split-to-split sd is larger than",
            "the differences between the recipes above, so the recipe is about as good as any tried and the target is met on some",
            "splits and missed on average. Seed 004's 94 % is one 80/20 split with a 768-d (base-size) BERT, not an average.",
        ]
    lines += ["", "Target: >= 94 % test accuracy. Rows: `experiments/results.csv` (experiment uci_seed004).", ""]
    return write_markdown("uci_table.md", lines)


if __name__ == "__main__":
    main(__doc__, runs(), render)
