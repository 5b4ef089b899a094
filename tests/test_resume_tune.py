"""Stop a tuning worker in the middle of a trial (SIGTERM, SIGKILL) and rerun it, on the default journal file and on a
database storage with heartbeats (SQLite here; PostgreSQL in test_tune_postgres.py).

What survives the kill (docs/TUNING.md): the named study and its finished trials, and the budget. On a
database the killed trial is failed once its heartbeat is stale and retried with its parameters
(RetryHeartbeatStaleTrialCallback), so the study ends with exactly N finished trials. A journal file has no
heartbeats: the killed trial stays RUNNING and keeps its place in the budget. Neither is byte-identical to
an uninterrupted run (the sampler is not re-seeded per trial any more)."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from competition.pipeline.config import load_config
from competition.data.contract import load_dataset
from competition.pipeline.study_storage import open_storage
from competition.pipeline.tune import tune
from tests.tune_workers import in_fit, make_workdir, retried_from, start_workers, tune_argv

# Tuning workers in fresh processes, killed and rerun: 20 s of CPU and more; two workers sharing a journal
# study stay in the fast suite (test_tune.py).
pytestmark = pytest.mark.slow

N = 5
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("resume_tune"))


def load(storage: str) -> optuna.Study:
    st = open_storage(storage)
    (name,) = optuna.study.get_all_study_names(st.storage)
    return optuna.load_study(study_name=name, storage=st.storage)


def n_finished(storage: str) -> int:
    """Finished trials of the study in `storage`; 0 before the worker created it."""
    if not Path(storage).exists() or not optuna.study.get_all_study_names(open_storage(storage).storage):
        return 0
    return len(load(storage).get_trials(states=FINISHED))


def stop_mid_trial(tmp: Path, argv: list[str], storage: str, sig: int = signal.SIGKILL) -> optuna.Study:
    """Start a worker; once it has finished 2 trials and is inside a fit, send it `sig`."""
    tmp.mkdir(exist_ok=True)
    (proc,) = start_workers(tmp, [argv], delay=0.5)
    deadline = time.monotonic() + 240
    while n_finished(storage) < 2:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no trial finished"
        time.sleep(0.05)
    while not in_fit(tmp):
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.01)
    proc.send_signal(sig)
    out = proc.communicate()[0]
    assert proc.returncode == (-sig if sig == signal.SIGKILL else -signal.SIGINT), out  # SIGTERM: KeyboardInterrupt
    return load(storage)


def rerun(tiny, storage: str, out: Path, heartbeat: int = 60) -> optuna.Study:
    wd, data, cfg_path = tiny
    res = tune(load_config(cfg_path), load_dataset(data), wd, n_trials=N, storage=storage, fast=True, seed=5,
               out=out, progress=False, no_wandb=True, heartbeat=heartbeat)
    assert res.config_path == out and load_config(out)["params"]["alpha"] == res.best.params["params.alpha"]
    return res.study


def test_sigterm_frees_the_trial_and_kill_9_keeps_its_place_on_a_journal_file(tiny, tmp_path):
    """SIGTERM (kill, a SLURM pre-emption) is Ctrl-C for the tuner: Optuna marks the trial FAIL at once and
    it does not count. SIGKILL leaves the trial RUNNING (a journal file has no heartbeats): it keeps its
    place in the budget. The rerun resumes the named study and runs the rest, no trial twice."""
    wd, data, cfg_path = tiny
    storage, out = str(tmp_path / "study.journal"), tmp_path / "tuned.yaml"
    argv = tune_argv(cfg_path, data, wd.root, storage, N, 0, out, "--fast")
    study = stop_mid_trial(tmp_path / "term", argv, storage, signal.SIGTERM)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    (terminated,) = study.get_trials(states=(TrialState.FAIL,))
    study = stop_mid_trial(tmp_path / "kill", argv, storage)
    (killed,) = study.get_trials(states=(TrialState.RUNNING,))
    before = len(study.trials)

    trials = rerun(tiny, storage, out).trials
    assert len(trials) > before
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [terminated.number]
    assert [t.number for t in trials if t.state == TrialState.RUNNING] == [killed.number]
    assert sum(t.state in FINISHED for t in trials) == N - 1  # + the killed trial: N in the budget
    assert len(rerun(tiny, storage, out).trials) == len(trials)  # finished: a rerun runs nothing


def test_killed_worker_on_a_database_is_retried_with_its_parameters(tiny, tmp_path):
    wd, data, cfg_path = tiny
    storage, out = str(tmp_path / "study.db"), tmp_path / "tuned.yaml"
    argv = tune_argv(cfg_path, data, wd.root, storage, N, 0, out, "--fast", "--heartbeat", "1")
    (killed,) = stop_mid_trial(tmp_path, argv, storage).get_trials(states=(TrialState.RUNNING,))
    time.sleep(4)  # > 3 heartbeats of 1 s: the killed trial is stale

    trials = rerun(tiny, storage, out, heartbeat=1).trials
    assert trials[killed.number].state == TrialState.FAIL
    retries = [t for t in trials if retried_from(t) == killed.number]
    assert len(retries) == 1 and retries[0].state in FINISHED
    assert retries[0].params == killed.params and killed.params  # the same point, not a new one
    assert sum(t.state in FINISHED for t in trials) == N
    assert not [t for t in trials if t.state == TrialState.RUNNING]

