"""Seed 004: UCI Sentiment Labelled Sentences, a shared projection with a sentiment head (CE) and an
intensity head (sigmoid + BCE), under the four freezing scenarios.

    python experiments/uci_table.py            # run what is missing, then render the table
    python experiments/uci_table.py --render   # only render experiments/uci_table.md
    python experiments/uci_table.py --checkpoint all-mpnet-base-v2 --seeds 1 --train.epochs 3 \
        --recipes tuned_head1e-3 tuned_head1e-3_split1 tuned_head1e-3_split2 tuned_head1e-3_split3 \
                  tuned_head1e-3_split5 tuned_head1e-3_split6     # the base model on the six splits

The split is a seeded, stratified 80/10/10 of the 3,000 sentences (configs/uci_multitask.yaml); test is
scored once with the best-on-dev epoch. Resumable through experiments/results.csv (experiment uci_seed004).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from intermediate import FROM_SST2, SST2_STAGE, describe_stage  # noqa: E402
from runner import DEFAULT_CHECKPOINT, REPO, Run, main, mean_sd, read_rows, write_markdown  # noqa: E402

EXPERIMENT = "uci_seed004"
METRICS = {
    "sentiment_accuracy": "accuracy",
    "sentiment_macro_f1": "macro_f1",
    "intensity_pearson": "intensity_pearson",
    "overall": "overall",
}
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
    "tuned": (
        "nothing frozen, tuned: lr 5e-5 (heads 2e-4), 5 epochs, 10 % warm-up",
        ["--train.lr", "5e-5", "--train.head_lr", "2e-4", *WARM],
    ),
    "tuned_head1e-3": (
        "nothing frozen, tuned: lr 5e-5 (heads 1e-3), 5 epochs, 10 % warm-up",
        ["--train.lr", "5e-5", "--train.head_lr", "1e-3", *WARM],
    ),
    "tuned_lr1e-4_llrd": (
        "nothing frozen, tuned: lr 1e-4 (heads 1e-3), LLRD 0.9, 5 epochs, 10 % warm-up",
        ["--train.lr", "1e-4", "--train.head_lr", "1e-3", "--train.llrd", "0.9", *WARM],
    ),
}

# Is the miss the model or the split? The recipe with the best mean dev accuracy, on five other seeded
# 80/10/10 splits (run seed 1); the table's split is sample_seed 4.
SELECTED = "tuned_head1e-3"
OTHER_SPLITS = [1, 2, 3, 5, 6]
TABLE_SPLIT = 4
# The same recipe on all six splits again, starting from the encoder after 1 epoch on GLUE SST-2
# (experiments/intermediate.py): sentiment transfer from 67k labelled movie-review phrases.
SST2_RECIPE = f"{SELECTED}_sst2"
# The base model runs the selected recipe on the same six splits, shortened to 3 epochs: at ~9 examples/s
# on one thread of a 2-core CPU, 5 epochs of the two round-robin heads would take an hour per split.
BASE_CHECKPOINT = "all-mpnet-base-v2"
BASE_EPOCHS = 3


def split_recipe(recipe: str, split_seed: int) -> str:
    """The table's split keeps the plain recipe name (its rows predate the split study)."""
    return recipe if recipe == SELECTED and split_seed == TABLE_SPLIT else f"{recipe}_split{split_seed}"


def seed_one(rows: list[dict], recipe: str, split: str, checkpoint: str = DEFAULT_CHECKPOINT) -> list[dict]:
    """Run seed 1's accuracy row of a recipe on one split (empty when it has not run)."""
    return [
        r
        for r in rows
        if (r["checkpoint"], r["recipe"], r["seed"], r["split"], r["metric"])
        == (checkpoint, recipe, "1", split, "accuracy")
    ]


def accuracies(rows: list[dict]) -> list[float]:
    return [float(r["value"]) for r in rows]


def split_overrides(split_seed: int) -> list[str]:
    return [arg for task in ("sentiment", "intensity") for arg in (f"--tasks.{task}.data.sample_seed", str(split_seed))]


