"""For the tuning tests: a tiny set-up (`make_workdir`), and workers in their own processes for the tests
that share one study between processes or kill one: `python -m competition.pipeline.tune` with each ridge fit
slowed down (so that trials overlap and a kill lands inside one), a `<tag>.fit` file present while a fit
runs, and a common start once every worker has imported."""
from __future__ import annotations

import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import yaml

from competition.data.contract import load_dataset
from competition.features.store import extract
from competition.folds import make_folds, write_folds
from competition.core.paths import Workdir
from tests.test_resume import ENV
from tests.tiny_data import REPO, write_audio_dataset

SPACE = {"params.alpha": {"type": "float", "low": 0.01, "high": 1000.0, "log": True}}


def make_workdir(root: Path, n_folds: int = 3) -> tuple[Workdir, Path, Path]:
    """A tiny audio dataset with folds and extracted features, and a ridge config with a search space."""
    data = write_audio_dataset(root / "data", n_train=30, n_val=10, n_test=6, seconds=1.0)
    wd = Workdir.of(root)
    ds = load_dataset(data)
    write_folds(ds, make_folds(ds, n_folds=n_folds, seed=0), wd.folds, {"n_folds": n_folds})
    extract(ds, ["mfcc_stats"], wd.features, jobs=1, progress=False)
    cfg = {"name": "rtiny", "model": "ridge", "features": ["mfcc_stats"], "params": {"alpha": 30.0},
           "seed": 7, "search_space": SPACE}
    cfg_path = root / "rtiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return wd, data, cfg_path


WORKER = """
import sys, time
from pathlib import Path
from competition.features.registry import list_extractors
from competition.models import classical
from competition.models.registry import list_models
from competition.pipeline.tune import main
list_models(), list_extractors()
tag, go, delay = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
fit = classical.RidgeModel.fit

def slow_fit(self, *a):
    busy = tag.with_suffix(".fit")
    busy.touch()
    time.sleep(delay)
    try:
        return fit(self, *a)
    finally:
        busy.unlink()

classical.RidgeModel.fit = slow_fit
tag.with_suffix(".ready").touch()
while not go.exists():
    time.sleep(0.02)
sys.exit(main(sys.argv[4:]))
"""


def tune_argv(cfg: Path, data: Path, workdir: Path, storage: str, n: int, seed: int, out: Path,
              *extra: str) -> list[str]:
    return [str(cfg), "--trials", str(n), "--storage", storage, "--data", str(data), "--workdir", str(workdir),
            "--jobs", "1", "--seed", str(seed), "--no-wandb", "--out", str(out), *extra]


def start_workers(tmp: Path, argvs: list[list[str]], delay: float = 0.3) -> list[subprocess.Popen]:
    """One worker per argv (tags w0, w1, ...), started together once all have imported."""
    go = tmp / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp / f"w{i}"), str(go), str(delay), *argv],
                              cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i, argv in enumerate(argvs)]
    deadline = time.monotonic() + 240
    while not all((tmp / f"w{i}.ready").exists() for i in range(len(procs))):
        assert all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs if p.poll() is not None]
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.05)
    go.touch()
    return procs


def trials_logged(output: str) -> set[int]:
    """The trial numbers a worker ran, from Optuna's own log lines."""
    return {int(n) for n in re.findall(r"Trial (\d+) (?:finished|pruned)", output)}


def in_fit(tmp: Path, worker: int = 0, for_seconds: float = 0.25) -> bool:
    """Worker `worker` has been inside a fit for `for_seconds`: its trial is RUNNING and has had time to
    record its first heartbeat (Optuna never fails a trial killed before its first one)."""
    try:
        return time.time() - (tmp / f"w{worker}.fit").stat().st_mtime >= for_seconds
    except FileNotFoundError:
        return False


def retried_from(trial: optuna.trial.FrozenTrial) -> int | None:
    """The number of the killed trial that `trial` retries (RetryHeartbeatStaleTrialCallback), else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
