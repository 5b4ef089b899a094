"""Hyper-parameter search with Optuna over an experiment config's `search_space`.

    python -m competition.pipeline.tune EXP --trials N [--storage URL|FILE] [--study NAME] [--fast] [--seed S]
                               [--data DIR] [--workdir W] [--set key=value ...] [--out PATH] [--no-wandb]
                               [--task eri|va|expr]

Objective: the task's metric (ERI: mean PCC; VA: mean CCC; EXPR: macro-F1) averaged over folds of each
fold's val score (`--fast`: fold 0 only), computed
with the same fit_fold as run_fold but in memory: oof/<exp>/ is never touched. Iterative models are
pruned on their per-epoch val score (MedianPruner), any model after each fold but the last.

`--trials N` is the study's total: rerunning resumes it, and any number of workers started on one storage
share the N trials. Storage: default a SQLite file oof/<exp>/tune/optuna.db; a path ending in .db/.sqlite
is SQLite, any other path is an Optuna journal file (shared filesystems, NFS); a URL such as
postgresql://user:pw@host/db is used as is (many machines). The first trial is the config's own values,
so the study itself shows what tuning gained. The best trial is written to configs/<exp>_tuned.yaml,
which `bash scripts/run_fold.sh K <exp>_tuned` runs.

Resume after a kill: every trial holds a budget slot (user attr `slot`, 0..N-1) and is sampled by a TPE
seeded from (seed, slot), so its parameters depend only on the seed, the slot and the finished trials
before it, never on how many runs it took. A trial left RUNNING by a worker that died on this machine
(user attr `worker_id`: host, boot id, pid, process start time) is failed by the next worker and queued
again in the same slot (user attr `requeue_of`), with the same parameters once they were all drawn; a
kill -9 and rerun thus ends with the same N trials and the same tuned config as an uninterrupted run.
Workers on other machines that died are found by their stale heartbeat (RDB storages, 3 minutes).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, Trial, TrialState
from tqdm.auto import tqdm

from competition.pipeline import tracking
from competition.pipeline.config import ConfigError, config_hash, dump_config, load_config
from competition.data.contract import Dataset
from competition.pipeline.experiment import folds_fingerprint
from competition.features.store import extract
from competition.folds import n_folds_of, read_folds
from competition.core.io import write_text
from competition.core.metrics import ConstantPredictionWarning
from competition.core.paths import CONFIG_DIR, Workdir
from competition.data.task import add_task_argument, get_task
from competition.pipeline.run_fold import fit_fold, subjects_for

# Intermediate values of fold k live at steps k*STEP_STRIDE + epoch; the running CV mean after fold k at
# (k+1)*STEP_STRIDE - 1. The pruner thus always compares the same fold and epoch across trials.
STEP_STRIDE = 1000
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
HEARTBEAT_SECONDS, HEARTBEAT_GRACE_SECONDS = 60, 180  # RDB storages: a remote worker's trial is stale after 3 min
LOCK_GRACE_SECONDS = 60  # a budget lock unchanged for this long is broken (its holder on another machine died)

# Used when a config has no search_space. TE: seed 000's Ray Tune ranges (lr evenly in 1e-5..2e-4, batch
# 8..32, transformer hidden 512..1024, at most 10 epochs per trial).
MODEL_DEFAULT_SPACES: dict[str, dict[str, dict]] = {
    "te": {
        "params.lr": {"type": "float", "low": 1e-5, "high": 2e-4},
        "params.batch_size": {"type": "int", "low": 8, "high": 32},
        "params.hidden": {"type": "int", "low": 512, "high": 1024, "step": 64},
        "params.epochs": {"type": "int", "low": 2, "high": 10},
    },
}


# ---- search space ----

def search_space(cfg: dict) -> dict[str, dict]:
    """The config's search_space (or its model's default), validated: {dotted key: spec}."""
    space = cfg.get("search_space") or MODEL_DEFAULT_SPACES.get(cfg["model"])
    if not space:
        raise ConfigError(f"config {cfg['name']!r} has no search_space and model {cfg['model']!r} has no "
                          "default one; add e.g. `search_space: {params.alpha: {type: float, low: 0.1, "
                          "high: 100, log: true}}`")
    for key, spec in space.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind in ("float", "int"):
            if "low" not in spec or "high" not in spec or not spec["low"] < spec["high"]:
                raise ConfigError(f"search_space.{key}: {kind} needs low < high, got {spec}")
        elif kind == "categorical":
            if not spec.get("choices"):
                raise ConfigError(f"search_space.{key}: categorical needs a non-empty `choices` list")
        else:
            raise ConfigError(f"search_space.{key}: type must be float, int or categorical, got {spec!r}")
    return dict(space)


def suggest(trial: Trial, space: dict[str, dict]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, s in space.items():
        if s["type"] == "float":
            values[key] = trial.suggest_float(key, float(s["low"]), float(s["high"]), log=bool(s.get("log")),
                                              step=s.get("step"))
        elif s["type"] == "int":
            values[key] = trial.suggest_int(key, int(s["low"]), int(s["high"]), log=bool(s.get("log")),
                                            step=int(s.get("step", 1)))
        else:
            values[key] = trial.suggest_categorical(key, list(s["choices"]))
    return values


def get_path(cfg: dict, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def with_values(cfg: dict, values: dict[str, Any]) -> dict:
    """A copy of cfg with dotted keys set (values kept as typed: no YAML re-parsing of '1e-05')."""
    out = copy.deepcopy(cfg)
    for key, value in values.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def baseline_values(cfg: dict, space: dict[str, dict]) -> dict[str, Any] | None:
    """The config's own value of every searched key, if all are set and inside the space."""
    values = {}
    for key, s in space.items():
        v = get_path(cfg, key)
        if v is None:
            return None
        if s["type"] == "categorical":
            if v not in s["choices"]:
                return None
        elif not s["low"] <= v <= s["high"]:
            return None
        values[key] = v
    return values


