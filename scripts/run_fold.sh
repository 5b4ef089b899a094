#!/usr/bin/env bash
# Train fold K of the given experiments (default: configs flagged `default: true`).
#   bash scripts/run_fold.sh K [EXP ...]      (K may be a list, 1,3: those folds one after another; all: every fold)
# Environment: DATA=DIR (a Hume-layout dataset; default: the embedded synthetic one, generated if
# missing), WORKDIR=W (where folds/, oof/, features/ live; default: the repo for the embedded
# dataset, runs/<dataset>-<hash>/ for another), JOBS=N.
# Extra run_fold options go after `--`, e.g. bash scripts/run_fold.sh 0 ridge_audio -- --set params.alpha=3
source "$(dirname "$0")/env.sh"
K=${1:?usage: bash scripts/run_fold.sh K [EXP ...] [-- run_fold options]}; shift
exps=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do exps+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ -n "${PREPARED:-}" ] || DATA=$(bash scripts/prepare.sh | tail -n 1)  # PREPARED=1: DATA and folds already checked
folds=(--all-folds)
[ "$K" = all ] || { folds=(); for k in ${K//,/ }; do folds+=(--fold "$k"); done; }
python -m competition.pipeline.run_fold --task "$TASK" "${folds[@]}" --data "$DATA" ${WORKDIR:+--workdir "$WORKDIR"} --jobs "$JOBS" \
  ${exps[@]+--exp "${exps[@]}"} "$@"
