#!/usr/bin/env bash
# Run every fold of the given experiments (default: the default configs): bash scripts/run_all.sh [EXP ...]
# Fold 0 runs first (it extracts the features, with JOBS workers); the other folds are then dealt to
# FOLD_JOBS processes (default: JOBS) running side by side, each training its folds one after another
# (one process per fold would pay the imports again each time). Folds write separate directories
# atomically, and whichever finishes last assembles oof.csv; FOLD_JOBS=1 runs every fold in one process.
source "$(dirname "$0")/env.sh"
[ -n "${PREPARED:-}" ] || DATA=$(bash scripts/prepare.sh | tail -n 1)
export DATA PREPARED=1  # checked once: the fold runs below skip prepare.sh
p=${FOLD_JOBS:-$JOBS}
if [ "$p" -le 1 ]; then
  exec bash scripts/run_fold.sh all "$@"
fi
n=$(python -c "import json,sys; from competition.data.task import get_task
wd = get_task(sys.argv[2]).workdir(sys.argv[1] or None, sys.argv[3])
print(json.load(open(wd.folds.with_suffix('.json')))['n_folds'])" "${WORKDIR:-}" "$TASK" "$DATA")
bash scripts/run_fold.sh 0 "$@"
for ((j = 1; j <= p && j < n; j++)); do seq -s, "$j" "$p" $((n - 1)); done |
  xargs -P "$p" -I{} bash scripts/run_fold.sh {} "$@"
