"""Hyper-parameter search with Optuna over an experiment config's `search_space`.

    python -m competition.tune EXP --trials N [--storage URL|FILE] [--study NAME] [--fast] [--seed S]
                               [--data DIR] [--workdir W] [--set key=value ...] [--out PATH] [--no-wandb]

Objective: CV mean PCC, the mean over folds of each fold's val score (`--fast`: fold 0 only), computed
with the same fit_fold as run_fold but in memory: oof/<exp>/ is never touched. Iterative models are
pruned on their per-epoch val score (MedianPruner), any model after each fold but the last.

`--trials N` is the study's total: rerunning resumes it, and any number of workers started on one storage
share the N trials. Storage: default a SQLite file oof/<exp>/tune/optuna.db; a path ending in .db/.sqlite
is SQLite, any other path is an Optuna journal file (shared filesystems, NFS); a URL such as
postgresql://user:pw@host/db is used as is (many machines). The first trial is the config's own values,
so the study itself shows what tuning gained. The best trial is written to configs/<exp>_tuned.yaml,
which `bash scripts/run_fold.sh K <exp>_tuned` runs.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import socket
import sys
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

from competition import tracking
from competition.config import ConfigError, config_hash, dump_config, load_config
from competition.data.contract import Dataset, load_dataset
from competition.experiment import folds_fingerprint
from competition.features.store import extract
from competition.folds import n_folds_of, read_folds
from competition.io import write_text
from competition.metrics import ConstantPredictionWarning
from competition.paths import CONFIG_DIR, Workdir
from competition.task import get_task
from competition.training.run_fold import fit_fold

# Intermediate values of fold k live at steps k*STEP_STRIDE + epoch; the running CV mean after fold k at
# (k+1)*STEP_STRIDE - 1. The pruner thus always compares the same fold and epoch across trials.
STEP_STRIDE = 1000
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)

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
    """With heartbeats, a trial whose worker died is marked failed and its budget slot reused."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=60,
                                          grace_period=180)


@contextmanager
def budget_lock(lock_file: Path | None) -> Iterator[None]:
    if lock_file is None:  # server databases: the budget may overshoot by one trial per extra worker
        yield
        return
    from optuna.storages.journal import JournalFileOpenLock
    lock = JournalFileOpenLock(str(lock_file), grace_period=60)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def claim_trial(study: optuna.Study, n_trials: int, lock_file: Path | None,
                baseline: dict[str, Any] | None) -> bool:
    """Reserve one of the study's N trials for this worker by queueing it (the baseline first); False
    when the budget is spent. Queued trials are popped atomically by whichever worker asks next, so
    workers never run the same trial and a worker killed between claim and run loses nothing."""
    with budget_lock(lock_file):
        trials = study.get_trials(deepcopy=False, states=BUDGET_STATES)
        if len(trials) >= n_trials:
            return False
        if baseline is not None and not any(t.user_attrs.get("baseline") for t in trials):
            study.enqueue_trial(baseline, user_attrs={"baseline": True})
        else:
            study.enqueue_trial({})
    return True


# ---- objective ----

def cv_objective(cfg: dict, space: dict[str, dict], ds: Dataset, fold: pd.Series, folds: list[int],
                 wd: Workdir, jobs: int = 1) -> Callable[[Trial], float]:
    task = get_task(cfg.get("task", "eri"))
    epoch_key = f"val_{task.metric_name}"

    def objective(trial: Trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        tcfg = with_values(cfg, suggest(trial, space))
        scores: list[float] = []
        for i, k in enumerate(folds):
            def reporter(epoch: int, row: dict[str, float], base: int = i * STEP_STRIDE) -> None:
                if epoch_key in row and np.isfinite(row[epoch_key]):
                    trial.report(row[epoch_key], base + int(epoch))
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"fold {folds[i]} epoch {epoch}: {row[epoch_key]:.4f}")

            fit = fit_fold(tcfg, k, ds, fold, wd.features, jobs=jobs, progress=False, reporter=reporter,
                           extract_features=False)
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
    out["description"] = (f"{cfg.get('description', cfg['name'])} | tuned: study {study} ({storage_url}), "
                          f"trial {best.number}, CV mean PCC {best.value:.4f} over {n_folds} fold(s)")
    return out


def write_tuned_config(cfg: dict, path: Path) -> Path:
    header = (f"# Written by `python -m competition.tune {cfg['name'].removesuffix('_tuned')}`: the best trial's "
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
        n_before = len(optuna.create_study(storage=st.storage, study_name=name, direction="maximize",
                                           load_if_exists=True).trials)
    # a resumed study must not replay its first samples, and each worker needs its own seed
    sampler_seed = None if seed is None else int(np.random.SeedSequence([seed, n_before]).generate_state(1)[0])
    s = optuna.load_study(study_name=name, storage=st.storage,
                          sampler=optuna.samplers.TPESampler(seed=sampler_seed),
                          pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))
    s.set_user_attr("experiment", cfg["name"])
    s.set_user_attr("folds", folds)
    extract(ds, cfg["features"], wd.features, jobs=jobs, progress=progress)  # once, not per trial

    objective = cv_objective(cfg, space, ds, fold, folds, wd, jobs)
    baseline = baseline_values(cfg, space)
    done_before = len(s.get_trials(deepcopy=False, states=BUDGET_STATES))
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
        while claim_trial(s, n_trials, st.lock_file, baseline):
            s.optimize(objective, n_trials=1, callbacks=[on_trial])
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
    a = ap.parse_args(argv)
    wd = Workdir.of(a.workdir)
    ds = load_dataset(a.data or wd.embedded_data)
    cfg = load_config(a.exp, a.overrides)
    res = tune(cfg, ds, wd, a.trials, a.storage, a.study, a.fast, a.seed, a.jobs, a.out, no_wandb=a.no_wandb)
    states = pd.Series([t.state.name for t in res.study.trials]).value_counts().to_dict()
    print(f"study {res.study.study_name} in {res.storage_url}: {states}")
    if res.baseline is not None:
        print(f"  config as written (trial {res.baseline.number}): CV mean PCC {res.baseline.value:.4f}")
    if res.best is None:
        print("  no completed trial yet")
        return 1
    gain = f" ({res.best.value - res.baseline.value:+.4f} over the config)" if res.baseline else ""
    print(f"  best trial {res.best.number}: CV mean PCC {res.best.value:.4f}{gain}  {res.best.params}")
    tuned = f"{cfg['name']}_tuned" if res.config_path.parent == CONFIG_DIR else str(res.config_path)
    print(f"  wrote {res.config_path}; run every fold with: bash scripts/run_all.sh {tuned}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
