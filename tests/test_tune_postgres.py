"""Tuning on a real PostgreSQL server: the test starts its own (initdb + pg_ctl on a unix socket in a temporary
directory, stopped at the end even on failure), runs two workers in separate processes on one study, kills
one with SIGKILL in the middle of a trial, and checks that the study still ends with exactly the budget of
finished trials, the killed one failed and retried with its parameters. Skipped, with the reason, where the
server binaries are missing (`bash scripts/test.sh` installs the Debian package `postgresql`). A server
that is down is a clear error naming the URL with its password masked, within seconds."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from competition.pipeline.config import load_config
from competition.data.contract import load_dataset
from competition.pipeline.study_storage import StorageError, open_storage
from competition.pipeline.tune import main, tune
from tests.tune_workers import in_fit, make_workdir, retried_from, start_workers, trials_logged, tune_argv

# Its own PostgreSQL server and two tuning workers, one killed: 25 s of CPU and more.
pytestmark = pytest.mark.slow

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: Debian's /usr/lib/postgresql/<version>/bin, else PATH."""
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True):
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


@pytest.fixture(scope="module")
def postgres() -> str:
    """A throw-away PostgreSQL server on a unix socket; its URL. initdb refuses to run as root, so as root
    the server runs as the `postgres` user the Debian package creates."""
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on "
                    "PATH; `bash scripts/test.sh` installs the Debian package postgresql")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="eri-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        subprocess.run([*pg_ctl, "-l", str(log), "-w", "-t", "60", "-o",
                        f"-k {root} -c listen_addresses='' -p 5432 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=90)
        yield f"postgresql://postgres@/postgres?host={root}"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("tune_pg"))


def test_two_workers_on_postgres_one_killed_the_study_completes(postgres, tiny, tmp_path):
    wd, data, cfg_path = tiny
    n = 10
    # heartbeats every 2 s, stale after 6: a live worker on a loaded machine (seconds without the GIL while
    # importing) must not look dead to the other one, which would fail its trial under it
    argvs = [tune_argv(cfg_path, data, wd.root, postgres, n, seed, tmp_path / f"t{seed}.yaml", "--fast", "--study",
                       "pg", "--heartbeat", "2") for seed in (1, 2)]
    procs = start_workers(tmp_path, argvs, delay=0.5)  # both open the new database at once
    storage = open_storage(postgres).storage
    deadline = time.monotonic() + 240
    while not ("pg" in optuna.study.get_all_study_names(storage) and
               len(optuna.load_study(study_name="pg", storage=storage).get_trials(states=FINISHED)) >= 2):
        assert all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs]
        assert time.monotonic() < deadline, "no trial finished"
        time.sleep(0.05)
    while not in_fit(tmp_path):
        assert procs[0].poll() is None, procs[0].communicate()[0]
        time.sleep(0.01)
    procs[0].send_signal(signal.SIGKILL)  # inside a fit: its trial is RUNNING, its heartbeat stops
    killed_out = procs[0].communicate()[0]
    assert procs[0].returncode == -signal.SIGKILL, killed_out
    out = procs[1].communicate(timeout=300)[0]
    assert procs[1].returncode == 0, out

    study = optuna.load_study(study_name="pg", storage=storage)
    if sum(t.state in FINISHED for t in study.trials) < n:
        # the live worker ran out of trials before the killed one was 3 heartbeats stale: the killed trial
        # still holds its place, and a rerun once it is stale retries it (as a user would)
        time.sleep(7)
        tune(load_config(cfg_path), load_dataset(data), wd, n_trials=n, storage=postgres, study="pg", fast=True,
             seed=3, out=tmp_path / "t3.yaml", progress=False, no_wandb=True, heartbeat=2)
    trials = optuna.load_study(study_name="pg", storage=storage).trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1, [(t.number, t.state.name, retried_from(t)) for t in trials]
    killed = failed[0]
    (retry,) = [t for t in trials if retried_from(t) == killed.number]
    assert retry.state in FINISHED and retry.params == killed.params
    assert sum(t.state in FINISHED for t in trials) == n  # exactly the budget: one live worker at the end
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert trials_logged(killed_out) and trials_logged(out)  # both workers ran trials


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_database_that_is_down_is_a_clear_error_with_the_password_masked(tiny, capsys, tmp_path):
    url = f"postgresql://eri:s3cret@127.0.0.1:{free_port()}/optuna"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(StorageError) as err:
        open_storage(url)
    assert time.monotonic() - t0 < 15
    msg = str(err.value)
    assert f"postgresql://eri:***@127.0.0.1:{url.split(':')[3]}" in msg and "s3cret" not in msg
    assert "Connection refused" in msg or "connection failed" in msg

    wd, data, cfg_path = tiny  # the command: exit code 2, one line, no traceback
    assert main([str(cfg_path), "--trials", "2", "--storage", url, "--data", str(data), "--workdir", str(wd.root),
                 "--no-wandb", "--out", str(tmp_path / "t.yaml")]) == 2
    err_out = capsys.readouterr().err
    assert err_out.startswith("error: cannot open the study storage postgresql://eri:***@") and "s3cret" not in err_out
