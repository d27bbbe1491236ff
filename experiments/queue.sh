#!/usr/bin/env bash
# All experiment tables in a sensible order (each run is skipped when already in results.csv):
# seed 1 of the MASSIVE recipes, the seed-003 table, the contrastive recipes, the remaining MASSIVE
# seeds, then few-shot and noise.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
$PY experiments/massive_table.py --seeds 1 --recipes best baseline llrd
$PY experiments/seed003_table.py
$PY experiments/massive_table.py --seeds 1
$PY experiments/massive_contrastive.py --recipes supcon_probe simcse_probe ce_scl
$PY experiments/massive_table.py
$PY experiments/massive_contrastive.py
