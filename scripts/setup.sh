#!/usr/bin/env bash
# Create .venv and install the pinned stack; a no-op when requirements have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# PostgreSQL server binaries for tests/test_tune_postgres.py, which starts its own server (Debian package;
# as root only, once; ERI_NO_POSTGRES=1 skips it and that test is then skipped)
if [ -z "${ERI_NO_POSTGRES:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
   && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q postgresql || { apt-get update -q && apt-get install -y -q postgresql; }; } >/dev/null 2>&1 \
    || echo "setup.sh: could not install the Debian package postgresql; tests/test_tune_postgres.py will skip" >&2
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .   # console entry points (pyproject.toml)
echo "$want" > "$stamp"
