#!/usr/bin/env bash
# The one benchmark command: bash bench/run_all.sh  (figures -> bench/out/*.jsonl, git-ignored)
# Scale curve of the feature-level pipeline at 1x, 4x and 16x the embedded demo (240 clips) and at the full
# Hume size (25,067 clips), then the blend benchmark. Scratch data lives in temp dirs outside the repo.
source "$(dirname "$0")/../scripts/env.sh"
mkdir -p bench/out
for n in ${BENCH_SIZES:-240 960 3840 25067}; do
  /usr/bin/time -v python bench/bench_scale.py --clips "$n" 2> "bench/out/scale_$n.time" | tail -n 1 \
    | tee -a bench/out/scale.jsonl
done
if [ -f bench/bench_blend.py ]; then python bench/bench_blend.py | tee bench/out/blend.txt; fi
