#!/usr/bin/env bash
# All experiment tables in a sensible order (each run is skipped when already in results.csv):
# one seed of every MASSIVE recipe, the seed-003 table, then the remaining MASSIVE seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
$PY experiments/massive_table.py --seeds 1
$PY experiments/seed003_table.py
$PY experiments/massive_table.py
$PY experiments/massive_contrastive.py --recipes supcon_probe simcse_probe ce_scl
$PY experiments/massive_contrastive.py
