"""GoEmotions multi-label emotion tagging (28 labels; Demszky et al. 2020; see the data's PROVENANCE).

    python experiments/goemotions.py --recipes per_label global fixed_0.5 balanced   # run what is missing, render
    python experiments/goemotions.py --render   # only render experiments/goemotions.md
    python experiments/goemotions.py --checkpoint all-mpnet-base-v2 --recipes per_label global fixed_0.5

configs/goemotions.yaml (make-demo recipe, 3 epochs, selected on dev macro-F1). Thresholds: one per label
tuned on dev (the config's), and, as refits of that same trained model (`minbert refit`, no second
training), one global threshold tuned on dev and a fixed 0.5. Class imbalance: the same recipe with
`train.class_weights balanced` (BCE pos_weight = negatives / positives per label). Test metrics.
Published BERT-base: macro-F1 0.46 (precision 0.40, recall 0.63). Resumable through experiments/results.csv.
The `*_1_epoch` recipes are the base model's first, shortened run (`--recipes per_label_1_epoch ...`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import DEFAULT_CHECKPOINT, REPO, Run, checkpoints_in, main, read_rows, write_markdown  # noqa: E402

EXPERIMENT = "goemotions"
CONFIG = REPO / "configs" / "goemotions.yaml"
SHOWN = (
    "macro_f1",
    "micro_f1",
    "samples_f1",
    "subset_accuracy",
    "hamming_loss",
    "weighted_precision",
    "weighted_recall",
)
METRICS = {m: m for m in ("accuracy", *SHOWN)}
TARGETS = {DEFAULT_CHECKPOINT: 0.46, "all-mpnet-base-v2": 0.50}
# recipe -> (label, overrides, the recipe whose trained model it refits, or None: it trains)
RECIPES: dict[str, tuple[str, list[str], str | None]] = {
    "per_label": ("thresholds per label, tuned on dev", [], None),
    "global": ("one threshold, tuned on dev (refit)", ["--model.multilabel_threshold", "global"], "per_label"),
    "fixed_0.5": ("threshold 0.5 for every label (refit)", ["--model.multilabel_threshold", "0.5"], "per_label"),
    "balanced": ("class weights balanced, thresholds per label", ["--train.class_weights", "balanced"], None),
    "per_label_1_epoch": ("1 epoch only, thresholds per label", ["--train.epochs", "1"], None),
    "global_1_epoch": (
        "1 epoch only, one threshold (refit)",
        ["--model.multilabel_threshold", "global"],
        "per_label_1_epoch",
    ),
    "fixed_0.5_1_epoch": (
        "1 epoch only, threshold 0.5 (refit)",
        ["--model.multilabel_threshold", "0.5"],
        "per_label_1_epoch",
    ),
}
# A shortened recipe (the base model's first, one-epoch run) is a table row only where it was run.
SHORTENED = {recipe for recipe in RECIPES if recipe.endswith("_1_epoch")}


def runs() -> list[Run]:
    trained = {
        recipe: Run(EXPERIMENT, recipe, CONFIG, 1, overrides, metrics=METRICS)
        for recipe, (_, overrides, source) in RECIPES.items()
        if source is None
    }
    return [
        Run(EXPERIMENT, recipe, CONFIG, 1, overrides, metrics=METRICS, refit_of=trained[source])
        if source is not None
        else trained[recipe]
        for recipe, (_, overrides, source) in RECIPES.items()
    ]


def class_weights_note(test_rows: list[dict]) -> list[str]:
    """Macro-F1 with balanced class weights against without, for each checkpoint that has both rows."""
    notes = []
    for checkpoint in checkpoints_in(test_rows):
        f1 = {
            r["recipe"]: float(r["value"])
            for r in test_rows
            if r["checkpoint"] == checkpoint and r["metric"] == "macro_f1" and r["recipe"] in ("per_label", "balanced")
        }
        if len(f1) == 2:
            notes.append(
                f"Class weights, {checkpoint}: test macro-F1 {f1['balanced']:.4f} with `balanced` (BCE pos_weight = "
                f"negatives / positives per label) against {f1['per_label']:.4f} without ({f1['balanced'] - f1['per_label']:+.4f}; "
                "one seed each, possibly on two CPUs: see the rows)."
                + (
                    " A likely reason it does not help: one threshold per label tuned on dev already moves each"
                    " label's decision point, which is most of what the weights do."
                    if f1["balanced"] <= f1["per_label"]
                    else ""
                )
            )
    return ["", *notes] if notes else []


def render() -> Path:
    rows = [r for r in read_rows(checkpoint=None) if r["experiment"] == EXPERIMENT and r["split"] == "test"]
    lines = [
        "# GoEmotions: multi-label emotions (28 labels), test",
        "",
        "Sigmoid + BCE per label; make-demo recipe, 3 epochs, checkpoint chosen on dev macro-F1 (at the dev-tuned",
        "global threshold). Refit rows reuse the per-label run's trained model and only fit thresholds anew (their",
        "wall time is the refit's). Macro-F1 is the mean of the 28 labels' F1; subset accuracy = the whole set right.",
        "",
        "| checkpoint | recipe | macro-F1 | micro-F1 | samples-F1 | subset acc. | Hamming loss | weighted P / R | target (macro-F1) | wall | train ex/s | precision, CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for checkpoint in checkpoints_in(rows) or [DEFAULT_CHECKPOINT]:
        for recipe, (label, _, _) in RECIPES.items():
            mine = {r["metric"]: r for r in rows if r["recipe"] == recipe and r["checkpoint"] == checkpoint}
            if not mine and recipe in SHORTENED:
                continue
            if not mine:
                lines.append(f"| {checkpoint} | {label} | not run yet | | | | | | | | | |")
                continue
            value = {m: float(mine[m]["value"]) for m in SHOWN if m in mine}
            first = next(iter(mine.values()))
            target = TARGETS.get(checkpoint)
            met = "" if target is None else f"{target:.2f} ({'met' if value['macro_f1'] >= target else 'missed'})"
            lines.append(
                f"| {checkpoint} | {label} | {value['macro_f1']:.4f} | {value['micro_f1']:.4f} | {value['samples_f1']:.4f} | "
                f"{value['subset_accuracy']:.4f} | {value['hamming_loss']:.4f} | "
                f"{value['weighted_precision']:.3f} / {value['weighted_recall']:.3f} | {met} | "
                f"{float(first['wall_s']) / 60:.1f} min | {first['examples_per_s']} | {first['precision']}, {first['cpu']} |"
            )
    lines += class_weights_note(rows)
    lines += [
        "",
        "all-mpnet-base-v2's full recipe trained on two threads (its wall is two sittings, the first",
        'stopped after epoch 1 and resumed from its checkpoint). The "1 epoch only" rows are its first run, shortened',
        "to one epoch (`--train.epochs 1`, one thread): the rare labels (grief, relief, pride) were not learned yet.",
        "The base model's class-weights row was not run.",
        "",
        "Published BERT-base (Demszky et al. 2020): macro-F1 0.46 (precision 0.40, recall 0.63), threshold 0.3.",
        "Targets (the out-of-scope / multi-label issue): MiniLM-L6 >= 0.46, MPNet-base >= 0.50 macro-F1 on test.",
        "Machine-readable rows: `experiments/results.csv` (experiment `goemotions`).",
        "",
    ]
    return write_markdown("goemotions.md", lines)


if __name__ == "__main__":
    main(__doc__, runs(), render)
