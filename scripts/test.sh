#!/usr/bin/env bash
# The test command: set-up (with the test tools: requirements-dev.txt), then the fast suite (slow tests:
# bash scripts/test.sh -m slow).
bash "$(dirname "$0")/setup.sh" dev
source "$(dirname "$0")/env.sh"
# PostgreSQL server binaries for tests/test_tune_postgres.py, which starts its own server (Debian package;
# as root only, once; ERI_NO_POSTGRES=1 skips it and that test is then skipped)
if [ -z "${ERI_NO_POSTGRES:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
   && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q postgresql || { apt-get update -q && apt-get install -y -q postgresql; }; } >/dev/null 2>&1 \
    || echo "test.sh: could not install the Debian package postgresql; tests/test_tune_postgres.py will skip" >&2
fi
# The fast suite runs on TEST_WORKERS (default 2) pytest-xdist workers; with -m (e.g. -m slow: tests that
# start servers and kill processes) one test at a time
workers=(-n "${TEST_WORKERS:-2}")
for arg in "$@"; do case "$arg" in -m|-m*) workers=() ;; esac; done
python -m pytest "${workers[@]}" "$@"
