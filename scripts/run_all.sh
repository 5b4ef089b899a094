#!/usr/bin/env bash
# Run every fold of the given experiments (default: the default configs): bash scripts/run_all.sh [EXP ...]
source "$(dirname "$0")/env.sh"
DATA=$(bash scripts/prepare.sh | tail -n 1)
n=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['n_folds'])" "$WORKDIR/folds/folds.json")
for ((k = 0; k < n; k++)); do
  DATA="$DATA" bash scripts/run_fold.sh "$k" "$@"
done
