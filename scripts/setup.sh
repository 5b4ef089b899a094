#!/usr/bin/env bash
# Create .venv and install the pinned stack; a no-op when requirements have not changed.
#   bash scripts/setup.sh       the toolkit (requirements.txt, requirements-nodeps.txt)
#   bash scripts/setup.sh dev   also the test tools and Ray (requirements-dev.txt)
# Installs with uv (unpacks wheels in parallel: ~25-60 s instead of pip's ~100 s for the torch stack), from
# the indexes and wheel folders pip is configured with; falls back to pip when uv cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
UV_VERSION=0.13.10
stamp=.venv/.requirements.sha

# pip's own configuration (pip.conf, PIP_* variables) as uv options: the same wheels, indexes and caps
uv_options() {
  local key value v
  while IFS='=' read -r key value; do
    value=${value#\'}; value=${value%\'}
    for v in $value; do
      case "$key" in
        *.find-links) echo "--find-links=$v" ;;
        *.extra-index-url) echo "--extra-index-url=$v" ;;
        *.index-url) echo "--index-url=$v" ;;
        *.constraint) echo "--constraint=$v" ;;
      esac
    done
  done < <(.venv/bin/python -m pip config list 2>/dev/null)
}

# install ARGS...: uv when it is there, else pip (both without byte-compiling: each module is compiled the
# first time it is imported and cached; env.sh lets Python write its .pyc files)
install() {
  if [ -x .venv/bin/uv ]; then
    [ -n "${opts+set}" ] || mapfile -t opts < <(uv_options)   # pip's configuration, read once
    .venv/bin/uv pip install -q --python .venv/bin/python --index-strategy unsafe-best-match "${opts[@]}" "$@"
  else
    .venv/bin/python -m pip install -q --no-compile "$@"
  fi
}

want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  [ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q "uv==$UV_VERSION" \
    || echo "setup: uv $UV_VERSION could not be installed; installing with pip (slower)" >&2
  install -r requirements.txt
  # uv takes a version's wheels from the first index that has it, pip the best wheel from all of them: the
  # local index holds soundfile's pure wheel only (it needs a system libsndfile), pip finds the bundling one
  .venv/bin/python -c "import soundfile" 2>/dev/null \
    || .venv/bin/python -m pip install -q --no-deps --force-reinstall "$(grep '^soundfile==' requirements.txt)"
  # librosa's numba kernels compile once per .venv (~15 CPU s; otherwise every feature-extraction worker of the
  # first run pays it) and the big packages write their .pyc files: two processes, beside the rest of the install
  warm() { env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -c "$1" & }
  warm "import numpy as np, librosa; librosa.feature.mfcc(y=np.zeros(16000, np.float32), sr=16000)"; numba=$!
  warm "import pandas, scipy.stats, cv2, sklearn.ensemble, sklearn.linear_model, sklearn.svm, skops.io, opensmile
import optuna, wandb, torch"; pyc=$!
  install --no-deps -r requirements-nodeps.txt
  install --no-deps --no-build-isolation -e .   # console entry points (pyproject.toml)
  wait "$numba" || echo "setup: warming librosa's compile cache failed; the first run will compile it" >&2
  wait "$pyc" || true
  echo "$want" > "$stamp"
fi
if [ "${1:-}" = dev ]; then
  dev_want=$(cat "$stamp" requirements-dev.txt | sha256sum | cut -d' ' -f1)
  if [ ! -f .venv/.requirements-dev.sha ] || [ "$(cat .venv/.requirements-dev.sha)" != "$dev_want" ]; then
    install -r requirements-dev.txt
    echo "$dev_want" > .venv/.requirements-dev.sha
  fi
fi
