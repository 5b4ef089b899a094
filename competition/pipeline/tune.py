"""Hyper-parameter search with Optuna over a config's `search_space`, on run_fold's own fit_fold; the best
trial goes to <workdir>/tuned/<exp>_tuned.yaml. Storages, workers and guarantees: docs/TUNING.md."""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import signal
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, Trial, TrialState

from competition.core.io import write_text
from competition.core.log import command, parse_and_log
from competition.core.metrics import ConstantPredictionWarning
from competition.core.paths import Workdir
from competition.data.contract import Dataset
from competition.data.task import add_dataset_arguments, get_task, open_dataset
from competition.features.store import extract
from competition.folds import n_folds_of, read_folds
from competition.pipeline import tracking
from competition.pipeline.config import ConfigError, apply_override, config_hash, dump_config, load_config
from competition.pipeline.experiment import folds_fingerprint
from competition.pipeline.run_fold import fit_fold, selection_groups, subjects_for
from competition.pipeline.study_storage import DEFAULT_STORAGE, HEARTBEAT_SECONDS, open_storage

# Intermediate values of fold k live at steps k*STEP_STRIDE + epoch; the running CV mean after fold k at
# (k+1)*STEP_STRIDE - 1. The pruner thus always compares the same fold and epoch across trials.
STEP_STRIDE = 1000
# What --trials counts: a RUNNING trial holds its place, so workers stop at N trials, not N + workers - 1.
# A dead worker's trial is failed and retried (so no longer counted) where heartbeats exist (databases).
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def search_space(cfg: dict) -> dict[str, dict]:
    """The config's search_space, validated: {dotted key: spec}."""
    space = cfg.get("search_space")
    if not space:
        raise ConfigError(f"config {cfg['name']!r} has no search_space; add e.g. `search_space: "
                          "{params.alpha: {type: float, low: 0.1, high: 100, log: true}}`")
    for key, spec in space.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if not ((kind == "categorical" and spec.get("choices")) or
                (kind in ("float", "int") and "low" in spec and "high" in spec and spec["low"] < spec["high"])):
            raise ConfigError(f"search_space.{key}: want {{type: float|int, low: A, high: B > A}} or {{type: "
                              f"categorical, choices: [...]}}, got {spec!r}")
    return dict(space)


def suggest(trial: Trial, space: dict[str, dict]) -> dict[str, Any]:
    numeric = {"float": trial.suggest_float, "int": trial.suggest_int}
    return {key: trial.suggest_categorical(key, list(s["choices"])) if s["type"] == "categorical" else
            numeric[s["type"]](key, s["low"], s["high"], log=bool(s.get("log")),
                               **({"step": s["step"]} if "step" in s else {}))
            for key, s in space.items()}


def with_values(cfg: dict, values: dict[str, Any]) -> dict:
    """A copy of cfg with dotted keys set by config.apply_override; each value goes through YAML and back
    unchanged (yaml.safe_dump writes 1e-05 as 1.0e-05, which YAML reads as a float)."""
    out = copy.deepcopy(cfg)
    for key, value in values.items():
        apply_override(out, f"{key}={yaml.safe_dump(value)}")
    return out


def baseline_values(cfg: dict, space: dict[str, dict]) -> dict[str, Any] | None:
    """The config's own value of every searched key, if all are set and inside the space."""
    values = {}
    for key, s in space.items():
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None or (node not in s["choices"] if s["type"] == "categorical"
                            else not s["low"] <= node <= s["high"]):
            return None
        values[key] = node
    return values


def study_name(cfg: dict, space: dict, ds: Dataset, fold: pd.Series, fast: bool) -> str:
    """Deterministic: the same config, space, dataset, folds and objective resume the same study."""
    ident = json.dumps({"cfg": config_hash(cfg), "space": space, "data": ds.fingerprint,
                        "folds": folds_fingerprint(fold), "fast": fast}, sort_keys=True, default=str)
    return f"{cfg['name']}-{'fast' if fast else 'cv'}-{hashlib.sha1(ident.encode()).hexdigest()[:8]}"


