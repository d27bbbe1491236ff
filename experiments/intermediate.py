"""The SST-2 intermediate stage that some sentiment rows start from (configs/sst2_intermediate.yaml).

Its run directory is fixed, so the rows that use its encoder name it as their checkpoint; scripts put
`SST2_STAGE` before those rows in their plan, and the runner skips it once it is in results.csv.
"""

from __future__ import annotations

from runner import HERE, REPO, Run

SST2_STAGE = Run("sst2_intermediate", "sst2_stage", REPO / "configs" / "sst2_intermediate.yaml", 1,
                 metrics={"sst2_accuracy": "sst2_accuracy"})
SST2_ENCODER = HERE / "runs" / SST2_STAGE.experiment / SST2_STAGE.recipe / f"seed{SST2_STAGE.seed}" / "model" / "encoder"
FROM_SST2 = ["--model.checkpoint", str(SST2_ENCODER)]
