"""competition.pipeline.tune: search spaces, resumable named studies, an objective identical to run_fold's scores,
pruning on epoch reports, the tuned config, and two worker processes sharing one journal study's budget."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from competition.pipeline.config import ConfigError, load_config
from competition.data.contract import load_dataset
from competition.folds import read_folds
from competition.core.io import read_json
from competition.models.classical import RidgeModel
from competition.models.registry import register_model
from competition.pipeline.run_fold import run_fold
from competition.pipeline.study_storage import DEFAULT_STORAGE, open_storage
from competition.pipeline.tune import STEP_STRIDE, baseline_values, search_space, study_name, tune, with_values
from tests.tune_workers import SPACE, make_workdir, start_workers, trials_logged, tune_argv


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("tune"))


def tree_digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_search_space_comes_from_the_config_and_is_validated():
    base = {"name": "x", "model": "te"}
    assert search_space({**base, "search_space": SPACE}) == SPACE
    with pytest.raises(ConfigError, match="'x' has no search_space"):  # no model has a default space
        search_space(base)
    for bad in ({"type": "float", "low": 1.0, "high": 1.0}, {"type": "uniform", "low": 0, "high": 1},
                {"type": "int", "low": 1}, {"type": "categorical", "choices": []}, 3):
        with pytest.raises(ConfigError, match="search_space.params.a"):
            search_space({**base, "search_space": {"params.a": bad}})


def test_values_are_set_typed_and_baseline_only_inside_the_space():
    cfg = {"name": "x", "model": "ridge", "params": {"alpha": 30.0}}
    values = {"params.lr": 1e-05, "params.alpha": 2.0, "extra.depth": 3, "params.loss": "yes", "params.on": True}
    out = with_values(cfg, values)  # through config.apply_override: each value keeps its type
    assert out["params"] == {"alpha": 2.0, "lr": 1e-05, "loss": "yes", "on": True}
    assert isinstance(out["params"]["lr"], float) and isinstance(out["params"]["loss"], str)
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
    assert res.storage_url == str(exp_dir / DEFAULT_STORAGE)  # a journal file beside the experiment
    assert {k: v for k, v in tree_digest(exp_dir).items() if not k.startswith("tune/")} == before
    # trial 0 is the config as written, and the objective is exactly run_fold's per-fold score
    base = res.baseline
    assert base is not None and base.number == 0 and base.params == {"params.alpha": 30.0}
    assert base.value == pytest.approx(metrics["fold_mean_pcc_mean"], abs=1e-4)
    assert base.user_attrs["fold_scores"] == pytest.approx(list(metrics["fold_mean_pcc"].values()), abs=1e-4)

    again = tune(cfg, ds, wd, n_trials=7, seed=1, out=out, progress=False, no_wandb=True)
    assert again.study.study_name == res.study.study_name
    assert [t.number for t in again.study.trials] == list(range(7))  # resumed: 7 in all, not 5 + 7
    assert {t.state for t in again.study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert sum(bool(t.user_attrs.get("baseline")) for t in again.study.trials) == 1
    assert len({t.params["params.alpha"] for t in again.study.trials}) == 7
    finished = tune(cfg, ds, wd, n_trials=7, seed=2, out=out, progress=False, no_wandb=True)
    assert len(finished.study.trials) == 7  # a rerun of a finished study runs no trial

    tuned = load_config(out)
    best = again.best
    assert tuned["name"] == "rtiny_tuned" and tuned["params"]["alpha"] == best.params["params.alpha"]
    assert f"trial {best.number}, CV mean PCC {best.value:.4f} over 3 fold(s)" in tuned["description"]
    assert best.value == max(t.value for t in again.study.trials if t.state == TrialState.COMPLETE)
    run_fold(tuned, 0, ds, wd, progress=False, no_wandb=True)
    fold0 = read_json(wd.experiment("rtiny_tuned") / "fold_0" / "fold.json")
    assert fold0["mean_pcc"] == pytest.approx(best.user_attrs["fold_scores"][0], abs=1e-4)


@register_model("tune_test_iterative")
class IterativeRidge(RidgeModel):
    """Ridge that reports a made-up val score `quality` for 6 epochs, like an iterative model."""
    default_params = {**RidgeModel.default_params, "quality": 0.0}

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


def test_two_worker_processes_share_one_journal_study(tiny, tmp_path):
    """Two processes on one journal file (Optuna's file lock) share the budget of 8 trials: each trial is run
    by one worker, both take part, and the study stops at 8. MaxTrialsCallback checks after each trial and
    counts RUNNING trials too, so it overshoots only when both workers end a trial within the few ms
    between a worker's check and its next trial's start; then the two last trials start together."""
    wd, data, cfg_path = tiny
    storage, n = str(tmp_path / "study.journal"), 8
    procs = start_workers(tmp_path, [tune_argv(cfg_path, data, wd.root, storage, n, seed, tmp_path / f"t{seed}.yaml",
                                               "--fast") for seed in (1, 2)])
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    (name,) = optuna.study.get_all_study_names(open_storage(storage).storage)
    trials = optuna.load_study(study_name=name, storage=open_storage(storage).storage).trials
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}, [t.state for t in trials]
    starts = sorted(t.datetime_start for t in trials)
    assert len(trials) == n or (len(trials) == n + 1 and (starts[-1] - starts[-2]).total_seconds() < 0.5), starts
    ran = [trials_logged(out) for out in outs]
    assert all(ran) and not ran[0] & ran[1], ran  # both worked, never on the same trial
    assert ran[0] | ran[1] == {t.number for t in trials}
    assert len({t.params["params.alpha"] for t in trials}) == len(trials)


def test_the_tuned_config_goes_to_the_work_directory_and_is_found_there_by_name(tiny, tmp_path):
    from competition.core.paths import CONFIG_DIR
    from competition.pipeline.run_fold import main as run_fold_main
    from competition.pipeline.tune import main
    wd, data, cfg_path = tiny
    common = ["--data", str(data), "--workdir", str(wd.root), "--no-wandb", "-q"]
    assert main([str(cfg_path), "--trials", "1", "--fast", "--storage", str(tmp_path / "s.journal"), *common]) == 0
    assert (wd.tuned / "rtiny_tuned.yaml").exists() and not (CONFIG_DIR / "rtiny_tuned.yaml").exists()
    assert load_config("rtiny_tuned", tuned=wd.tuned)["name"] == "rtiny_tuned"
    with pytest.raises(ConfigError, match="no config 'rtiny_tuned'"):
        load_config("rtiny_tuned")  # not in configs/: only the work directory that tuned it has it
    assert run_fold_main(["--fold", "0", "--exp", "rtiny_tuned", "--force", *common]) == 0
