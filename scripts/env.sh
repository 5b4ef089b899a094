# Sourced by the other scripts (not by you: it turns on `set -euo pipefail` and changes directory; for your
# own shell, `source scripts/activate.sh`): installs the pinned stack if needed, activates it, and sets the
# offline defaults. WORKDIR is passed on only when you set it; otherwise every command picks the dataset's
# work directory (the repo for the embedded dataset, runs/<dataset>-<hash>/ for any other).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/activate.sh
unset PYTHONDONTWRITEBYTECODE  # setup.sh installs without .pyc files: the first import of a module writes them
export JOBS=${JOBS:-2}
export TASK=${TASK:-eri}   # eri | va | expr (docs/AFFWILD2.md)