def runs() -> list[Run]:
    config = REPO / "configs" / "uci_multitask.yaml"
    plan = [
        Run(EXPERIMENT, f"freeze_{scenario}", config, seed, ["--train.freeze", scenario], metrics=METRICS)
        for seed in SEEDS
        for scenario in SCENARIOS
    ]
    tuned = [
        Run(EXPERIMENT, recipe, config, seed, overrides, metrics=METRICS)
        for recipe, (_, overrides) in TUNED.items()
        for seed in SEEDS
    ]
    by_seed_first = sorted(tuned, key=lambda run: run.seed != 1)
    splits = [
        Run(
            EXPERIMENT,
            split_recipe(SELECTED, k),
            config,
            1,
            [*TUNED[SELECTED][1], *split_overrides(k)],
            metrics=METRICS,
        )
        for k in OTHER_SPLITS
    ]
    from_sst2 = [
        Run(
            EXPERIMENT,
            split_recipe(SST2_RECIPE, k),
            config,
            1,
            [*TUNED[SELECTED][1], *split_overrides(k), *FROM_SST2],
            metrics=METRICS,
        )
        for k in [TABLE_SPLIT, *OTHER_SPLITS]
    ]
    return plan[: len(SCENARIOS)] + by_seed_first + plan[len(SCENARIOS) :] + splits + [SST2_STAGE, *from_sst2]


def render() -> Path:
    rows = [r for r in read_rows() if r["experiment"] == EXPERIMENT]

    def values(recipe: str, split: str, metric: str) -> list[float]:
        return [
            float(r["value"]) for r in rows if r["recipe"] == recipe and r["split"] == split and r["metric"] == metric
        ]

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
    for recipe, label in [
        *((f"freeze_{k}", v) for k, v in SCENARIOS.items()),
        *((k, label) for k, (label, _) in TUNED.items()),
    ]:
        scenario = recipe.removeprefix("freeze_")
        walls = {r["seed"]: float(r["wall_s"]) for r in rows if r["recipe"] == recipe}
        r_values = values(recipe, "test", "intensity_pearson")
        r_cell = f"{statistics.mean(r_values):.3f}" if r_values else ""
        lines.append(
            f"| {label} | {len(walls)}/{len(SEEDS)} | {mean_sd(values(recipe, 'test', 'accuracy'))} | {mean_sd(values(recipe, 'dev', 'accuracy'))} | "
            f"{r_cell} | {'94 (scenario not stated)' if scenario == 'none' else ''} | {statistics.mean(walls.values()) / 60:.1f} min |"
            if walls
            else f"| {label} | 0/{len(SEEDS)} | not run yet | | | | |"
        )
    lines += [
        "",
        f"## The same recipe on other splits ({TUNED[SELECTED][0]}; run seed 1)",
        "",
        "The recipe with the best mean dev accuracy above, on five other seeded stratified 80/10/10 splits of the same",
        "3,000 sentences: how much of the distance to 94 is the one test split of 300 sentences. The right-hand columns",
        "start the same recipe from the encoder after one epoch on GLUE SST-2 (67k phrases of movie-review sentiment, without",
        "the 28 that are also UCI sentences), instead of from all-MiniLM-L6-v2 itself.",
        "",
        "| split seed | test accuracy | dev accuracy | wall | from SST-2: test accuracy | dev accuracy | wall |",
        "|---|---|---|---|---|---|---|",
    ]

    tests: dict[str, list[float]] = {SELECTED: [], SST2_RECIPE: []}
    gains = []  # from SST-2 minus from the checkpoint, split by split
    for k in [*OTHER_SPLITS, TABLE_SPLIT]:
        cells = []
        test = {recipe: accuracies(seed_one(rows, split_recipe(recipe, k), "test")) for recipe in tests}
        if all(test.values()):
            gains.append(test[SST2_RECIPE][0] - test[SELECTED][0])
        for recipe, split_tests in test.items():
            name = split_recipe(recipe, k)
            split_walls = [float(r["wall_s"]) for r in rows if r["recipe"] == name and r["seed"] == "1"]
            tests[recipe] += split_tests
            cells.append(
                f"{mean_sd(split_tests)} | {mean_sd(accuracies(seed_one(rows, name, 'dev')))} | {split_walls[0] / 60:.1f} min"
                if split_walls
                else "not run yet | |"
            )
        label = f"{k} (the table's split)" if k == TABLE_SPLIT else str(k)
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines.append(f"| mean of the splits run | {mean_sd(tests[SELECTED])} | | | {mean_sd(tests[SST2_RECIPE])} | | |")
    for recipe, label in ((SELECTED, "From all-MiniLM-L6-v2"), (SST2_RECIPE, "From the SST-2 encoder")):
        if tests[recipe]:
            reached = sum(t >= 0.94 for t in tests[recipe])
            lines += [
                "",
                f"{label}, {reached} of the {len(tests[recipe])} splits reach 94 % (mean {mean_sd(tests[recipe])}).",
            ]
    if len(gains) > 1:
        lines += [
            "",
            f"Split by split, starting from SST-2 changes test accuracy by {' / '.join(f'{100 * g:+.2f}' for g in gains)} points "
            f"(mean {mean_sd(gains)}): within the split-to-split spread.",
        ]
    lines += [
        "",
        "One test sentence is 0.33 points; from the checkpoint itself the split-to-split sd is larger than the differences between",
        "the recipes above. Seed 004's 94 % is one 80/20 split with a 768-d (base-size) BERT trained on UCI alone, not an average.",
        "",
        *describe_stage(),
    ]
    lines += base_model_section()
    lines += ["", "Target: >= 94 % test accuracy. Rows: `experiments/results.csv` (experiment uci_seed004).", ""]
    return write_markdown("uci_table.md", lines)