# ---- study identity and storage ----

def study_name(cfg: dict, space: dict, ds: Dataset, fold: pd.Series, fast: bool) -> str:
    """Deterministic: the same config, space, dataset, folds and objective resume the same study."""
    ident = json.dumps({"cfg": config_hash(cfg), "space": space, "data": ds.fingerprint,
                        "folds": folds_fingerprint(fold), "fast": fast}, sort_keys=True, default=str)
    return f"{cfg['name']}-{'fast' if fast else 'cv'}-{hashlib.sha1(ident.encode()).hexdigest()[:8]}"


def default_storage(wd: Workdir, exp: str) -> str:
    return str(wd.experiment(exp) / "tune" / "optuna.db")


@dataclass
class Storage:
    storage: optuna.storages.BaseStorage
    url: str                   # what optuna-dashboard and --storage accept
    lock_file: Path | None     # file-based storages: a lock that makes the trial budget exact


def open_storage(spec: str) -> Storage:
    if "://" in spec:
        if spec.startswith("sqlite:///"):
            return _sqlite(Path(spec[len("sqlite:///"):]))
        return Storage(_rdb(spec), spec, None)
    path = Path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return _sqlite(path)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    return Storage(JournalStorage(backend), str(path), Path(f"{path}.budget"))


def _sqlite(path: Path) -> Storage:
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    lock = Path(f"{path}.budget")
    with budget_lock(lock):  # two workers creating the tables of a new file at once would collide
        # several local workers write one file: wait for SQLite's lock instead of failing
        return Storage(_rdb(url, {"connect_args": {"timeout": 120}}), url, lock)


def _rdb(url: str, engine_kwargs: dict | None = None) -> optuna.storages.RDBStorage:
    """With heartbeats, a trial whose worker died (anywhere) is failed once its heartbeat is stale and
    queued again in its budget slot (see requeue)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                          grace_period=HEARTBEAT_GRACE_SECONDS,
                                          heartbeat_stale_trial_callback=requeue)


# ---- workers: who runs a trial, and is it still alive ----

def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), '' where /proc cannot tell, None if no live
    process has this pid (zombies included)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else ""
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return None if fields[0] in ("Z", "X", "x") else fields[19]


def worker_id() -> dict[str, Any]:
    """This process, identified well enough to tell later, on this machine, whether it is still running."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": _start_time(pid) or ""}