def cv_objective(cfg: dict, space: dict[str, dict], ds: Dataset, fold: pd.Series, folds: list[int],
                 wd: Workdir, jobs: int = 1) -> Callable[[Trial], float]:
    task = get_task(cfg.get("task", "eri"))
    epoch_key = f"val_{task.metric_name}"

    def objective(trial: Trial) -> float:
        tcfg = with_values(cfg, suggest(trial, space))
        scores: list[float] = []
        for i, k in enumerate(folds):
            def reporter(epoch: int, row: dict[str, float], base: int = i * STEP_STRIDE) -> None:
                if epoch_key in row and np.isfinite(row[epoch_key]):
                    trial.report(row[epoch_key], base + int(epoch))
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"fold {folds[i]} epoch {epoch}: {row[epoch_key]:.4f}")

            fit = fit_fold(tcfg, k, ds, fold, wd.features, jobs=jobs, progress=False, reporter=reporter,
                           extract_features=False, subjects=subjects_for(tcfg, ds, wd),
                           groups=selection_groups(tcfg, ds, wd))
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


def write_tuned_config(cfg: dict, best: FrozenTrial, study: str, storage_url: str, n_folds: int,
                       path: Path) -> Path:
    """The best trial's values over the config, as a config named <exp>_tuned."""
    out = with_values(cfg, {k: best.params[k] for k in search_space(cfg) if k in best.params})
    out.pop("default", None)
    out["name"] = name = f"{cfg['name']}_tuned"
    out["description"] = (f"{cfg.get('description', cfg['name'])} | tuned: study {study} ({storage_url}), trial "
                          f"{best.number}, CV {get_task(cfg.get('task', 'eri')).metric_label} {best.value:.4f} over "
                          f"{n_folds} fold(s)")
    write_text(path, f"# Written by `python -m competition.pipeline.tune {cfg['name']}`: the best trial's values "
                     f"over the base config.\n# Run it with: bash scripts/run_all.sh {name}   (or scripts/run_fold.sh "
                     f"K {name})\n{dump_config(out)}")
    return path


@dataclass
class TuneResult:
    study: optuna.Study
    storage_url: str
    best: FrozenTrial | None
    baseline: FrozenTrial | None
    config_path: Path | None


def tune(cfg: dict, ds: Dataset, wd: Workdir, n_trials: int, storage: str | None = None,
         study: str | None = None, fast: bool = False, seed: int | None = None, jobs: int = 1,
         out: Path | None = None, progress: bool = True, no_wandb: bool = False,
         heartbeat: int = HEARTBEAT_SECONDS) -> TuneResult:
    """Run trials until the study has n_trials, then write the best trial as a config."""
    space = search_space(cfg)
    fold = read_folds(wd.folds, ds)
    folds = [0] if fast else list(range(n_folds_of(fold)))
    st = open_storage(storage or str(wd.experiment(cfg["name"]) / DEFAULT_STORAGE), heartbeat)
    name = study or study_name(cfg, space, ds, fold, fast)
    optuna.logging.set_verbosity(optuna.logging.INFO if progress else optuna.logging.WARNING)
    s = optuna.create_study(storage=st.storage, study_name=name, direction="maximize", load_if_exists=True,
                            sampler=optuna.samplers.TPESampler(seed=seed),
                            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))
    s.set_user_attr("experiment", cfg["name"])
    s.set_user_attr("folds", folds)
    baseline = baseline_values(cfg, space)
    if baseline is not None and not s.get_trials(deepcopy=False):
        s.enqueue_trial(baseline, user_attrs={"baseline": True}, skip_if_exists=True)
    extract(ds.units, cfg["features"], wd.features, jobs=jobs, progress=progress, require=True)  # once

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(s)  # dead workers' trials are failed and retried, not counted
    run = tracking.start_run(group=cfg["name"], job_type="tune", name=f"{cfg['name']}-tune",
                             config={**cfg, "study": name, "storage": st.url, "n_trials": n_trials,
                                     "folds": folds}, workdir=wd.root, no_wandb=no_wandb)

    def log_trial(study_: optuna.Study, t: FrozenTrial) -> None:
        best = _best(study_)
        run.log({"trial": t.number, "state": t.state.name, **({"value": t.value} if t.value is not None else {}),
                 **{f"params/{k}": v for k, v in t.params.items()},
                 **({"best_value": best.value} if best else {})})

    with run:
        todo = n_trials - len(s.get_trials(deepcopy=False, states=BUDGET_STATES))
        if todo > 0:  # MaxTrialsCallback checks after each trial; n_trials bounds a lone worker exactly
            s.optimize(cv_objective(cfg, space, ds, fold, folds, wd, jobs), n_trials=todo,
                       callbacks=[log_trial, optuna.study.MaxTrialsCallback(n_trials, states=BUDGET_STATES)])
        best, base = _best(s), _baseline(s)
        run.summary({"best_value": best.value if best else float("nan"),
                     "baseline_value": base.value if base else float("nan")})
    path = None if best is None else write_tuned_config(cfg, best, name, st.url, len(folds),
                                                        out or wd.tuned / f"{cfg['name']}_tuned.yaml")
    return TuneResult(s, st.url, best, base, path)