def base_model_section() -> list[str]:
    """The selected recipe with all-mpnet-base-v2 on the six splits, beside MiniLM-L6 on the same splits."""
    rows = [r for r in read_rows(checkpoint=None) if r["experiment"] == EXPERIMENT]

    def cell(checkpoint: str, split_seed: int, split: str) -> list[dict]:
        return seed_one(rows, split_recipe(SELECTED, split_seed), split, checkpoint)

    lines = [
        "",
        f"## {BASE_CHECKPOINT} on the six splits",
        "",
        f"The selected recipe (lr 5e-5, heads 1e-3, 10 % warm-up) with {BASE_CHECKPOINT} (768-d, 110M parameters), shortened to",
        f"{BASE_EPOCHS} epochs (MiniLM-L6: 5), fp32 (on the Xeon these rows ran on a bf16 matmul runs at ~0.6x the fp32 rate, so",
        "bf16 autocast would be slower), run seed 1, best-on-dev epoch scored once on test. Target with the base model:",
        ">= 95 % mean test accuracy.",
        "",
        f"| split seed | {BASE_CHECKPOINT} test | dev | wall | train ex/s | precision, CPU | all-MiniLM-L6-v2 test | dev |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base_tests, small_tests = [], []
    for k in [TABLE_SPLIT, *OTHER_SPLITS]:
        base, small = cell(BASE_CHECKPOINT, k, "test"), cell(DEFAULT_CHECKPOINT, k, "test")
        base_dev, small_dev = cell(BASE_CHECKPOINT, k, "dev"), cell(DEFAULT_CHECKPOINT, k, "dev")
        small_cells = f"{mean_sd(accuracies(small))} | {mean_sd(accuracies(small_dev))}"
        label = f"{k} (the table's split)" if k == TABLE_SPLIT else str(k)
        if not base:
            lines.append(f"| {label} | not run yet | | | | | {small_cells} |")
            continue
        row = base[0]
        base_tests.append(float(row["value"]))
        small_tests += accuracies(small)
        lines.append(
            f"| {label} | {mean_sd(accuracies(base))} | {mean_sd(accuracies(base_dev))} | "
            f"{float(row['wall_s']) / 60:.1f} min | {row['examples_per_s']} | {row['precision']}, {row['cpu']} | {small_cells} |"
        )
    if base_tests:
        lines += [
            f"| mean of the splits run | {mean_sd(base_tests)} | | | | | {mean_sd(small_tests)} | |",
            "",
            f"{BASE_CHECKPOINT}: {len(base_tests)} of 6 splits run, {sum(t >= 0.95 for t in base_tests)} reach 95 %; on the same "
            f"splits it is {100 * (statistics.mean(base_tests) - statistics.mean(small_tests)):+.2f} points from MiniLM-L6.",
        ]
    return lines


if __name__ == "__main__":
    main(__doc__, runs(), render)
