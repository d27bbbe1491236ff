"""SetFit's few-shot protocol on SST-5 (N = 8 and 64 examples per class, 10 seeded splits, test accuracy), minbert
and SetFit itself on the same rows, checkpoint and CPU.

    python experiments/setfit_contender.py --setup          # once: SetFit's own environment
    python experiments/fewshot_sst5.py                      # MiniLM, every split, both contenders, then the table
    python experiments/fewshot_sst5.py --checkpoint all-mpnet-base-v2 --recipes n8 --seeds 1 2 3
    python experiments/fewshot_sst5.py --render

Split S samples N per class from sst-train.txt with data.sample_seed = S (minbert's per_class_sample, which this
script also uses to hand SetFit the very same rows). minbert runs two recipes at each N (recipe nN, fine-tuning, and
nN_pairs, SetFit's pairs stage then a frozen-encoder probe); SetFit runs once per split.
Resumable through experiments/results.csv.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import REPO, Run, checkpoints_in, main, mean_sd, read_rows, write_markdown  # noqa: E402
from setfit_beside import contenders, protocol_walls, setfit_beside  # noqa: E402

EXPERIMENT = "fewshot_sst5"
CONFIG = REPO / "configs" / "fewshot_sst5.yaml"
SHOTS = {"n8": 8, "n64": 64}
# minbert's second recipe, run at each N as recipe <N>_pairs: SetFit's pairs stage, then a probe on the frozen
# encoder (configs/fewshot_sst5_pairs.yaml), chosen on dev (see the notes under the table). SetFit runs once per split.
PAIRS = ("n8", "n64")
PAIRS_CONFIG = REPO / "configs" / "fewshot_sst5_pairs.yaml"
PAIRS_LABEL = "minbert, pairs + probe"
SPLITS = range(1, 11)
# SetFit's paper (authors' result files) and RoBERTa-large fine-tuning, test accuracy %. The paper's SetFit numbers
# come from paraphrase-mpnet-base-v2 (the default of the authors' run_fewshot.py, which names its result folders for
# the checkpoint), not from all-mpnet-base-v2, which the target and both contenders here use.
PUBLISHED = {"n8": (43.6, 33.5), "n64": (51.9, 45.9)}


def runs() -> list[Run]:
    def run(recipe: str, config: Path, n: int, split: int) -> Run:
        return Run(
            EXPERIMENT, recipe, config, split, ["--data.shots_per_class", str(n), "--data.sample_seed", str(split)]
        )

    return [
        r
        for split in SPLITS
        for recipe, n in SHOTS.items()
        for r in [
            run(recipe, CONFIG, n, split),
            *([run(f"{recipe}_pairs", PAIRS_CONFIG, n, split)] if recipe in PAIRS else []),
        ]
    ]


def beside(run: Run) -> None:
    """SetFit on the run's split, once for both of minbert's recipes (they train on the same rows)."""
    setfit_beside(replace(run, recipe=run.recipe.removesuffix("_pairs")))


def render() -> Path:
    rows = [r for r in read_rows(checkpoint=None) if r["experiment"] == EXPERIMENT]
    lines = [
        "# SetFit's protocol on SST-5: test accuracy, %",
        "",
        "N examples per class, seeded splits (minbert and SetFit train on the same rows from the same checkpoint, one",
        "thread each on the same CPU). minbert: fine-tuning (`configs/fewshot_sst5.yaml`) and, as its own row, the same",
        "pairs stage as SetFit's then a probe on the frozen encoder (`configs/fewshot_sst5_pairs.yaml`), best epoch on",
        "dev; SetFit 1.2: the paper's recipe (20 pair iterations, batch 16, one epoch, body lr 2e-5, logistic head), no",
        "dev set. Target: the SetFit paper's MPNet number for minbert with MPNet-base; against SetFit on the same",
        "splits, CPU and precision: as accurate in at most half its wall time (SetFit runs fp32, so a split minbert ran",
        "in bf16 is not judged).",
        "",
        "The rows come from two CPUs (last column): every MiniLM row from an AMD EPYC with AVX2 only; MPNet's splits",
        "1-3 (and N = 64) from an AMD EPYC with AVX-512 (avx512_bf16; minbert in bf16 there, except N = 64, both",
        "recipes rerun in fp32 there so that they are judged), MPNet's N = 8 pairs and SetFit rows of splits 4-10 and",
        "fine-tuning splits 3-10 from the AVX2 one (fp32, both contenders). A minbert row is judged against SetFit only",
        "on the splits both ran on one CPU at one precision: so not MPNet's bf16 splits (pairs 1-3, fine-tuning 1-2),",
        "nor fine-tuning's split 3, whose SetFit row ran on the AVX-512 one. The fp32 reruns of N = 64 split 1 gave",
        "48.01 (dev 46.14) in 1,250 s for fine-tuning, 47.60 (dev 45.05) in 712 s in bf16; and 50.18 (dev 49.95) in",
        "3,782 s for pairs + probe, 50.00 (dev 49.41) in 2,804 s in bf16.",
        "MiniLM's rows first ran on the AVX-512 CPU;",
        "N = 8 and N = 64 were rerun on the AVX2 one, all contenders, so that each cell is judged on all 10 splits.",
        "fp32 few-shot fine-tuning does not always give the same numbers on the two (their kernels round differently,",
        "and a few dozen rows amplify it): at N = 8, 8 of 10 splits matched to the digit (split 1 gave 23.17 on one and",
        "19.55 on the other, split 2 25.07 and 25.38), at N = 64 5 of the 7 rerun (split 1 40.81 and 40.77, split 6",
        "37.42 and 36.38). SetFit's accuracy matched on all 10 splits at N = 8 and on all 7 rerun at N = 64.",
        "",
        "The paper's SetFit numbers were measured on paraphrase-mpnet-base-v2 (the default model of the authors'",
        "`scripts/setfit/run_fewshot.py`; their result folders are named for it). Here both contenders start from",
        "all-mpnet-base-v2, the checkpoint the target names and the one this machine has; paraphrase-mpnet-base-v2 is",
        "on the Hub only. So the paper column is a different checkpoint's number, and SetFit on the same rows is the",
        "like-for-like comparison.",
        "",
        "| N | checkpoint | contender | splits | test acc. (mean ± sd) | wall per split | SetFit paper (paraphrase-MPNet) "
        "| RoBERTa-large FT | target met? | against SetFit, same splits, CPU and precision | precision, CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cells: dict[tuple[str, str], list[dict[str, tuple[float, float]]]] = {}
    for recipe, n in SHOTS.items():
        for checkpoint in checkpoints_in(rows) or ["all-MiniLM-L6-v2"]:
            variants = {PAIRS_LABEL: f"{recipe}_pairs"} if recipe in PAIRS else {}
            for c in contenders([r for r in rows if r["checkpoint"] == checkpoint], recipe, variants):
                cells.setdefault((c.label, checkpoint), []).append(c.splits)
                target = PUBLISHED[recipe][0]
                met = ""
                if c.label.startswith("minbert") and checkpoint == "all-mpnet-base-v2" and c.accuracy:
                    gap = 100 * statistics.mean(c.accuracy) - target
                    met = "met" if gap >= 0 else f"missed by {-gap:.2f}"
                lines.append(
                    f"| {n} | {checkpoint} | {c.label} | {len(c.splits)}/{len(SPLITS)} | {mean_sd(c.accuracy)} | "
                    f"{c.wall_text} | {target} | {PUBLISHED[recipe][1]} | {met} | {c.against} | {c.machine} |"
                )
    lines += protocol_walls(cells, len(SPLITS), f"{len(SPLITS)} splits at each N")
    lines += [
        "",
        "How minbert's recipes were chosen (on dev only):",
        "- fine-tuning (`configs/fewshot_sst5.yaml`, row `minbert`): the few-shot intent recipe, fixed before any test",
        "  number was seen;",
        "- at N = 8, SetFit's pairs stage, then a probe on the frozen encoder (`configs/fewshot_sst5_pairs.yaml`, row",
        f"  `{PAIRS_LABEL}`): mean dev accuracy over the 10 MiniLM splits 30.22 against fine-tuning's 28.38, higher on",
        "  9 of 10. It was tried after the fine-tuning and SetFit rows' test numbers were on record; the choice read dev",
        "  only, and the fine-tuning recipe stayed as it was. Its 20 rounds of pairs (SetFit's number) beat 10 rounds on dev,",
        "  30.22 against 29.43, though 10 rounds take about 0.7x the time. MPNet and N = 64 run it as chosen there; their",
        "  dev agrees (MPNet split 1: 39.78 against fine-tuning's 30.79 at N = 8, 49.95 against 46.14 at N = 64).",
        "- since ddf0080 the pairs stage encodes a sentence shared by several pairs of a batch once (stage of split 1:",
        "  47 s instead of 109 s on one AVX2 thread). That changes the dropout masks a run draws, so the MiniLM N = 8",
        "  cell was rerun with it, all three contenders, on the AVX2 CPU. The rule, set before the rerun: keep it if",
        "  the mean dev over the 10 splits stays within 0.5 of 30.22. It is 30.22 again (fine-tuning 28.34; pairs",
        "  higher on 9 of 10). The MiniLM N = 64 pairs rows ran with it, and so did MPNet's N = 8 splits 4-10 and its",
        "  N = 64 fp32 rerun; MPNet's N = 8 splits 1-3 ran before it (dd0ef9f), and were not rerun.",
        "- since a807895 a frozen-encoder run ends without encoding dev again (its vectors were cached for the probe):",
        "  the same numbers to the digit (MiniLM N = 8 split 1, rerun). That pass took 79 s of MPNet split 4's 633 s",
        "  (without it 0.42x against SetFit there, not 0.48x). Every pairs row here but MPNet's N = 64 (fp32 rerun) was",
        "  measured before it.",
        "",
        "Tried on dev and not adopted:",
        "- a probe on the frozen encoder without the pairs stage (`--train.freeze encoder --train.epochs 200",
        "  --train.head_lr 1e-2 --train.patience 20`): mean dev over the 10 MiniLM splits at N = 8 28.32 (the recipe's",
        "  hidden layer) and 28.01 (a linear head), against fine-tuning's 28.38; 30.25 on MPNet split 1 (fine-tuned:",
        "  30.79);",
        "- a SupCon stage, then a linear probe: dev about 22 on MiniLM split 1 (fine-tuned: 23.34).",
        "",
        "Machine-readable rows: `experiments/results.csv` (experiment `fewshot_sst5`).",
        "",
    ]
    return write_markdown("fewshot_sst5.md", lines)


if __name__ == "__main__":
    main(__doc__, runs(), render, beside=beside)
