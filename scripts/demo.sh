#!/usr/bin/env bash
# The main job on the embedded dataset, from a fresh checkout: set-up, synthetic data, folds, every
# fold of the default experiments, a blended submission, and the independent artifact check.
# TASK=va or TASK=expr runs the same on the synthetic Aff-Wild2 set (docs/AFFWILD2.md).
source "$(dirname "$0")/env.sh"
start=$(date +%s)
DATA=$(bash scripts/prepare.sh | tail -n 1)
export DATA PREPARED=1
bash scripts/run_all.sh "$@"
python make_submission.py --task "$TASK" --blend best --data "$DATA" ${WORKDIR:+--workdir "$WORKDIR"}
if [ -f ../shared/tools/check_artifacts.py ] && [ -z "${WORKDIR:-}" ] && [ "$TASK" = eri ]; then
  python ../shared/tools/check_artifacts.py .
fi
echo "demo finished in $(( $(date +%s) - start )) s"
