#!/usr/bin/env bash
# Make sure a dataset and folds/folds.csv exist: with DATA unset, generate the embedded synthetic
# dataset into $WORKDIR/data/embedded if it is missing. Prints the dataset root as its last line.
source "$(dirname "$0")/env.sh"
if [ -z "${DATA:-}" ]; then
  DATA="$WORKDIR/data/embedded"
  if [ ! -f "$DATA/data_info.csv" ]; then
    python -m competition.data.synth --out "$DATA" --jobs "$JOBS" ${SYNTH_N:+--n "$SYNTH_N"} >&2
  fi
fi
python -m competition.folds --data "$DATA" --workdir "$WORKDIR" >&2
echo "$DATA"
