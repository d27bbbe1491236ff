#!/usr/bin/env bash
# All experiment tables in a sensible order; each run already in results.csv is skipped and an
# interrupted run resumes from its last checkpoint, so this can be stopped and restarted at will.
# One thread per run: start two copies of independent lines on a 2-core machine, e.g.
#   OMP_NUM_THREADS=1 bash experiments/queue.sh classification &
#   OMP_NUM_THREADS=1 bash experiments/queue.sh pairs &
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
case "${1:-all}" in
  classification)
    $PY experiments/massive_table.py
    $PY experiments/seed003_table.py
    $PY experiments/massive_contrastive.py ;;
  pairs)
    $PY experiments/uci_table.py
    $PY experiments/multitask_table.py ;;
  base)  # all-mpnet-base-v2 (`minbert download all-mpnet-base-v2` first), bf16 autocast
    $PY experiments/seed003_table.py --checkpoint all-mpnet-base-v2 --bf16 --recipes sst5_frozen cfimdb_frozen
    $PY experiments/massive_table.py --checkpoint all-mpnet-base-v2 --bf16 --recipes demo ;;
  all)
    "$0" pairs
    "$0" classification ;;
  *) echo "usage: $0 [classification|pairs|base|all]" >&2; exit 2 ;;
esac
