"""Seed 003's table: SST-5 and CFIMDB, frozen encoder vs full fine-tuning, dev accuracy.

    python experiments/seed003_table.py            # run what is missing, then render the table
    python experiments/seed003_table.py --render   # only render experiments/seed003_table.md
    python experiments/seed003_table.py --checkpoint all-mpnet-base-v2 --bf16 --recipes sst5_frozen cfimdb_frozen
    python experiments/seed003_table.py --checkpoint all-mpnet-base-v2 --bf16 --recipes cfimdb_finetune_512 \
        --train.threads 1 --train.checkpoint_every 25   # the full CFIMDB recipe: hours on one core, resumable

References: the minBERT assignment's means over 10 seeds (SST-5 frozen 0.391, fine-tuned 0.515,
CFIMDB fine-tuned 0.966) and seed 003's own CFIMDB frozen run (0.755). CFIMDB's test labels are
placeholders, so dev is what both report. Resumable through experiments/results.csv.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import DEFAULT_CHECKPOINT, REPO, Run, checkpoints_in, main, mean_sd, read_rows, write_markdown  # noqa: E402

EXPERIMENT = "seed003"
# recipe -> (config, reference dev accuracy, where the reference comes from)
RECIPES = {  # the frozen probes first: with cached features they take minutes
    "sst5_frozen": ("sst5_frozen.yaml", 0.391, "assignment, mean of 10 seeds"),
    "cfimdb_frozen": ("cfimdb_frozen.yaml", 0.755, "seed 003's run"),
    "sst5_finetune": ("sst5_finetune.yaml", 0.515, "assignment, mean of 10 seeds"),
    "cfimdb_finetune": ("cfimdb_finetune.yaml", 0.966, "assignment, mean of 10 seeds"),
    "cfimdb_finetune_512": ("cfimdb_finetune.yaml", 0.966, "assignment, mean of 10 seeds"),
}
# recipes that are their config with overrides: CFIMDB at a max_length that covers the reviews (the longest is
# ~520 tokens; at 256, half of them are cut)
OVERRIDES = {"cfimdb_finetune_512": ["--model.max_length", "512"]}
# SST-5 fine-tuning also with run seed 2: its 0.494 is the best SST-5 dev score minbert has, and the
# CS224N multitask table's SST-5 >= 0.50 target needs to know how much of that is the seed.
EXTRA_SEEDS = {"sst5_finetune": (2,)}


def render() -> Path:
    every = [r for r in read_rows(checkpoint=None) if r["experiment"] == EXPERIMENT]
    rows = [r for r in every if r["checkpoint"] == DEFAULT_CHECKPOINT]
    lines = [
        "# Seed 003: frozen encoder vs full fine-tuning, all-MiniLM-L6-v2 and all-mpnet-base-v2",
        "",
        "Pooled [CLS] -> dropout 0.3 -> linear; bs 8, up to 10 epochs, best epoch on dev (CFIMDB fine-tuning stops after 3 epochs",
        "without dev improvement: max_length 256 reviews run at ~6 examples/s). Dev accuracy (CFIMDB test labels are placeholders).",
        "",
        "| checkpoint | task | mode | dev accuracy | test accuracy | reference (dev) | wall | train ex/s | precision, CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for checkpoint, recipe in [(c, r) for c in checkpoints_in(every) for r in RECIPES]:
        reference, source = RECIPES[recipe][1], RECIPES[recipe][2]
        mine = {
            (r["split"], r["metric"]): r
            for r in every
            if r["recipe"] == recipe and r["seed"] == "1" and r["checkpoint"] == checkpoint
        }
        if not mine and checkpoint != DEFAULT_CHECKPOINT:
            continue
        dev, test = mine.get(("dev", "accuracy")), mine.get(("test", "accuracy"))
        task, mode = recipe.split("_", 1)
        dev_text = f"{float(dev['value']):.3f}" if dev else "not run yet"
        test_text = f"{float(test['value']):.3f}" if test else "n/a"
        wall = f"{float(dev['wall_s']) / 60:.1f} min" if dev else ""
        rate = dev["examples_per_s"] if dev else ""
        machine = f"{dev['precision']}, {dev['cpu']}" if dev and dev.get("cpu") else "not recorded"
        lines.append(
            f"| {checkpoint} | {task} | {mode} | {dev_text} | {test_text} | {reference:.3f} ({source}) | {wall} | {rate} | {machine} |"
        )
    for recipe in EXTRA_SEEDS:
        task, mode = recipe.split("_", 1)
        by_seed = {
            (r["seed"], r["split"]): float(r["value"])
            for r in rows
            if r["recipe"] == recipe and r["metric"] == "accuracy"
        }
        ran = sorted({seed for seed, _ in by_seed}, key=int)
        cells = {
            split: [by_seed[(seed, split)] for seed in ran if (seed, split) in by_seed] for split in ("dev", "test")
        }
        text = {
            split: " / ".join(f"{v:.3f}" for v in values) + (f" (mean {mean_sd(values)} %)" if len(values) > 1 else "")
            for split, values in cells.items()
        }
        lines += [
            "",
            f"{task} {mode} by run seed ({' / '.join(ran)}; the table's row is seed 1): dev {text['dev']}, test {text['test']}.",
        ]
    if any(r["checkpoint"] != DEFAULT_CHECKPOINT and r["recipe"] == "sst5_finetune" for r in every):
        lines += [
            "",
            "all-mpnet-base-v2 SST-5 fine-tuning (bf16 autocast, max_length 128, one thread beside another run): dev peaked",
            "at epoch 2 (0.541) and fell for three epochs (0.533, 0.516, 0.522); the run was resumed after epoch 5 with",
            "`--train.patience 3` and stopped at epoch 6 instead of running all 10. Its numbers are epoch 2's weights,",
            "which running on could only have replaced with a better dev epoch.",
        ]
    if any(r["checkpoint"] != DEFAULT_CHECKPOINT and r["recipe"] == "cfimdb_finetune" for r in every):
        lines += [
            "",
            "all-mpnet-base-v2 CFIMDB fine-tuning (fp32 on a Xeon with avx512_bf16 but no AMX, where a bf16 matmul runs at",
            "~0.6x fp32; one thread beside another run): one epoch instead of up to 10, since 256-token reviews run at under",
            "1 example/s here (an epoch is ~35 min) and MiniLM's dev accuracy had stopped rising after its first epoch.",
            "`finetune_512` is the full recipe: max_length 512, up to 10 epochs, early stopping after 3 without improvement.",
            "On all-mpnet-base-v2 (bf16 on an AMD EPYC with avx512_bf16, one thread, ~1 example/s) dev peaked at epoch 1",
            "(0.967), then 0.959 / 0.951 / 0.959, and the run stopped after epoch 4; it ran in three sittings resumed from",
            "its step checkpoints (one after an out-of-memory kill), and its wall time is their sum.",
        ]
    lines += [
        "",
        "Targets with all-mpnet-base-v2 (dev): SST-5 fine-tuned >= 0.53, frozen >= 0.42; CFIMDB fine-tuned >= 0.966.",
        "Machine-readable rows: `experiments/results.csv` (experiment `seed003`).",
        "",
    ]
    return write_markdown("seed003_table.md", lines)


if __name__ == "__main__":
    plan = [
        Run(EXPERIMENT, recipe, REPO / "configs" / config, seed=1, overrides=OVERRIDES.get(recipe, []))
        for recipe, (config, _, _) in RECIPES.items()
    ]
    plan += [
        Run(EXPERIMENT, recipe, REPO / "configs" / RECIPES[recipe][0], seed)
        for recipe, seeds in EXTRA_SEEDS.items()
        for seed in seeds
    ]
    main(__doc__, plan, render)
