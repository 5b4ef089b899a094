#!/usr/bin/env bash
# Create .venv and install the pinned stack; a no-op when requirements have not changed.
#   bash scripts/setup.sh       the toolkit (requirements.txt, requirements-nodeps.txt)
#   bash scripts/setup.sh dev   also the test tools and Ray (requirements-dev.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # --no-compile: pip would byte-compile all ~300 MB of Python one file at a time (~40 s); instead each module is
  # compiled the first time it is imported and cached (env.sh lets Python write its .pyc files)
  pip=(.venv/bin/python -m pip install -q --no-compile)
  "${pip[@]}" --upgrade pip
  # Everything but the torch stack first. pip then unpacks torch on one core for ~45 s; meanwhile the other
  # core compiles librosa's numba kernels (~20 s, once per .venv; otherwise every feature-extraction worker
  # of the first run pays it) and the .pyc files of the other large packages a run imports.
  grep -vE '^(torch|torchvision|timm)==' requirements.txt > .venv/requirements-base.txt
  "${pip[@]}" -r .venv/requirements-base.txt
  env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -c "import numpy as np, librosa, pandas, scipy.stats, cv2
import sklearn.ensemble, sklearn.linear_model, sklearn.svm, skops.io, opensmile, optuna, wandb
librosa.feature.mfcc(y=np.zeros(16000, np.float32), sr=16000)" & warm=$!
  "${pip[@]}" -r requirements.txt
  "${pip[@]}" --no-deps -r requirements-nodeps.txt
  "${pip[@]}" --no-deps --no-build-isolation -e .   # console entry points (pyproject.toml)
  wait "$warm" || echo "setup: warming librosa's compile cache failed; the first run will compile it" >&2
  echo "$want" > "$stamp"
fi
if [ "${1:-}" = dev ]; then
  dev_want=$(cat "$stamp" requirements-dev.txt | sha256sum | cut -d' ' -f1)
  if [ ! -f .venv/.requirements-dev.sha ] || [ "$(cat .venv/.requirements-dev.sha)" != "$dev_want" ]; then
    .venv/bin/python -m pip install -q --no-compile -r requirements-dev.txt
    echo "$dev_want" > .venv/.requirements-dev.sha
  fi
fi
