"""The SST-2 intermediate stage that some sentiment rows start from (configs/sst2_intermediate.yaml).

Its run directory is fixed, so the rows that use its encoder name it as their checkpoint; scripts put
`SST2_STAGE` before those rows in their plan, and the runner skips it once it is in results.csv.
"""

from __future__ import annotations

from runner import HERE, REPO, Run, read_rows

SST2_STAGE = Run(
    "sst2_intermediate",
    "sst2_stage",
    REPO / "configs" / "sst2_intermediate.yaml",
    1,
    metrics={"sst2_accuracy": "sst2_accuracy"},
)
SST2_ENCODER = (
    HERE / "runs" / SST2_STAGE.experiment / SST2_STAGE.recipe / f"seed{SST2_STAGE.seed}" / "model" / "encoder"
)
FROM_SST2 = ["--model.checkpoint", str(SST2_ENCODER)]


def describe_stage() -> list[str]:
    """Markdown lines on the stage itself: what it trains and its SST-2 dev accuracy and wall."""
    rows = [r for r in read_rows() if r["experiment"] == SST2_STAGE.experiment and r["recipe"] == SST2_STAGE.recipe]
    done = next((r for r in rows if r["metric"] == "sst2_accuracy"), None)
    result = (
        f"SST-2 dev accuracy {float(done['value']):.3f}, {float(done['wall_s']) / 60:.1f} min"
        if done
        else "not run yet"
    )
    return [
        "The SST-2 encoder: one epoch on GLUE SST-2 train (67,349 phrases from the SST training trees, binary sentiment), mean",
        f"pooling, linear head, bs 32, lr 5e-5 (head 2e-4), warm-up 10 % (`configs/sst2_intermediate.yaml`; {result}).",
        "SST-2's phrases come from SST train sentences, but 53 of them are also SST-5 or UCI evaluation sentences, all short stock",
        'phrases ("bad", "awful", "gets the job done"; 28 of the 3,000 UCI sentences, 2 of the 1,101 SST-5 dev sentences).',
        "`data.exclude` drops those rows, so the stage trains on 67,296 and sees no evaluation sentence (tests/data/test_overlap.py).",
    ]
