"""W&B tracking: fold and tune runs are logged offline (config, per-epoch rows, final scores, timings) and
read back from the run directory; --no-wandb / WANDB_MODE=disabled log nothing; a failing wandb never
breaks a run."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

from competition.pipeline import tracking
from competition.data.contract import Dataset, load_dataset
from competition.folds import make_folds, write_folds
from competition.core.io import read_json
from competition.core.paths import Workdir
from competition.pipeline.run_fold import run_fold
from competition.pipeline.tracking import Run, TrackingWarning
from wandb_reader import LoggedRun, read_offline_run
from competition.pipeline.tune import tune
from tests.tiny_data import write_audio_dataset

RIDGE = {"name": "rtrack", "model": "ridge", "features": ["mfcc_stats"], "params": {"alpha": 10.0}, "seed": 7,
         "search_space": {"params.alpha": {"type": "float", "low": 0.1, "high": 100.0, "log": True}}}
TE = {"name": "tetrack", "model": "te", "features": ["mfcc"], "seed": 7,
      "params": {"hidden": 16, "heads": 2, "layers": 1, "epochs": 2, "batch_size": 8, "max_len": 8,
                 "progress": False, "amp": False}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Workdir, Path]:
    root = tmp_path_factory.mktemp("track")
    data = write_audio_dataset(root / "data", n_train=24, n_val=8, n_test=4, seconds=1.0)
    return workdir_with_folds(root, data)[0], data


def workdir_with_folds(root: Path, data: Path) -> tuple[Workdir, Dataset]:
    """A fresh work directory with 2 folds of the tiny dataset."""
    wd, ds = Workdir.of(root), load_dataset(data)
    write_folds(ds, make_folds(ds, n_folds=2, seed=0), wd.folds, {"n_folds": 2})
    return wd, ds


def offline_runs(root: Path) -> list[Path]:
    return sorted((root / "wandb").glob("offline-run-*"))


def _read_if_started(run_dir: Path) -> LoggedRun:
    try:
        return read_offline_run(run_dir)
    except FileNotFoundError:  # the .wandb file is not created yet
        return LoggedRun()


def finished_run_named(root: Path, name: str, timeout: float = 60.0) -> LoggedRun:
    """The one offline run called `name`, once wandb has written it out (the run record, like the exit
    record, can land on disk after finish() returns when the machine is busy)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in map(_read_if_started, offline_runs(root)) if r.name == name]
        if len(runs) == 1 and runs[0].complete or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(runs) == 1, f"{len(runs)} offline runs named {name!r} under {root} after {timeout} s"
    assert runs[0].complete, f"run {name!r}: no exit record after {timeout} s"
    return runs[0]


def test_fold_run_logs_config_epochs_scores_and_timings(tiny, monkeypatch):
    wd, data = tiny
    monkeypatch.setenv("WANDB_MODE", "offline")
    ds = load_dataset(data)
    run_fold(TE, 0, ds, wd, jobs=1, progress=False)
    logged = finished_run_named(wd.root, "tetrack-f0")
    fold = read_json(wd.experiment("tetrack") / "fold_0" / "fold.json")
    assert (logged.group, logged.job_type) == ("tetrack", "fold")
    assert logged.config["model"] == "te" and logged.config["fold"] == 0
    assert logged.config["params"]["hidden"] == 16
    epochs = [r for r in logged.history if "epoch" in r]
    # the choosing fit's 2 epochs on the inner split, then the refit's (as many as it chose: 1 or 2)
    assert [r["epoch"] for r in epochs] == [row["epoch"] for row in fold["history"]]
    assert [r["epoch"] for r in epochs][:2] == [0, 1] and len(epochs) in (3, 4)
    assert all({"train_loss", "val_mean_pcc"} <= set(r) for r in epochs)
    assert logged.summary["val_mean_pcc"] == pytest.approx(fold["mean_pcc"])
    for emotion in ds.emotions:
        assert logged.summary[f"val_pcc/{emotion}"] == pytest.approx(fold["pcc"][emotion])
    assert logged.summary["seconds/total"] == pytest.approx(fold["seconds"]["total"])


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_wandb_and_disabled_mode_log_nothing(tmp_path, tiny, monkeypatch, how):
    _, data = tiny
    wd, ds = workdir_with_folds(tmp_path, data)
    monkeypatch.setenv("WANDB_MODE", "disabled" if how == "env" else "offline")
    run_fold(RIDGE, 0, ds, wd, jobs=1, progress=False, no_wandb=how == "flag")
    assert (wd.experiment("rtrack") / "fold_0" / "fold.json").exists()
    assert not (tmp_path / "wandb").exists()


def test_a_failing_wandb_never_breaks_a_run(tmp_path, tiny, monkeypatch):
    import wandb
    _, data = tiny
    wd, ds = workdir_with_folds(tmp_path, data)
    monkeypatch.setenv("WANDB_MODE", "offline")

    def broken_init(**kwargs):
        raise RuntimeError("no wandb today")

    monkeypatch.setattr(wandb, "init", broken_init)
    with pytest.warns(TrackingWarning, match="no wandb today"):
        run_fold(RIDGE, 0, ds, wd, jobs=1, progress=False)
    assert (wd.experiment("rtrack") / "fold_0" / "fold.json").exists()

    class FlakyRun:
        dir = str(tmp_path)
        logged: list[dict] = []

        def log(self, row):
            raise OSError("disk full")

        def finish(self, exit_code=0):
            raise AssertionError("finish must not be called on a run that failed")

    run = Run(FlakyRun())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log({"a": 1})
        run.log({"a": 2})  # tracking is off after the first failure: no second warning
        run.summary({"b": 1})
        run.finish()
    assert [str(w.message) for w in caught if w.category is TrackingWarning] == \
        ["wandb log failed (OSError: disk full); tracking off for this run"]
    assert run.dir is None  # inactive


def test_tune_run_logs_every_trial(tmp_path, tiny, monkeypatch):
    _, data = tiny
    wd, ds = workdir_with_folds(tmp_path, data)
    monkeypatch.setenv("WANDB_MODE", "offline")
    res = tune(RIDGE, ds, wd, n_trials=3, seed=0, fast=True, out=tmp_path / "t.yaml", progress=False)
    logged = finished_run_named(tmp_path, "rtrack-tune")
    assert len(offline_runs(tmp_path)) == 1
    assert (logged.group, logged.job_type) == ("rtrack", "tune")
    assert logged.config["study"] == res.study.study_name
    rows = [r for r in logged.history if "trial" in r]
    assert [r["trial"] for r in rows] == [0, 1, 2]
    assert [r["value"] for r in rows] == pytest.approx([t.value for t in res.study.trials])
    assert logged.summary["best_value"] == pytest.approx(res.best.value)


def test_mode_resolution(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert tracking.wandb_mode() == "offline"  # nothing leaves the machine unless asked
    monkeypatch.setenv("WANDB_MODE", "online")
    assert tracking.wandb_mode() == "online" and tracking.wandb_mode(no_wandb=True) == "disabled"
    assert tracking.start_run("g", "fold", "n", {}, ".", no_wandb=True).dir is None  # inactive