def worker_dead(wid: Any) -> bool:
    """True only when `wid` (a worker_id) certainly ran on this machine since its last boot and that
    process is gone; a worker on another machine (or of an unknown kind) is never declared dead here."""
    if not isinstance(wid, dict) or "pid" not in wid:
        return False
    me = worker_id()
    if wid.get("host") != me["host"] or wid.get("boot", "") != me["boot"]:
        return False
    pid = int(wid["pid"])
    start = _start_time(pid)
    if start is None:
        return True
    if start and wid.get("start"):
        return start != wid["start"]  # the pid was reused by another process
    try:  # no /proc: ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


# ---- the trial budget ----

class BudgetLock:
    """An exclusive lock file (O_EXCL: works on NFS) holding its owner's worker_id. A waiter removes it at
    once when the owner died on this machine (kill -9 inside the lock), else after LOCK_GRACE_SECONDS
    without change (an owner on another machine died)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.token = ""

    def acquire(self) -> None:
        self.token = json.dumps({**worker_id(), "nonce": uuid.uuid4().hex})
        seen, since, delay = None, time.monotonic(), 0.001
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(self.token)
                return
            try:
                held = (self.path.read_text(), self.path.stat().st_mtime_ns)
            except FileNotFoundError:
                continue
            if held != seen:
                seen, since = held, time.monotonic()
            try:
                owner = json.loads(held[0]) if held[0] else None  # empty: its owner is writing it
            except ValueError:
                owner = None
            if worker_dead(owner) or time.monotonic() - since > LOCK_GRACE_SECONDS:
                self._break(held[0])
                continue
            time.sleep(delay)
            delay = min(2 * delay, 0.05)

    def _break(self, content: str) -> None:
        """Remove the lock if it still holds `content`; waiters on this machine break it one at a time,
        so none removes the lock another has just taken."""
        import fcntl
        with open(f"{self.path}.break", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                if self.path.read_text() == content:
                    self.path.unlink()
            except FileNotFoundError:
                pass

    def release(self) -> None:
        try:
            if self.path.read_text() == self.token:
                self.path.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def budget_lock(lock_file: Path | None) -> Iterator[None]:
    if lock_file is None:  # server databases: the budget may overshoot by one trial per extra worker
        yield
        return
    lock = BudgetLock(Path(f"{lock_file}.lock"))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def live_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that hold a budget slot: all but those a requeued copy replaced. Slot i is held by
    exactly one of them, so the next slot is len(live_trials)."""
    replaced = {t.user_attrs.get("requeue_of") for t in trials}
    return [t for t in trials if t.number not in replaced]


def requeue(study: optuna.Study, t: FrozenTrial) -> None:
    """Queue a trial whose worker died again in its slot, then fail it (idempotent, so a kill in between
    only makes the next worker finish the job). It keeps its enqueued values (the baseline's) and, once
    all were drawn, its sampled ones; a trial killed while sampling is sampled again, by the same
    slot-seeded sampler, from the same finished trials."""
    if not any(x.user_attrs.get("requeue_of") == t.number for x in study.get_trials(deepcopy=False)):
        params = {**(t.params if t.user_attrs.get("sampled") else {}), **t.system_attrs.get("fixed_params", {})}
        attrs = {k: t.user_attrs[k] for k in ("slot", "baseline") if k in t.user_attrs}
        study.enqueue_trial(params, user_attrs={"slot": t.number, **attrs, "requeue_of": t.number})
    if t.state == TrialState.RUNNING:
        try:
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # its worker was alive after all and finished
            pass


