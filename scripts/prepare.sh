#!/usr/bin/env bash
# Make sure a dataset and the task's fold file exist: with DATA unset, generate the task's embedded
# synthetic dataset into the work directory if it is missing (TASK=eri: data/embedded; TASK=va|expr:
# data/affwild2). Prints the dataset root as its last line. The folds group clips by subject: given, else
# estimated (competition.folds); FOLD_GROUPS=none opts out, FOLD_GROUPS=estimate ignores a Subject column.
source "$(dirname "$0")/env.sh"
if [ -z "${DATA:-}" ]; then
  DATA=$(python -m competition.data.embedded --task "$TASK" ${WORKDIR:+--workdir "$WORKDIR"} --jobs "$JOBS" \
    ${SYNTH_N:+--size "$SYNTH_N"} | tail -n 1)
fi
python -m competition.folds --task "$TASK" --data "$DATA" ${WORKDIR:+--workdir "$WORKDIR"} --jobs "$JOBS" \
  ${FOLD_GROUPS:+--groups "$FOLD_GROUPS"} >&2
echo "$DATA"
