#!/usr/bin/env bash
# Run every fold of the given experiments (default: the default configs): bash scripts/run_all.sh [EXP ...]
source "$(dirname "$0")/env.sh"
DATA=$(bash scripts/prepare.sh | tail -n 1)
n=$(python -c "import json,sys; from competition.data.task import get_task
print(json.load(open(get_task(sys.argv[2]).workdir(sys.argv[1]).folds.with_suffix('.json')))['n_folds'])" "$WORKDIR" "$TASK")
for ((k = 0; k < n; k++)); do
  DATA="$DATA" bash scripts/run_fold.sh "$k" "$@"
done