def recover_dead_trials(study: optuna.Study, exclusive: bool) -> None:
    """Requeue the RUNNING trials whose worker died on this machine, and those it died before naming
    (`exclusive`: we hold the budget lock, inside which a worker pops a trial and names itself); RDB
    storages also fail (and requeue, via their callback) the trials whose heartbeat is stale."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        wid = t.user_attrs.get("worker_id")
        if worker_dead(wid) if wid is not None else (exclusive and "slot" in t.user_attrs):
            requeue(study, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    if isinstance(storage, optuna.storages.RDBStorage):
        return storage.get_heartbeat_interval()
    return None


def next_trial(study: optuna.Study, n_trials: int, lock_file: Path | None,
               baseline: dict[str, Any] | None) -> Trial | None:
    """Under the budget lock: recover dead workers' trials, then pop a queued trial or, while fewer than
    N trials are done or running, queue one in the next slot (the baseline first) and pop it; this worker
    names itself on the trial before the lock is released. None when the budget is spent."""
    with budget_lock(lock_file):
        recover_dead_trials(study, exclusive=lock_file is not None)
        live = live_trials(study.get_trials(deepcopy=False))
        if not any(t.state == TrialState.WAITING for t in live):
            if sum(t.state in BUDGET_STATES for t in live) >= n_trials:
                return None
            taken = [t for t in live if t.state in BUDGET_STATES]
            if baseline is not None and not any(t.user_attrs.get("baseline") for t in taken):
                study.enqueue_trial(baseline, user_attrs={"slot": len(live), "baseline": True})
            else:
                study.enqueue_trial({}, user_attrs={"slot": len(live)})
        with warnings.catch_warnings():  # we run the heartbeat ourselves (run_trial)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        if _heartbeat_interval(study._storage):
            study._storage.record_heartbeat(trial._trial_id)
        wid = worker_id()
        trial.set_user_attr("worker", f"{wid['host']}:{wid['pid']}")
        trial.set_user_attr("worker_id", wid)
        if "slot" not in trial.user_attrs:  # no lock: another worker popped the trial we queued
            trial.set_user_attr("slot", len(live))
    return trial


@contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> Iterator[None]:
    interval = _heartbeat_interval(storage)
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                storage.record_heartbeat(trial_id)
            except Exception as exc:  # a database hiccup: try again next time
                warnings.warn(f"heartbeat of trial {trial_id} failed: {exc}")

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_trial(study: optuna.Study, trial: Trial, objective: Callable[[Trial], float],
              lock_file: Path | None) -> FrozenTrial:
    """Run one popped trial and record its result, as Study.optimize would (an error fails the trial and
    is raised). Interrupted (Ctrl-C, SystemExit), it is queued again for the next run."""
    try:
        with heartbeat(study._storage, trial._trial_id):
            value = objective(trial)
    except optuna.TrialPruned:
        return study.tell(trial, state=TrialState.PRUNED)
    except Exception:
        study.tell(trial, state=TrialState.FAIL)
        raise
    except BaseException:
        with budget_lock(lock_file):
            requeue(study, study._storage.get_trial(trial._trial_id))
        raise
    return study.tell(trial, value)


# ---- sampling ----

def slot_seed(seed: int, slot: int) -> int:
    return int(np.random.SeedSequence([seed, slot]).generate_state(1)[0])


class SlotSampler(optuna.samplers.BaseSampler):
    """TPE whose random state for a trial is seeded from (seed, the trial's budget slot): what a trial
    draws depends on the seed, its slot and the finished trials, not on restarts, so a resumed study
    samples what an uninterrupted one would. Workers with their own seeds draw their own points."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self._by_trial: dict[int, optuna.samplers.TPESampler] = {}

    def _tpe(self, trial: FrozenTrial) -> optuna.samplers.TPESampler:
        tpe = self._by_trial.get(trial._trial_id)
        if tpe is None:
            slot = int(trial.user_attrs.get("slot", trial.number))
            tpe = optuna.samplers.TPESampler(seed=None if self.seed is None else slot_seed(self.seed, slot))
            self._by_trial[trial._trial_id] = tpe
        return tpe

    def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
        return self._tpe(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
        return self._tpe(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        return self._tpe(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
        self._tpe(trial).after_trial(study, trial, state, values)
        self._by_trial.pop(trial._trial_id, None)


# ---- objective ----

def cv_objective(cfg: dict, space: dict[str, dict], ds: Dataset, fold: pd.Series, folds: list[int],
                 wd: Workdir, jobs: int = 1) -> Callable[[Trial], float]:
    task = get_task(cfg.get("task", "eri"))
    epoch_key = f"val_{task.metric_name}"

    def objective(trial: Trial) -> float:
        tcfg = with_values(cfg, suggest(trial, space))
        trial.set_user_attr("sampled", True)  # a requeued copy of this trial reuses its values
        scores: list[float] = []
        for i, k in enumerate(folds):
            def reporter(epoch: int, row: dict[str, float], base: int = i * STEP_STRIDE) -> None:
                if epoch_key in row and np.isfinite(row[epoch_key]):
                    trial.report(row[epoch_key], base + int(epoch))
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"fold {folds[i]} epoch {epoch}: {row[epoch_key]:.4f}")

            fit = fit_fold(tcfg, k, ds, fold, wd.features, jobs=jobs, progress=False, reporter=reporter,
                           extract_features=False, subjects=subjects_for(tcfg, ds, wd))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConstantPredictionWarning)
                scores.append(task.score(fit.val_pred, ds.labels(fit.val_ids)))
            trial.set_user_attr("fold_scores", scores)
            if i < len(folds) - 1:
                trial.report(float(np.mean(scores)), (i + 1) * STEP_STRIDE - 1)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"after fold {k}: CV mean {np.mean(scores):.4f}")
        return float(np.mean(scores))

    return objective


# ---- the tuned config ----

def tuned_config(cfg: dict, best: FrozenTrial, study: str, storage_url: str, n_folds: int) -> dict:
    space = search_space(cfg)
    out = with_values(cfg, {k: best.params[k] for k in space if k in best.params})
    out.pop("default", None)
    out["name"] = f"{cfg['name']}_tuned"
    # the slot, not the trial number: a trial re-run after a kill has a new number but keeps its slot, so
    # a killed-and-resumed study writes the same file as an uninterrupted one
    slot = best.user_attrs.get("slot", best.number)
    out["description"] = (f"{cfg.get('description', cfg['name'])} | tuned: study {study} ({storage_url}), "
                          f"trial slot {slot}, CV {get_task(cfg.get('task', 'eri')).metric_label} {best.value:.4f} over "
                          f"{n_folds} fold(s)")
    return out


def write_tuned_config(cfg: dict, path: Path) -> Path:
    header = (f"# Written by `python -m competition.pipeline.tune {cfg['name'].removesuffix('_tuned')}`: the best trial's "
              "values over the base config.\n# Run it with: bash scripts/run_all.sh "
              f"{cfg['name']}   (or scripts/run_fold.sh K {cfg['name']})\n")
    write_text(path, header + dump_config(cfg))
    return path


# ---- driver ----

@dataclass
class TuneResult:
    study: optuna.Study
    storage_url: str
    best: FrozenTrial | None
    baseline: FrozenTrial | None
    config_path: Path | None


def tune(cfg: dict, ds: Dataset, wd: Workdir, n_trials: int, storage: str | None = None,
         study: str | None = None, fast: bool = False, seed: int | None = None, jobs: int = 1,
         out: Path | None = None, progress: bool = True, no_wandb: bool = False) -> TuneResult:
    """Run this worker's share of the study's n_trials and write the best trial as a config."""
    space = search_space(cfg)
    fold = read_folds(wd.folds, ds)
    folds = [0] if fast else list(range(n_folds_of(fold)))
    st = open_storage(storage or default_storage(wd, cfg["name"]))
    name = study or study_name(cfg, space, ds, fold, fast)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with budget_lock(st.lock_file):
        optuna.create_study(storage=st.storage, study_name=name, direction="maximize", load_if_exists=True)
    s = optuna.load_study(study_name=name, storage=st.storage, sampler=SlotSampler(seed),
                          pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))
    s.set_user_attr("experiment", cfg["name"])
    s.set_user_attr("folds", folds)
    extract(ds.units, cfg["features"], wd.features, jobs=jobs, progress=progress)  # once, not per trial

    objective = cv_objective(cfg, space, ds, fold, folds, wd, jobs)
    baseline = baseline_values(cfg, space)
    done_before = sum(t.state in BUDGET_STATES for t in live_trials(s.get_trials(deepcopy=False)))
    bar = tqdm(total=max(0, n_trials - done_before), desc=f"tune {name}", unit="trial", disable=not progress)
    run = tracking.start_run(group=cfg["name"], job_type="tune", name=f"{cfg['name']}-tune",
                             config={**cfg, "study": name, "storage": st.url, "n_trials": n_trials,
                                     "folds": folds}, workdir=wd.root, no_wandb=no_wandb)

    def on_trial(study_: optuna.Study, t: FrozenTrial) -> None:
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        if t.value is not None:
            row["value"] = t.value
        row.update({f"params/{k}": v for k, v in t.params.items()})
        best = _best(study_)
        if best is not None:
            row["best_value"] = best.value
            bar.set_postfix(best=f"{best.value:.4f}", last=f"{t.value:.4f}" if t.value is not None else "-")
        run.log(row)
        bar.update(1)

    with run, bar:
        while (trial := next_trial(s, n_trials, st.lock_file, baseline)) is not None:
            on_trial(s, run_trial(s, trial, objective, st.lock_file))
        best, base = _best(s), _baseline(s)
        run.summary({"best_value": best.value if best else float("nan"),
                     "baseline_value": base.value if base and base.value is not None else float("nan")})
    path = None
    if best is not None:
        path = write_tuned_config(tuned_config(cfg, best, name, st.url, len(folds)),
                                  out or CONFIG_DIR / f"{cfg['name']}_tuned.yaml")
    return TuneResult(s, st.url, best, base, path)


