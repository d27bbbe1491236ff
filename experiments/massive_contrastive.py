"""Seeds 000 and 001 on MASSIVE en-US with all-MiniLM-L6-v2: contrastive training, few-shot, label noise.

    python experiments/massive_contrastive.py                      # everything missing, then the tables
    python experiments/massive_contrastive.py --recipes supcon_probe simcse_probe ce_scl
    python experiments/massive_contrastive.py --render
    python experiments/massive_contrastive.py --checkpoint all-mpnet-base-v2 --recipes supcon_probe_mean --seeds 1 \
        --contrastive.epochs 3                                    # the base-model row (~47 min on one thread)

1. Seed 000: SimCLR/SimCSE -> frozen probe (seed: 61.83 %), SupCon -> frozen probe (88.20 %), CE+SCL fine-tuning.
2. Seed 001 few-shot: N = 20, 100, 1000 training examples sampled with the label distribution, CE vs
   CE+SCL, 10 sampling seeds each; the 3 best by dev accuracy, mean ± sd of their test accuracy.
3. Seed 001 robustness: 0 / 10 / 20 / 50 % of the training labels flipped, CE vs CE+SCL, 3 epochs on full train.
Resumable through experiments/results.csv; tables in experiments/massive_contrastive.md.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import REPO, Run, main, mean_sd, read_rows, write_markdown  # noqa: E402

CONFIGS = REPO / "configs"
FEW_SHOT_EPOCHS = {20: 40, 100: 20, 1000: 10}
FEW_SHOT_SEEDS = list(range(1, 11))
NOISE = [0.0, 0.1, 0.2, 0.5]
BASE_CHECKPOINT = "all-mpnet-base-v2"
BASE_RECIPE = "supcon_probe_mean"


def scl_overrides(lam: float) -> list[str]:
    """Overrides for (1 - lam) * CE + lam * SCL at tau 0.3 (Gunel et al.)."""
    return ["--train.objective", "ce+scl", "--train.scl_lambda", str(lam), "--train.scl_temperature", "0.3"]


METHODS = {"ce": [], "scl": scl_overrides(0.9)}
# The noise table also with lambda 0.3: at 0.9 the CE term gets a tenth of the gradient and 3 epochs measure slow learning.
NOISE_METHODS = {**METHODS, "scl03": scl_overrides(0.3)}


def few_shot_overrides(n: int) -> list[str]:
    steps = -(-n // 16) * FEW_SHOT_EPOCHS[n]
    return [
        "--data.few_shot",
        str(n),
        "--train.epochs",
        str(FEW_SHOT_EPOCHS[n]),
        "--train.batch_size",
        "16",
        "--train.lr",
        "1e-4",
        "--train.head_lr",
        "1e-3",
        "--train.warmup_ratio",
        "0.1",
        "--train.eval_every",
        str(max(1, steps // 5)),
    ]


def runs() -> list[Run]:
    plan = [
        Run("massive_supcon", "supcon_probe", CONFIGS / "massive_supcon_probe.yaml", 1),
        *(
            Run(
                "massive_supcon",
                "supcon_probe_mean",
                CONFIGS / "massive_supcon_probe.yaml",
                seed,
                ["--model.pooling", "mean"],
            )
            for seed in (1, 2)
        ),
        Run(
            "massive_supcon",
            "supcon_probe_mean_30ep",
            CONFIGS / "massive_supcon_probe.yaml",
            1,
            ["--model.pooling", "mean", "--contrastive.epochs", "30"],
        ),
        Run(
            "massive_supcon",
            "supcon_probe_mean_proj128",
            CONFIGS / "massive_supcon_probe.yaml",
            1,
            ["--model.pooling", "mean", "--contrastive.projection_size", "128"],
        ),
        Run(
            "massive_supcon",
            "supcon_probe_mean_bs64",
            CONFIGS / "massive_supcon_probe.yaml",
            1,
            ["--model.pooling", "mean", "--contrastive.batch_size", "64", "--contrastive.lr", "1e-4"],
        ),
        Run(
            "massive_supcon",
            "supcon_probe_mean_tau0.1",
            CONFIGS / "massive_supcon_probe.yaml",
            1,
            ["--model.pooling", "mean", "--contrastive.temperature", "0.1"],
        ),
        *(
            Run(
                "massive_supcon",
                "supcon_probe_mean_2views",
                CONFIGS / "massive_supcon_probe.yaml",
                seed,
                ["--model.pooling", "mean", "--contrastive.views", "2"],
            )
            for seed in (1, 2, 3)
        ),
        Run(
            "massive_supcon",
            "supcon_probe_mean_2views_bs32",
            CONFIGS / "massive_supcon_probe.yaml",
            1,
            ["--model.pooling", "mean", "--contrastive.views", "2", "--contrastive.batch_size", "32"],
        ),
        Run("massive_simcse", "simcse_probe", CONFIGS / "massive_simcse_probe.yaml", 1),
        Run("massive_scl", "ce_scl", CONFIGS / "massive_ce_scl.yaml", 1),
        Run("massive_scl", "ce_scl_lambda0.3", CONFIGS / "massive_ce_scl.yaml", 1, ["--train.scl_lambda", "0.3"]),
    ]
    for fraction in NOISE:
        for method, extra in NOISE_METHODS.items():
            plan.append(
                Run(
                    "massive_noise",
                    f"{method}_noise{int(fraction * 100)}",
                    CONFIGS / "massive_best.yaml",
                    1,
                    ["--data.label_noise", str(fraction), "--train.epochs", "3", *extra],
                )
            )
    for seed in FEW_SHOT_SEEDS:
        for n in FEW_SHOT_EPOCHS:
            for method, extra in METHODS.items():
                plan.append(
                    Run(
                        "massive_fewshot",
                        f"{method}_n{n}",
                        CONFIGS / "massive_best.yaml",
                        seed,
                        [*few_shot_overrides(n), *extra],
                    )
                )
    return plan


def value(rows: list[dict], recipe: str, seed: str, split: str, metric: str = "accuracy") -> float | None:
    for r in rows:
        if r["recipe"] == recipe and r["seed"] == seed and r["split"] == split and r["metric"] == metric:
            return float(r["value"])
    return None


def drop(clean: float | None, noisy: float | None) -> str:
    """Accuracy points lost from the clean to the noisiest labels."""
    return f"{100 * (clean - noisy):.1f}" if clean is not None and noisy is not None else "(not run yet)"


def base_model_section() -> list[str]:
    """SupCon -> frozen probe with all-mpnet-base-v2 beside MiniLM-L6's same recipe, against the 88.5 target."""
    rows = [
        r
        for r in read_rows(checkpoint=None)
        if r["experiment"] == "massive_supcon" and r["recipe"] == BASE_RECIPE and r["metric"] == "accuracy"
    ]
    lines = [
        "",
        f"### SupCon with {BASE_CHECKPOINT}",
        "",
        f"SupCon on mean pooling (bs 16, tau 0.07) -> the same frozen probe, with {BASE_CHECKPOINT} (768-d, 110M parameters):",
        "3 SupCon epochs instead of 10 (an epoch of the base model is ~14 min at 13-15 examples/s on one thread), fp32 (the",
        "Xeon it ran on has avx512_bf16 but no AMX; its bf16 matmul runs at ~0.6x fp32). Target with the base model: >= 88.5",
        "test. MiniLM-L6's SupCon reached its best dev by 10 epochs and gained nothing from 30 (above).",
        "",
        "| checkpoint | seeds | test accuracy | dev accuracy | wall per run (both stages) | precision, CPU |",
        "|---|---|---|---|---|---|",
    ]
    for checkpoint in ("all-MiniLM-L6-v2", BASE_CHECKPOINT):
        mine = [r for r in rows if r["checkpoint"] == checkpoint]
        if not mine:
            lines.append(f"| {checkpoint} | | not run yet | | | |")
            continue
        seeds = sorted({r["seed"] for r in mine})
        tests = [t for s in seeds if (t := value(mine, BASE_RECIPE, s, "test")) is not None]
        devs = [d for s in seeds if (d := value(mine, BASE_RECIPE, s, "dev")) is not None]
        walls = {r["seed"]: float(r["wall_s"]) for r in mine}
        machine = "; ".join(sorted({f"{r['precision']}, {r['cpu']}" for r in mine if r.get("cpu")})) or "not recorded"
        lines.append(
            f"| {checkpoint} | {len(seeds)} | {mean_sd(tests)} | {mean_sd(devs)} | "
            f"{statistics.mean(walls.values()) / 60:.1f} min | {machine} |"
        )
    return lines


