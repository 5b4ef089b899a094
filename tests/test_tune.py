"""competition.pipeline.tune: search spaces, deterministic resumable studies, an objective identical to run_fold's
scores, pruning on epoch reports, the tuned config, and two workers sharing one study's trial budget."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from competition.pipeline.config import ConfigError, load_config
from competition.data.contract import load_dataset
from competition.features.store import extract
from competition.folds import make_folds, read_folds, write_folds
from competition.core.io import read_json
from competition.models.classical import RidgeModel
from competition.models.registry import register_model
from competition.core.paths import Workdir
from competition.pipeline.run_fold import run_fold
from competition.pipeline.tune import (MODEL_DEFAULT_SPACES, STEP_STRIDE, baseline_values, open_storage, search_space,
                              study_name, tune, with_values)
from tests.tiny_data import REPO, write_audio_dataset

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONHASHSEED": "0"}
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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("tune"))


def tree_digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_search_space_validation_and_defaults():
    base = {"name": "x", "model": "ridge"}
    assert search_space({**base, "search_space": SPACE}) == SPACE
    with pytest.raises(ConfigError, match="no search_space"):
        search_space(base)
    for bad in ({"type": "float", "low": 1.0, "high": 1.0}, {"type": "uniform", "low": 0, "high": 1},
                {"type": "categorical", "choices": []}, 3):
        with pytest.raises(ConfigError, match="params.a"):
            search_space({**base, "search_space": {"params.a": bad}})
    te = search_space({"name": "t", "model": "te"})  # seed 000's Ray Tune ranges
    assert te is not MODEL_DEFAULT_SPACES["te"] and te["params.lr"] == {"type": "float", "low": 1e-5, "high": 2e-4}
    assert (te["params.batch_size"]["low"], te["params.batch_size"]["high"]) == (8, 32)
    assert (te["params.hidden"]["low"], te["params.hidden"]["high"]) == (512, 1024)
    assert te["params.epochs"]["high"] == 10


def test_values_are_set_typed_and_baseline_only_inside_the_space():
    cfg = {"name": "x", "model": "ridge", "params": {"alpha": 30.0}}
    out = with_values(cfg, {"params.lr": 1e-05, "params.alpha": 2.0, "extra.depth": 3})
    assert out["params"] == {"alpha": 2.0, "lr": 1e-05} and isinstance(out["params"]["lr"], float)
    assert out["extra"] == {"depth": 3} and cfg["params"] == {"alpha": 30.0}  # the input is not modified
    assert baseline_values(cfg, SPACE) == {"params.alpha": 30.0}
    assert baseline_values({**cfg, "params": {"alpha": 5000.0}}, SPACE) is None
    assert baseline_values({**cfg, "params": {}}, SPACE) is None


def test_study_name_is_deterministic(tiny):
    wd, data, cfg_path = tiny
    ds = load_dataset(data)
    fold = read_folds(wd.folds, ds)
    cfg = load_config(cfg_path)
    name = study_name(cfg, SPACE, ds, fold, fast=False)
    assert name == study_name(load_config(cfg_path), SPACE, ds, fold, fast=False)
    assert name.startswith("rtiny-cv-")
    assert study_name(cfg, SPACE, ds, fold, fast=True) != name
    assert study_name(with_values(cfg, {"params.alpha": 1.0}), SPACE, ds, fold, fast=False) != name


def test_tune_resumes_leaves_the_experiment_alone_and_writes_a_runnable_config(tiny):
    wd, data, cfg_path = tiny
    ds = load_dataset(data)
    cfg = load_config(cfg_path)
    for k in range(3):
        run_fold(cfg, k, ds, wd, progress=False, no_wandb=True)
    exp_dir = wd.experiment("rtiny")
    before = tree_digest(exp_dir)
    metrics = read_json(exp_dir / "metrics.json")

    out = wd.root / "rtiny_tuned.yaml"
    res = tune(cfg, ds, wd, n_trials=5, seed=0, out=out, progress=False, no_wandb=True)
    assert len(res.study.trials) == 5
    assert {k: v for k, v in tree_digest(exp_dir).items() if not k.startswith("tune/")} == before
    # trial 0 is the config as written, and the objective is exactly run_fold's per-fold score
    base = res.baseline
    assert base is not None and base.number == 0 and base.params == {"params.alpha": 30.0}
    assert base.value == pytest.approx(metrics["fold_mean_pcc_mean"], abs=1e-4)
    assert base.user_attrs["fold_scores"] == pytest.approx(list(metrics["fold_mean_pcc"].values()), abs=1e-4)

    again = tune(cfg, ds, wd, n_trials=7, seed=1, out=out, progress=False, no_wandb=True)
    assert again.study.study_name == res.study.study_name
    assert [t.number for t in again.study.trials] == list(range(7))  # resumed: 7 in all, not 5 + 7
    assert sum(bool(t.user_attrs.get("baseline")) for t in again.study.trials) == 1

    tuned = load_config(out)
    best = again.best
    assert tuned["name"] == "rtiny_tuned" and tuned["params"]["alpha"] == best.params["params.alpha"]
    assert best.value == max(t.value for t in again.study.trials if t.state == TrialState.COMPLETE)
    run_fold(tuned, 0, ds, wd, progress=False, no_wandb=True)
    fold0 = read_json(wd.experiment("rtiny_tuned") / "fold_0" / "fold.json")
    assert fold0["mean_pcc"] == pytest.approx(best.user_attrs["fold_scores"][0], abs=1e-4)


@register_model("tune_test_iterative")
class IterativeRidge(RidgeModel):
    """Ridge that reports a made-up val score `quality` for 6 epochs, like an iterative model."""

    def fit(self, bank, train_ids, y_train, val_ids, y_val) -> None:
        for epoch in range(6):
            self.report(epoch, {"train_loss": 1.0, "val_mean_pcc": float(self.params["quality"])})
        super().fit(bank, train_ids, y_train, val_ids, y_val)


def test_bad_trials_are_pruned_on_their_epoch_reports(tiny):
    wd, data, _ = tiny
    ds = load_dataset(data)
    cfg = {"name": "iter", "model": "tune_test_iterative", "features": ["mfcc_stats"], "seed": 7,
           "params": {"alpha": 10.0}, "search_space": {"params.quality": {"type": "float", "low": 0, "high": 1}}}
    res = tune(cfg, ds, wd, n_trials=14, seed=3, out=wd.root / "iter_tuned.yaml", progress=False, no_wandb=True)
    pruned = [t for t in res.study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in res.study.trials if t.state == TrialState.COMPLETE]
    assert pruned, "no trial was pruned"
    for t in pruned:  # pruned inside fold 0, on an epoch report, below the median of earlier trials
        assert max(t.intermediate_values) < STEP_STRIDE
        earlier = [c.params["params.quality"] for c in complete if c.number < t.number]
        assert t.params["params.quality"] < np.median(earlier)
    for t in complete:  # reports of fold k live at k*STRIDE + epoch, fold ends at (k+1)*STRIDE - 1
        assert {0, 5, STEP_STRIDE - 1, STEP_STRIDE, 2 * STEP_STRIDE - 1} <= set(t.intermediate_values)


def check_shared_study(storage: str, n: int) -> set[str]:
    """The study in `storage` ran exactly trials 0..n-1, each once, to completion; returns the workers."""
    st = open_storage(storage)
    (name,) = optuna.study.get_all_study_names(st.storage)
    trials = optuna.load_study(study_name=name, storage=st.storage).trials
    assert [t.number for t in trials] == list(range(n))
    assert len({t._trial_id for t in trials}) == n
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [t.state for t in trials]
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    assert len({t.params["params.alpha"] for t in trials}) == n  # no point sampled twice
    return {t.user_attrs["worker"] for t in trials}


def test_two_threads_share_one_journal_study(tiny, monkeypatch):
    """Fast stand-in for the two-process test below: two tune() calls with their own storage objects."""
    wd, data, cfg_path = tiny
    ds = load_dataset(data)
    cfg = load_config(cfg_path)
    fit = RidgeModel.fit
    monkeypatch.setattr(RidgeModel, "fit", lambda self, *a: (time.sleep(0.05), fit(self, *a))[1])
    storage = str(wd.root / "threads.log")
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            tune(cfg, ds, wd, n_trials=8, storage=storage, seed=seed, out=wd.root / f"t{seed}.yaml",
                 progress=False, no_wandb=True)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    check_shared_study(storage, 8)


# Both workers finish their imports, then start together (a loaded machine can skew start-up by tens of
# seconds), and each fit is slowed down by 0.3 s so that their trials interleave.
WORKER = """
import sys, time
from pathlib import Path
from competition.features.registry import list_extractors
from competition.models import classical
from competition.models.registry import list_models
from competition.pipeline.tune import main
list_models(), list_extractors()
fit = classical.RidgeModel.fit
classical.RidgeModel.fit = lambda self, *a: (time.sleep(0.3), fit(self, *a))[1]
go = Path(sys.argv[1])
(go.parent / f"ready-{sys.argv[2]}").touch()
while not go.exists():
    time.sleep(0.05)
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_worker_processes_share_one_study_without_losing_or_duplicating_trials(tmp_path, kind):
    wd, data, cfg_path = make_workdir(tmp_path)
    storage = str(tmp_path / ("study.db" if kind == "sqlite" else "study.log"))
    go = tmp_path / "go"
    n = 10
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(go), str(seed), str(cfg_path), "--trials", str(n),
                               "--storage", storage, "--data", str(data), "--workdir", str(wd.root), "--jobs", "1",
                               "--seed", str(seed), "--no-wandb", "--out", str(tmp_path / f"tuned{seed}.yaml")],
                              cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for seed in (1, 2)]
    deadline = time.monotonic() + 240
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs]
        time.sleep(0.1)
    go.touch()
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    workers = check_shared_study(storage, n)
    assert len(workers) == 2, f"one worker ran every trial: {workers}"
