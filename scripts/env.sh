# Sourced by the other scripts: installs the pinned stack if needed, activates it, and sets the
# offline defaults (they must be in the environment before Python starts).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
export WANDB_MODE=${WANDB_MODE:-offline}
export TOKENIZERS_PARALLELISM=false
export PYTHONHASHSEED=0
unset PYTHONDONTWRITEBYTECODE  # setup.sh installs without .pyc files: the first import of a module writes them
export WORKDIR=${WORKDIR:-$PWD}
export JOBS=${JOBS:-2}
export TASK=${TASK:-eri}   # eri | va | expr (docs/AFFWILD2.md)
