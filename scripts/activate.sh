# For your own shell, from any directory: `source scripts/activate.sh` (or `source /path/to/repo/scripts/activate.sh`).
# Activates the toolkit's .venv (made by `bash scripts/setup.sh`) and exports the offline defaults, which must be
# in the environment before Python starts. Changes no shell option and no directory; the other scripts source it.
_eri_repo=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
if [ -f "$_eri_repo/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  source "$_eri_repo/.venv/bin/activate"
else
  echo "activate.sh: $_eri_repo/.venv does not exist yet: run bash $_eri_repo/scripts/setup.sh first" >&2
fi
unset _eri_repo
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
export WANDB_MODE=${WANDB_MODE:-offline}
export TOKENIZERS_PARALLELISM=false
export PYTHONHASHSEED=0