def _best(study: optuna.Study) -> FrozenTrial | None:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(done, key=lambda t: t.value) if done else None


def _baseline(study: optuna.Study) -> FrozenTrial | None:
    return next((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")
                 and t.state == TrialState.COMPLETE), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exp", help="config name or path")
    ap.add_argument("--trials", type=int, required=True, help="total trials of the study (shared by workers)")
    ap.add_argument("--storage", default=None, help="SQLite/journal file or database URL "
                                                    "(default: oof/<exp>/tune/optuna.db)")
    ap.add_argument("--study", default=None, help="study name (default: derived from config, data, folds)")
    ap.add_argument("--fast", action="store_true", help="objective on fold 0 only")
    ap.add_argument("--seed", type=int, default=None, help="sampler seed (give each worker its own)")
    ap.add_argument("--data", type=Path, default=None, help="dataset root (default: the embedded dataset)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    ap.add_argument("--jobs", type=int, default=2, help="parallel clips during feature extraction")
    ap.add_argument("--out", type=Path, default=None, help="tuned config path (default configs/<exp>_tuned.yaml)")
    ap.add_argument("--no-wandb", action="store_true", help="no W&B run (same as WANDB_MODE=disabled)")
    add_task_argument(ap)
    a = ap.parse_args(argv)
    task = get_task(a.task)
    cfg = load_config(a.exp, a.overrides)
    if cfg["task"] != task.name:
        ap.error(f"config {cfg['name']!r} is for task {cfg['task']!r}, not {task.name!r}; pass --task {cfg['task']}")
    wd = task.workdir(a.workdir)
    ds = task.load(a.data or wd.embedded_data)
    res = tune(cfg, ds, wd, a.trials, a.storage, a.study, a.fast, a.seed, a.jobs, a.out, no_wandb=a.no_wandb)
    states = pd.Series([t.state.name for t in res.study.trials]).value_counts().to_dict()
    print(f"study {res.study.study_name} in {res.storage_url}: {states}")
    if res.baseline is not None:
        print(f"  config as written (trial {res.baseline.number}): CV {task.metric_label} {res.baseline.value:.4f}")
    if res.best is None:
        print("  no completed trial yet")
        return 1
    gain = f" ({res.best.value - res.baseline.value:+.4f} over the config)" if res.baseline else ""
    print(f"  best trial {res.best.number}: CV {task.metric_label} {res.best.value:.4f}{gain}  {res.best.params}")
    tuned = f"{cfg['name']}_tuned" if res.config_path.parent == CONFIG_DIR else str(res.config_path)
    prefix = "" if task.name == "eri" else f"TASK={task.name} "
    print(f"  wrote {res.config_path}; run every fold with: {prefix}bash scripts/run_all.sh {tuned}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
