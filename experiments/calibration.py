"""Temperature scaling on MASSIVE en-US: test ECE before and after one temperature fitted on dev (Guo et al. 2017).

    python experiments/calibration.py            # run what is missing, then render the table
    python experiments/calibration.py --render   # only render experiments/calibration.md
    python experiments/calibration.py --checkpoint all-mpnet-base-v2 --bf16

The make-demo recipe (configs/massive_intent.yaml) with `calibration: temperature`. ECE with 15 equal-width
bins; "before" is the same model's probabilities at T = 1. Resumable through experiments/results.csv.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import DEFAULT_CHECKPOINT, REPO, Run, checkpoints_in, main, read_rows, write_markdown  # noqa: E402

EXPERIMENT = "massive_calibration"
METRICS = {m: m for m in ("accuracy", "macro_f1", "ece", "ece_before_calibration", "nll")}
RUNS = [
    Run(
        EXPERIMENT,
        "demo_temperature",
        REPO / "configs" / "massive_intent.yaml",
        1,
        ["--calibration", "temperature"],
        metrics=METRICS,
    )
]


def render() -> Path:
    rows = [r for r in read_rows(checkpoint=None) if r["experiment"] == EXPERIMENT]
    lines = [
        "# Calibration: MASSIVE en-US, temperature scaling",
        "",
        "One softmax temperature fitted on dev (NLL, LBFGS on log T), applied to every probability; predictions and",
        "accuracy are unchanged. ECE: 15 equal-width bins of the top-class probability. Target: test ECE <= 0.02.",
        "",
        "| checkpoint | split | accuracy | ECE before | ECE after | NLL after | wall | precision, CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for checkpoint in checkpoints_in(rows) or [DEFAULT_CHECKPOINT]:
        for split in ("dev", "test"):
            mine = {r["metric"]: r for r in rows if r["checkpoint"] == checkpoint and r["split"] == split}
            if "ece" not in mine:
                lines.append(f"| {checkpoint} | {split} | not run yet | | | | | |")
                continue
            value = {m: float(r["value"]) for m, r in mine.items()}
            first = mine["ece"]
            lines.append(
                f"| {checkpoint} | {split} | {100 * value['accuracy']:.2f} | {value['ece_before_calibration']:.4f} | "
                f"{value['ece']:.4f} | {value['nll']:.4f} | {float(first['wall_s']) / 60:.1f} min | "
                f"{first['precision']}, {first['cpu']} |"
            )
    lines += ["", "Machine-readable rows: `experiments/results.csv` (experiment `massive_calibration`).", ""]
    return write_markdown("calibration.md", lines)


if __name__ == "__main__":
    main(__doc__, RUNS, render)