def _best(study: optuna.Study) -> FrozenTrial | None:
    return max(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.value, default=None)


def _baseline(study: optuna.Study) -> FrozenTrial | None:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return next((t for t in done if t.user_attrs.get("baseline")), None)


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exp", help="config name or path")
    ap.add_argument("--trials", type=int, required=True, help="total trials of the study (shared by workers)")
    ap.add_argument("--storage", default=None, help="journal file, SQLite file (.db) or database URL "
                                                    f"(default: oof/<exp>/{DEFAULT_STORAGE})")
    ap.add_argument("--study", default=None, help="study name (default: derived from config, data, folds)")
    ap.add_argument("--fast", action="store_true", help="objective on fold 0 only")
    ap.add_argument("--seed", type=int, default=None, help="sampler seed (give each worker its own)")
    ap.add_argument("--heartbeat", type=int, default=HEARTBEAT_SECONDS,
                    help="database storages: seconds between heartbeats; a trial silent for 3 is retried")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    ap.add_argument("--jobs", type=int, default=2, help="parallel clips during feature extraction")
    ap.add_argument("--out", type=Path, default=None, help="tuned config path (default WORKDIR/tuned/<exp>_tuned.yaml)")
    ap.add_argument("--no-wandb", action="store_true", help="no W&B run (same as WANDB_MODE=disabled)")
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    task, wd, ds = open_dataset(a)
    cfg = load_config(a.exp, a.overrides, wd.tuned, task.name)
    # SIGTERM (kill, SLURM pre-emption) as Ctrl-C: Optuna then marks the running trial FAIL, freeing its place
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        res = tune(cfg, ds, wd, a.trials, a.storage, a.study, a.fast, a.seed, a.jobs, a.out, no_wandb=a.no_wandb,
                   heartbeat=a.heartbeat)
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = pd.Series([t.state.name for t in res.study.trials], dtype=object).value_counts().to_dict()
    print(f"study {res.study.study_name} in {res.storage_url}: {counts}")
    if counts.get("RUNNING"):
        print(f"  RUNNING trials hold their place in the budget: other workers', or dead workers' (a database "
              f"retries these {3 * a.heartbeat} s after their last heartbeat; a journal file keeps them)")
    if res.best is None:
        print("  no completed trial yet")
        return 1
    if res.baseline is not None:
        print(f"  config as written (trial {res.baseline.number}): CV {task.metric_label} {res.baseline.value:.4f}")
    gain = f" ({res.best.value - res.baseline.value:+.4f} over the config)" if res.baseline else ""
    print(f"  best trial {res.best.number}: CV {task.metric_label} {res.best.value:.4f}{gain}  {res.best.params}")
    tuned = f"{cfg['name']}_tuned" if res.config_path.parent == wd.tuned else str(res.config_path)
    prefix = "".join(f"{k}={v} " for k, v in (("TASK", task.name if task.name != "eri" else None),
                                                ("DATA", a.data), ("WORKDIR", a.workdir)) if v)
    print(f"  wrote {res.config_path}; run every fold with: {prefix}bash scripts/run_all.sh {tuned}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
