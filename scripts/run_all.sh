#!/usr/bin/env bash
# Run every fold of the given experiments (default: the default configs): bash scripts/run_all.sh [EXP ...]
source "$(dirname "$0")/env.sh"
DATA=$(bash scripts/prepare.sh | tail -n 1)
n=$(python -c "import json,sys; from competition.paths import Workdir
print(json.load(open(Workdir.of(sys.argv[1], sys.argv[2]).folds.with_suffix('.json')))['n_folds'])" "$WORKDIR" "$TASK")
for ((k = 0; k < n; k++)); do
  DATA="$DATA" bash scripts/run_fold.sh "$k" "$@"
done
