#!/usr/bin/env bash
# All experiment tables in a sensible order; each run already in results.csv is skipped and an
# interrupted run resumes from its last checkpoint, so this can be stopped and restarted at will.
# One thread per run: start two copies of independent lines on a 2-core machine, e.g.
#   OMP_NUM_THREADS=1 bash experiments/queue.sh classification &
#   OMP_NUM_THREADS=1 bash experiments/queue.sh pairs &
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# bf16 autocast for the base model pays only where a bf16 matmul beats fp32 (AMX); elsewhere run
# `BF16= bash experiments/queue.sh base` for fp32 (minbert warns when bf16 measures slower).
BASE="--checkpoint all-mpnet-base-v2 ${BF16---bf16}"
case "${1:-all}" in
  classification)
    $PY experiments/massive_table.py
    $PY experiments/seed003_table.py
    $PY experiments/massive_contrastive.py ;;
  pairs)
    $PY experiments/uci_table.py
    $PY experiments/multitask_table.py ;;
  base)  # all-mpnet-base-v2 (`minbert download all-mpnet-base-v2` first), shortened where one epoch takes hours
    "$0" base-single
    "$0" base-pairs ;;
  base-single)  # seed 000 and seed 003 with the base model (about 10 h on one core)
    $PY experiments/seed003_table.py $BASE --recipes sst5_frozen cfimdb_frozen
    $PY experiments/seed003_table.py $BASE --recipes sst5_finetune --train.patience 3
    $PY experiments/seed003_table.py $BASE --recipes cfimdb_finetune --train.epochs 1
    $PY experiments/massive_table.py $BASE --recipes demo
    $PY experiments/massive_contrastive.py $BASE --recipes supcon_probe_mean --seeds 1 --contrastive.epochs 3 ;;
  base-pairs)  # seed 002 and seed 004 with the base model (about 5 h on one core)
    $PY experiments/multitask_table.py $BASE --recipes multitask --seeds 1 --train.epochs 1
    $PY experiments/uci_table.py $BASE --seeds 1 --train.epochs 3 --recipes tuned_head1e-3 tuned_head1e-3_split{1,2,3,5,6} ;;
  oos)  # out-of-scope, calibration and multi-label (CLINC150, MASSIVE, GoEmotions) with MiniLM, then the base model
    $PY experiments/clinc150_oos.py
    $PY experiments/calibration.py
    $PY experiments/goemotions.py --recipes per_label global fixed_0.5 balanced
    $PY experiments/clinc150_oos.py $BASE
    $PY experiments/calibration.py $BASE
    $PY experiments/goemotions.py $BASE --recipes per_label global fixed_0.5 ;;
  all)
    "$0" pairs
    "$0" classification ;;
  *) echo "usage: $0 [classification|pairs|base|base-single|base-pairs|oos|all]" >&2; exit 2 ;;
esac
