#!/usr/bin/env bash
# Run every fold of the given experiments (default: the default configs): bash scripts/run_all.sh [EXP ...]
# Fold 0 runs first (it extracts the features, with JOBS workers); the other folds then run FOLD_JOBS at a
# time (default: JOBS), each fold in its own process. Folds write separate directories atomically, and
# whichever finishes last assembles oof.csv; FOLD_JOBS=1 runs them one after another.
source "$(dirname "$0")/env.sh"
[ -n "${PREPARED:-}" ] || DATA=$(bash scripts/prepare.sh | tail -n 1)
export DATA PREPARED=1  # checked once: the fold runs below skip prepare.sh
n=$(python -c "import json,sys; from competition.data.task import get_task
print(json.load(open(get_task(sys.argv[2]).workdir(sys.argv[1]).folds.with_suffix('.json')))['n_folds'])" "$WORKDIR" "$TASK")
bash scripts/run_fold.sh 0 "$@"
if [ "$n" -gt 1 ]; then
  seq 1 $((n - 1)) | xargs -P "${FOLD_JOBS:-$JOBS}" -I{} bash scripts/run_fold.sh {} "$@"
fi
