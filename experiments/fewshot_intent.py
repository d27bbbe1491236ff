"""Few-shot intent detection on DNNC's protocol: HWU64 and CLINC150 at 5 and 10 examples per intent, on the
published split and on 5 seeded resamples of the full training set, test accuracy beside the published numbers.

    python experiments/fewshot_intent.py                                   # MiniLM, every cell, then the table
    python experiments/fewshot_intent.py --checkpoint all-mpnet-base-v2 --bf16 --recipes hwu64_10shot
    python experiments/fewshot_intent.py --render                          # only experiments/fewshot_intent.md

SetFit runs beside each minbert run, on its rows (experiments/setfit_beside.py; its environment comes from
`python experiments/setfit_contender.py --setup`).

A run is (dataset and shots, checkpoint, split): split 0 is the published train_K.csv, splits 1-5 sample K per
intent from train.csv with data.sample_seed = split (the training seed is the split too). The recipe is
configs/fewshot_intent.yaml, chosen before any test number was seen; the best epoch is chosen on dev.
Resumable through experiments/results.csv (runner.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import REPO, Run, checkpoints_in, main, mean_sd, read_rows, write_markdown  # noqa: E402
from setfit_beside import contenders, protocol_walls, setfit_beside  # noqa: E402

CONFIG = REPO / "configs" / "fewshot_intent.yaml"
SPLITS = range(6)  # 0 = the published split, 1-5 = seeded resamples
DATASETS = {"hwu64": "HWU64", "clinc150_fewshot": "CLINC150"}
# Published test accuracy (%), from each dataset's PROVENANCE.md: (5-shot, 10-shot).
PUBLISHED = {
    "hwu64": {"RoBERTa + classifier": (75.56, 82.90), "CPFT": (82.03, 87.13), "ICDA": (82.45, 87.41)},
    "clinc150_fewshot": {"RoBERTa + classifier": (87.99, 91.55), "CPFT": (92.34, 94.18), "ICDA": (92.62, 94.84)},
}
TARGETS = {("hwu64", 10): 87.5, ("hwu64", 5): 82.5, ("clinc150_fewshot", 10): 94.9, ("clinc150_fewshot", 5): 92.7}


def split_overrides(dataset: str, shots: int, split: int) -> list[str]:
    folder = f"../shared/data/{dataset}"
    files = ["--data.dev", f"{folder}/dev.csv", "--data.test", f"{folder}/test.csv"]
    if split == 0:
        return ["--data.train", f"{folder}/train_{shots}.csv", *files]
    return [
        *("--data.train", f"{folder}/train.csv", *files),
        *("--data.shots_per_class", str(shots), "--data.sample_seed", str(split)),
    ]


def runs() -> list[Run]:
    order = [(d, k, s) for s in SPLITS for k in (10, 5) for d in DATASETS]  # every cell's published split first
    return [Run(f"fewshot_{d}", f"{d}_{k}shot", CONFIG, s, split_overrides(d, k, s)) for d, k, s in order]


def verdict(test: dict[str, tuple[float, float]], target: float, checkpoint: str) -> str:
    """Met or missed (by how much) for MPNet-base, whose cells carry the issue's bar; the published split decides."""
    if checkpoint != "all-mpnet-base-v2" or "0" not in test:
        return ""
    gap = 100 * test["0"][0] - target
    return "met" if gap >= 0 else f"missed by {-gap:.2f}"


def render() -> Path:
    rows = [r for r in read_rows(checkpoint=None) if r["experiment"].startswith("fewshot_")]
    lines = [
        "# Few-shot intent detection (DNNC's splits): test accuracy, %",
        "",
        "K examples per intent; split 0 is the published train_K file, splits 1-5 sample K per intent from the full",
        "training set (seeded). Mean ± sd over the splits run; the published split's number alone beside it. minbert:",
        "`configs/fewshot_intent.yaml` (chosen before any test number; best epoch on dev). SetFit 1.2: the paper's recipe",
        "on the very same rows and checkpoint, one thread on the same CPU (no dev set). Target: the issue's bar for",
        "MPNet-base, above ICDA, judged on the published split; against SetFit: as accurate in at most half its wall time,",
        "judged on the splits both ran on one CPU at one precision (SetFit runs fp32, so a split minbert ran in bf16 is",
        "not judged).",
        "",
        "CLINC150 MPNet's published split first ran in bf16 in an earlier round: 5-shot 92.42 (dev 93.03) in 1,733 s,",
        "10-shot 92.91 (dev 94.60) in 3,113 s. It is rerun in fp32, on the CPU SetFit's MPNet splits ran on, so that",
        "it can be judged against SetFit at one precision like every later MPNet split; the rerun was decided before",
        "its result, and its row replaces the bf16 one, higher or lower. In fp32: 5-shot 92.18 (dev 92.90) in 2,147 s,",
        "10-shot 93.69 (dev 94.77) in 2,949 s.",
        "",
        "| dataset | K | checkpoint | contender | splits | test acc. (mean ± sd) | published split | ICDA | CPFT | RoBERTa + clf "
        "| target (MPNet) | met? | against SetFit, same splits, CPU and precision | wall per run | precision, CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cells: dict[tuple[str, str], list[dict[str, tuple[float, float]]]] = {}
    for dataset, name in DATASETS.items():
        for shots in (5, 10):
            recipe = f"{dataset}_{shots}shot"
            published = PUBLISHED[dataset]
            column = 0 if shots == 5 else 1
            target = TARGETS[(dataset, shots)]
            references = " | ".join(
                f"{published[method][column]:.2f}" for method in ("ICDA", "CPFT", "RoBERTa + classifier")
            )
            for checkpoint in checkpoints_in(rows) or ["all-MiniLM-L6-v2"]:
                for c in contenders([r for r in rows if r["checkpoint"] == checkpoint], recipe):
                    cells.setdefault((c.label, checkpoint), []).append(c.splits)
                    if c.label == "SetFit" and not c.splits:
                        continue
                    split0 = f"{100 * c.splits['0'][0]:.2f}" if "0" in c.splits else "not run yet"
                    met = verdict(c.splits, target, checkpoint) if c.label == "minbert" else ""
                    lines.append(
                        f"| {name} | {shots} | {checkpoint} | {c.label} | {len(c.splits)}/{len(SPLITS)} | "
                        f"{mean_sd(c.accuracy)} | {split0} | {references} | {target:.1f} | "
                        f"{met} | {c.against} | {c.wall_text} | {c.machine} |"
                    )
    lines += protocol_walls(cells, len(SPLITS), f"{len(SPLITS)} runs in each of the 4 cells")
    lines += [
        "",
        "Machine-readable rows: `experiments/results.csv` (experiments `fewshot_hwu64`, `fewshot_clinc150_fewshot`).",
        "",
    ]
    return write_markdown("fewshot_intent.md", lines)


if __name__ == "__main__":
    main(__doc__, runs(), render, beside=setfit_beside)
