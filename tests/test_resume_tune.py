"""Kill -9 a tuning run at seeded random moments, rerun it, and get the study and the tuned config of an
uninterrupted run: exactly N COMPLETE trials with the same (params, value), a byte-identical
`--out` file; a rerun of a finished study runs no trial. Same style as tests/test_resume.py.

Each kill waits until the run has finished at least one trial of its own, then lands a seeded random
fraction of a trial's wall time later: in a trial, in the budget lock, or between trials."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from competition.pipeline import tune as tune_mod
from competition.data.contract import load_dataset
from competition.features.store import extract
from competition.folds import make_folds, write_folds
from competition.core.paths import Workdir
from competition.pipeline.tune import BudgetLock, next_trial, open_storage, suggest, tune, worker_id
from tests.test_resume import ENV, run
from tests.tiny_data import REPO, write_audio_dataset, write_config

N = 6
KILLS = 2
SPACE = {"params.alpha": {"type": "float", "low": 0.01, "high": 1000.0, "log": True}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """Tiny audio dataset, folds and features (so the runs spend their time in trials), a ridge config."""
    tmp = tmp_path_factory.mktemp("resume_tune")
    data = write_audio_dataset(tmp / "data", n_train=30, n_val=10, n_test=6)
    wd = Workdir.of(tmp / "w")
    ds = load_dataset(data)
    write_folds(ds, make_folds(ds, n_folds=3, seed=0), wd.folds, {"n_folds": 3})
    extract(ds, ["mfcc_stats"], wd.features, jobs=1, progress=False)
    cfg = write_config(tmp / "rt.yaml", "rt", alpha=30.0, search_space=SPACE)
    return {"tmp": tmp, "data": data, "wd": wd, "cfg": cfg}


def trials(storage: Path) -> list[optuna.trial.FrozenTrial]:
    st = open_storage(str(storage))
    (name,) = optuna.study.get_all_study_names(st.storage)
    return optuna.load_study(study_name=name, storage=st.storage).trials


def results(ts: list[optuna.trial.FrozenTrial]) -> list[tuple[str, float]]:
    """The multiset of (params, value) of the COMPLETE trials."""
    return sorted((json.dumps(t.params, sort_keys=True), t.value) for t in ts if t.state == TrialState.COMPLETE)


def n_complete(db: Path) -> int:
    """COMPLETE trials in the SQLite file, read without disturbing the writer (0 before it exists)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet, or busy
        return 0


def run_killed_after_a_trial(cmd: list[str], db: Path, delay: float, timeout: float = 120) -> bool:
    """Start `cmd`; once it has completed a trial of its own, SIGKILL it `delay` s later. True if it was
    still running when killed."""
    start = n_complete(db)
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while n_complete(db) <= start and proc.poll() is None:
        assert time.monotonic() < deadline, "no trial completed"
        time.sleep(0.01)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def test_killed_tuning_resumes_to_the_same_study_and_tuned_config(tiny):
    w = tiny["wd"].root
    db, out = w / "study.db", w / "tuned.yaml"
    cmd = [sys.executable, "-m", "competition.pipeline.tune", str(tiny["cfg"]), "--trials", str(N), "--fast", "--seed", "0",
           "--data", str(tiny["data"]), "--workdir", str(w), "--storage", str(db), "--out", str(out),
           "--jobs", "1", "--no-wandb"]
    # uninterrupted reference, then moved aside: the resumed run uses the same paths (the tuned config
    # names its storage)
    run(cmd)
    ref_trials, ref_out = trials(db), out.read_bytes()
    assert [t.state for t in ref_trials] == [TrialState.COMPLETE] * N
    done = sorted(t.datetime_complete for t in ref_trials)
    per_trial = (done[-1] - done[0]).total_seconds() / (N - 1)  # a warm trial (the first also imports)
    db.rename(w / "ref.db")
    out.unlink()

    rng = random.Random(4)
    killed = 0
    for _ in range(KILLS):
        if n_complete(db) >= N:
            break
        killed += run_killed_after_a_trial(cmd, db, rng.uniform(0.0, 1.5) * per_trial)
    assert killed, "every run finished before its kill: nothing was tested"
    run(cmd)

    got = trials(db)
    assert sum(t.state == TrialState.COMPLETE for t in got) == N
    assert results(got) == results(ref_trials)
    assert out.read_bytes() == ref_out
    # nothing lost or run twice: every other trial was failed by the rerun and replaced in its slot
    replaced = {t.user_attrs.get("requeue_of") for t in got} - {None}
    assert {t.number for t in got if t.state != TrialState.COMPLETE} == replaced
    assert all(t.state == TrialState.FAIL for t in got if t.number in replaced)
    slots = sorted(t.user_attrs["slot"] for t in got if t.state == TrialState.COMPLETE)
    assert slots == list(range(N))

    # a rerun of the finished study runs no trial and writes the same file
    out_mtime = out.stat().st_mtime_ns
    stdout = run(cmd)[1]
    again = trials(db)
    assert [(t.number, t.state) for t in again] == [(t.number, t.state) for t in got], stdout
    assert out.read_bytes() == ref_out and out.stat().st_mtime_ns >= out_mtime


def dead_worker() -> dict:
    """A worker_id of a process of this machine that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return {**worker_id(), "pid": proc.pid, "start": "1"}


@pytest.mark.parametrize("sampled", [False, True])
def test_a_trial_of_a_dead_worker_is_rerun_in_its_slot_at_once(tiny, tmp_path, monkeypatch, sampled):
    """In process and deterministic: a dead worker left its budget lock taken and its trial RUNNING
    (killed before or after drawing its values); the next run breaks the lock at once, fails the trial
    and reruns it in its slot with the same values, ending like an uninterrupted run."""
    wd, data, cfg = tiny["wd"], tiny["data"], {"name": "rt", "model": "ridge", "features": ["mfcc_stats"],
                                              "params": {"alpha": 30.0}, "seed": 7, "search_space": SPACE}
    ds = load_dataset(data)
    kw = dict(fast=True, seed=0, progress=False, no_wandb=True)
    ref = tune(cfg, ds, wd, n_trials=4, storage=str(tmp_path / "ref.db"), out=tmp_path / "ref.yaml", **kw)

    db = tmp_path / "study.db"
    res = tune(cfg, ds, wd, n_trials=2, storage=str(db), out=tmp_path / "t.yaml", **kw)
    ghost = dead_worker()
    monkeypatch.setattr(tune_mod, "worker_id", lambda: ghost)
    st = open_storage(str(db))
    trial = next_trial(res.study, 4, st.lock_file, baseline=None)
    if sampled:
        suggest(trial, SPACE)
        trial.set_user_attr("sampled", True)
    lock = BudgetLock(Path(f"{st.lock_file}.lock"))
    lock.acquire()  # never released: the lock file names the dead worker
    monkeypatch.undo()
    assert trial.number == 2 and trials(db)[2].state == TrialState.RUNNING

    t0 = time.monotonic()
    res = tune(cfg, ds, wd, n_trials=4, storage=str(db), out=tmp_path / "t.yaml", **kw)
    assert time.monotonic() - t0 < tune_mod.LOCK_GRACE_SECONDS
    got = res.study.trials
    assert [t.state for t in got] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    assert got[3].user_attrs["requeue_of"] == 2 and got[3].user_attrs["slot"] == 2
    if sampled:
        assert got[3].params == got[2].params
    assert results(got) == results(ref.study.trials)
    assert (tmp_path / "t.yaml").read_text().replace("study.db", "ref.db") == (tmp_path / "ref.yaml").read_text()
