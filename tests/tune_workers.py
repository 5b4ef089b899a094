"""Tuning workers in their own processes, for the tests that share one study between processes or kill one:
`python -m competition.tune` with each ridge fit slowed down (so that trials overlap and a kill lands inside
one), a `<tag>.fit` file present while a fit runs, and a common start once every worker has imported."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.test_resume import ENV
from tests.tiny_data import REPO

WORKER = """
import sys, time
from pathlib import Path
from competition.features.registry import list_extractors
from competition.models import classical
from competition.models.registry import list_models
from competition.tune import main
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
