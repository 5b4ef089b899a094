#!/usr/bin/env bash
# Run every fold of the given experiments (default: the default configs): bash scripts/run_all.sh [EXP ...]
# One process extracts every feature first (JOBS workers); then FOLD_JOBS processes (default: JOBS) share
# the (experiment, fold) pairs, each training the next pair no other has claimed (one process per fold would
# pay the imports again each time, and fixed shares would wait for the slowest). Folds write separate
# directories atomically, and whichever finishes an experiment's last fold assembles its oof.csv;
# FOLD_JOBS=1 runs every fold in one process.
source "$(dirname "$0")/env.sh"
[ -n "${PREPARED:-}" ] || DATA=$(bash scripts/prepare.sh | tail -n 1)
export DATA PREPARED=1  # checked once: the fold runs below skip prepare.sh
p=${FOLD_JOBS:-$JOBS}
if [ "$p" -le 1 ]; then
  exec bash scripts/run_fold.sh all "$@"
fi
args=("$@"); [[ " $* " == *" -- "* ]] || args+=(--)  # run_fold options go after `--`
bash scripts/run_fold.sh all "${args[@]}" --features-only
claims=$(mktemp -d); trap 'rm -rf "$claims"' EXIT
seq "$p" | xargs -P "$p" -I{} bash scripts/run_fold.sh all "${args[@]}" --claim-dir "$claims"