def render() -> Path:
    rows = read_rows()
    lines = ["# Contrastive learning, few-shot and label noise on MASSIVE en-US (all-MiniLM-L6-v2)", ""]
    lines += [
        "## Seed 000: contrastive training",
        "",
        "| method | test accuracy | dev accuracy | seed report (BERT-base) | wall |",
        "|---|---|---|---|---|",
    ]
    for experiment, recipe, label, reference in [
        ("massive_simcse", "simcse_probe", "SimCLR/SimCSE (dropout views) -> frozen probe", "61.83"),
        ("massive_supcon", "supcon_probe", "SupCon (bs 16, tau 0.07) -> frozen probe", "88.20"),
        ("massive_supcon", "supcon_probe_mean", "SupCon on mean pooling (bs 16, tau 0.07) -> frozen probe", "88.20"),
        (
            "massive_supcon",
            "supcon_probe_mean_30ep",
            "SupCon on mean pooling, 30 epochs as the seed (bs 16, tau 0.07) -> frozen probe",
            "88.20",
        ),
        (
            "massive_supcon",
            "supcon_probe_mean_proj128",
            "SupCon on mean pooling, 128-d projection head for the loss (bs 16, tau 0.07) -> frozen probe",
            "88.20",
        ),
        (
            "massive_supcon",
            "supcon_probe_mean_bs64",
            "SupCon on mean pooling, bs 64, lr 1e-4 (tau 0.07) -> frozen probe",
            "88.20",
        ),
        (
            "massive_supcon",
            "supcon_probe_mean_tau0.1",
            "SupCon on mean pooling, tau 0.1 (bs 16) -> frozen probe",
            "88.20",
        ),
        (
            "massive_supcon",
            "supcon_probe_mean_2views",
            "SupCon on mean pooling, two dropout views per sentence (Khosla et al.; bs 16, tau 0.07) -> frozen probe",
            "88.20",
        ),
        (
            "massive_supcon",
            "supcon_probe_mean_2views_bs32",
            "SupCon on mean pooling, two dropout views, bs 32 (lr 5e-5, tau 0.07) -> frozen probe",
            "88.20",
        ),
        ("massive_scl", "ce_scl", "CE + 0.9 SCL fine-tuning (tau 0.3; Gunel et al.'s lambda)", "n/a"),
        ("massive_scl", "ce_scl_lambda0.3", "CE + 0.3 SCL fine-tuning (tau 0.3)", "n/a"),
    ]:
        mine = [r for r in rows if r["experiment"] == experiment and r["recipe"] == recipe]
        seeds = sorted({r["seed"] for r in mine})
        tests = [t for s in seeds if (t := value(mine, recipe, s, "test")) is not None]
        devs = [d for s in seeds if (d := value(mine, recipe, s, "dev")) is not None]
        walls = {r["seed"]: float(r["wall_s"]) for r in mine}
        wall = f"{statistics.mean(walls.values()) / 60:.1f} min" if walls else ""
        if len(seeds) > 1:
            label += f" ({len(seeds)} seeds: mean ± sd)"
        lines.append(f"| {label} | {mean_sd(tests)} | {mean_sd(devs)} | {reference} | {wall} |")
    ce = [r for r in rows if r["experiment"] == "massive_seed000"]
    ce_test, ce_dev = value(ce, "best", "1", "test"), value(ce, "best", "1", "dev")
    ce_alone = (
        f"{mean_sd([ce_test])} test / {mean_sd([ce_dev])} dev"
        if ce_test is not None and ce_dev is not None
        else "(not run yet)"
    )
    lines += [
        "",
        "CE + SCL fine-tunes with the best CE recipe (LLRD 0.95, warm-up 0.07, linear, bs 16, 10 epochs); the same recipe with CE alone",
        f"reaches {ce_alone} (seed 1, `massive_table.md`).",
        "",
        "Every probe is the seed's: the pooled sentence vector ([CLS], or the mean of the tokens where the row says mean pooling; the",
        "same pooling in both stages) -> 512 ReLU -> linear on the frozen, contrastively trained encoder (30 probe epochs, lr 1e-3, best",
        "epoch on dev). SupCon trains the encoder 10 epochs unless the row says otherwise: the seed's 30 epochs (74 min) gave no gain",
        "over 10 (dev 87.90 vs 88.29), so 10 is where it has converged. Other probes on the [CLS] SupCon encoder (dev / test %): linear",
        "lr 1e-2 87.46 / 88.16, linear lr 1e-3 87.90 / 88.33, MLP lr 3e-4 87.75 / 87.86, MLP dropout 0.3 87.80 / 88.00. None beats the",
        "table's probe on dev (88.05), so the table keeps it. Two dropout views per sentence (Khosla et al.'s multiviewed batch: every",
        "anchor has its twin as a positive, where one view at bs 16 leaves most anchors without any) give the best dev of every variant",
        "on all three seeds (88.49 / 88.64 / 88.83) but not the best test (88.30 / 87.56 / 87.22): dev and test disagree by up to 1.6",
        "points across seeds, more than any difference between the variants. Across all SupCon variants test stays within 87.2-88.3:",
        "the frozen probe sits about one point below full CE fine-tuning (89.04), and the 88.5 target was not reached.",
        "all-MiniLM-L6-v2 is already a trained sentence encoder, which is why SimCSE's probe is far above the seed's BERT-base (61.83).",
        "",
        "t-SNE of the first 10 test intents: the checkpoint (its mean-pooled sentence embedding), after SimCSE, after SupCon ([CLS]),",
        "with silhouette and 5-NN accuracy (numbers in the .json beside it). SupCon pulls each intent into a tight cluster",
        "(silhouette 0.09 -> 0.41, 5-NN 0.877 -> 0.930); SimCSE's dropout views loosen them slightly (0.037, 0.857).",
        "`minbert plot-embeddings all-MiniLM-L6-v2 experiments/runs/massive_simcse/simcse_probe/seed1 experiments/runs/massive_supcon/supcon_probe/seed1 --data .../test.jsonl --format massive`",
        "",
        "![t-SNE before and after contrastive training](figures/massive_contrastive_tsne.png)",
        "",
        "The same plot for the table's best SupCon encoder (mean pooling, seed 1): silhouette 0.089 -> 0.407, 5-NN 0.877 -> 0.932,",
        "as tight as the [CLS] SupCon encoder; general_quirky, the catch-all intent, stays the one diffuse cluster.",
        "`minbert plot-embeddings all-MiniLM-L6-v2 experiments/runs/massive_supcon/supcon_probe_mean/seed1 --data .../test.jsonl --format massive`",
        "",
        "![t-SNE before and after SupCon on mean pooling](figures/massive_supcon_mean_tsne.png)",
        *base_model_section(),
    ]
    lines += [
        "",
        "## Seed 001: few-shot (top 3 of 10 sampling seeds by dev; test accuracy mean ± sd)",
        "",
        "| N | CE | CE + SCL | seeds run |",
        "|---|---|---|---|",
    ]
    fewshot = [r for r in rows if r["experiment"] == "massive_fewshot"]
    for n in FEW_SHOT_EPOCHS:
        cells, counts = [], []
        for method in METHODS:
            recipe = f"{method}_n{n}"
            seeds = sorted({r["seed"] for r in fewshot if r["recipe"] == recipe})
            scored = [(value(fewshot, recipe, s, "dev"), value(fewshot, recipe, s, "test")) for s in seeds]
            top = sorted((d, t) for d, t in scored if d is not None and t is not None)[-3:]
            cells.append(mean_sd([t for _, t in top]))
            counts.append(f"{method} {len(seeds)}/10")
        lines.append(f"| {n} | {cells[0]} | {cells[1]} | {', '.join(counts)} |")
    lines += [
        "",
        "Each run: the best CE recipe (LLRD 0.95, linear decay) at bs 16, lr 1e-4 (head 1e-3), warm-up 10 %, 40 / 20 / 10 epochs for",
        "N = 20 / 100 / 1000, five dev evaluations, the best kept; CE + SCL adds 0.9 SCL at tau 0.3 (Gunel et al.). N is the total over",
        "the 60 intents, as in the seed, so at N = 20 at most 20 intents are seen in training. 1-4 min per run on one core.",
        "",
        "## Seed 001: label noise (3 epochs on full train, best recipe; test accuracy)",
        "",
        "| noise | CE | CE + 0.9 SCL | CE + 0.3 SCL |",
        "|---|---|---|---|",
    ]
    noise = [r for r in rows if r["experiment"] == "massive_noise"]
    by_noise = {
        fraction: {m: value(noise, f"{m}_noise{int(fraction * 100)}", "1", "test") for m in NOISE_METHODS}
        for fraction in NOISE
    }
    for fraction, by_method in by_noise.items():
        lines.append(
            f"| {int(fraction * 100)} % | "
            + " | ".join(f"{100 * c:.2f}" if c is not None else "not run yet" for c in by_method.values())
            + " |"
        )
    clean, noisiest = by_noise[NOISE[0]], by_noise[NOISE[-1]]
    loss = {m: drop(clean[m], noisiest[m]) for m in NOISE_METHODS}
    lines += [
        "",
        "One run each (seed 1; the flipped labels are the same for every method at a given rate), 6.6 min per CE + 0.3 SCL run.",
        f"The seed reports SCL as more robust to noise; here it is not at either lambda. CE loses {loss['ce']} points from 0 to 50 % noise,",
        f"CE + 0.3 SCL {loss['scl03']} and CE + 0.9 SCL {loss['scl']}: the supervised contrastive term pulls together whatever shares a label, flipped",
        "labels included. At 0.9 part of the gap is also slow learning (the CE term gets a tenth of the gradient in 3 epochs).",
        "",
        "Machine-readable rows: `experiments/results.csv`.",
        "",
    ]
    return write_markdown("massive_contrastive.md", lines)


if __name__ == "__main__":
    main(__doc__, runs(), render)
