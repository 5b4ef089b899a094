"""One work directory per dataset by default (issue 24): the embedded dataset's artifacts stay at the repo
root, any other dataset gets runs/<name>-<hash>/, so the README's real-data commands run as written right
after the demo in the same checkout, even on a dataset whose clip ids are the demo's."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from competition.core.paths import REPO_ROOT, Workdir, default_workdir
from tiny_data import write_audio_dataset


def test_default_workdir_is_the_repo_for_embedded_data_and_a_folder_per_other_dataset(tmp_path, monkeypatch):
    monkeypatch.delenv("ERI_WORKDIR", raising=False)
    assert default_workdir() == REPO_ROOT == default_workdir(REPO_ROOT / "data" / "embedded")
    assert default_workdir(REPO_ROOT / "data" / "affwild2", "data/affwild2") == REPO_ROOT
    a, b = tmp_path / "x" / "hume", tmp_path / "y" / "hume"
    wa = default_workdir(a)
    assert wa.parent == REPO_ROOT / "runs" and wa.name.startswith("hume-")
    assert default_workdir(a) == wa != default_workdir(b)  # stable, and the path tells same-named datasets apart
    assert Workdir.of(None, a).folds == wa / "folds" / "folds.csv"
    assert Workdir.of(tmp_path / "w", a).root == tmp_path / "w"  # --workdir wins
    monkeypatch.setenv("ERI_WORKDIR", str(tmp_path / "env"))
    assert default_workdir(a) == tmp_path / "env"


def test_activate_script_changes_no_shell_option_and_no_directory(tmp_path):
    script = (f"set +eu; before=$-; cd {tmp_path}; source {REPO_ROOT}/scripts/activate.sh; "
              'echo "$before|$-|$PWD|$HF_HUB_OFFLINE|$WANDB_MODE"; false; echo alive')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "WANDB_MODE")}).stdout.split()
    before, after, where, hf, wandb = out[0].split("|")
    assert before == after and where == str(tmp_path) and (hf, wandb) == ("1", "offline") and out[1] == "alive"


def _checkout(tmp: Path) -> Path:
    """A copy of this checkout (code, configs, scripts; the same .venv), so the test owns its repo root."""
    repo = tmp / "repo"
    for name in ("competition", "configs", "scripts"):
        shutil.copytree(REPO_ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("make_submission.py", "pyproject.toml", "requirements.txt", "requirements-nodeps.txt",
                 "requirements-dev.txt"):
        shutil.copy(REPO_ROOT / name, repo / name)
    (repo / ".venv").symlink_to((REPO_ROOT / ".venv").resolve())
    return repo


def readme_real_data_block(data: Path) -> str:
    """The README's "Your own data" commands, with DIR = `data` and, to keep the test small, one experiment
    (ridge_audio) where they run the default set."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## Your own data.*?```bash\n(.*?)```", readme, re.S).group(1)
    lines = [re.sub(r"\s+#.*", "", line).replace("DIR", str(data)) for line in block.splitlines()]
    lines = [line + " ridge_audio" if re.search(r"run_(fold|all)\.sh( 0)?$", line) else line for line in lines]
    assert len(lines) == 5 and "make_submission.py" in lines[-1], block
    return "\n".join(lines)


@pytest.mark.slow
def test_readme_real_data_commands_run_after_the_demo_on_colliding_ids(tmp_path):
    repo = _checkout(tmp_path)
    write_audio_dataset(repo / "data" / "embedded", n_train=14, n_val=6, n_test=5, seed=0)  # the "demo" data
    real = write_audio_dataset(tmp_path / "real", n_train=14, n_val=6, n_test=5, seed=1)    # same ids 00000...
    env = {k: v for k, v in os.environ.items() if k not in ("WORKDIR", "ERI_WORKDIR", "DATA")}
    # FOLD_JOBS=2: run_all.sh's default path (features first, then two processes sharing the folds)
    env.update(PYTHONPATH=str(repo), JOBS="1", FOLD_JOBS="2", WANDB_MODE="disabled")

    def bash(script: str) -> str:
        res = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout + res.stderr

    bash("bash scripts/demo.sh ridge_audio")
    demo_metrics = (repo / "oof" / "ridge_audio" / "metrics.json").read_bytes()
    out = bash(readme_real_data_block(real))
    sub = Path(re.findall(r"wrote (\S+\.csv)", out)[-1])
    bash(f"source scripts/activate.sh\npython -m competition.submission check {sub} --data {real}")
    wd = sub.parent.parent
    assert wd.parent == repo / "runs" and wd.name.startswith("real-") and f"work directory: {wd}" in out
    assert (wd / "oof" / "ridge_audio" / "oof.csv").exists()
    assert (repo / "oof" / "ridge_audio" / "metrics.json").read_bytes() == demo_metrics  # the demo's untouched
    [store] = [p.name for p in (repo / "features").glob("mfcc_stats-*")]
    demo, mine = (np.load(root / "features" / store / "00000.npz")["x"] for root in (repo, wd))
    assert not np.allclose(demo, mine)  # the real clip 00000's own features, not the demo's
