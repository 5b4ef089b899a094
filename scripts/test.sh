#!/usr/bin/env bash
# The test command: set-up, then the fast suite (slow tests: bash scripts/test.sh -m slow).
source "$(dirname "$0")/env.sh"
python -m pytest "$@"
