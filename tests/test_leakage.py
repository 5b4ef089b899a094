"""Leakage guards. Fold outputs record which clips trained each fold model; oof.csv holds only held-out
predictions (and finalize refuses a fold whose training set overlaps its held-out clips); Test rows never
enter folds, model fitting, tuning or blend selection; and a planted leak (one subject's clips on both
sides of a split) shows up as an inflated score on the synthetic dataset, which grouping removes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from competition.pipeline.config import load_config
from competition.data.contract import load_dataset
from competition.pipeline.experiment import Experiment, ExperimentError, read_predictions
from competition.folds import FoldsError, fold_ids, make_folds, read_folds, write_folds
from competition.core.io import read_json
from competition.core.metrics import mean_pcc
from competition.models.classical import RidgeModel
from competition.models.registry import register_model
from competition.core.paths import Workdir
from competition.pipeline.run_fold import run_fold
from competition.submission import make as make_submission
from tests.tiny_data import write_audio_dataset, write_config

FITS: list[tuple[list[str], list[str]]] = []  # (train ids, val ids) of every fit of the spy model


@register_model("leak_spy")
class SpyRidge(RidgeModel):
    """Ridge that records the clips each fit was given."""

    def fit(self, bank, train_ids, y_train, val_ids, y_val) -> None:
        FITS.append((list(train_ids), list(val_ids)))
        super().fit(bank, train_ids, y_train, val_ids, y_val)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A tiny dataset, 4 folds and every fold of the spy experiment."""
    tmp = tmp_path_factory.mktemp("leak")
    data = write_audio_dataset(tmp / "data", n_train=24, n_val=8, n_test=8)
    ds = load_dataset(data)
    wd = Workdir(tmp / "w")
    write_folds(ds, make_folds(ds, n_folds=4, seed=0), wd.folds, {"n_folds": 4, "seed": 0})
    cfg = load_config(write_config(tmp / "spy.yaml", "spy", model="leak_spy",
                                   search_space={"params.alpha": {"type": "float", "low": 0.1, "high": 100.0,
                                                                  "log": True}}))
    FITS.clear()
    for k in range(4):
        run_fold(cfg, k, ds, wd, jobs=1, progress=False, no_wandb=True)
    return {"tmp": tmp, "data": data, "ds": ds, "wd": wd, "cfg": cfg, "fits": list(FITS)}


def test_folds_records_training_clips_and_never_trains_on_held_out_or_test(setup):
    ds, exp_dir = setup["ds"], setup["wd"].experiment("spy")
    fold = read_folds(setup["wd"].folds, ds)
    assert (fold[ds.test_ids] == -1).all() and (fold[ds.labelled_ids] >= 0).all()
    assert len(setup["fits"]) == 4
    for k, (fit_train, fit_val) in enumerate(setup["fits"]):
        recorded = (exp_dir / f"fold_{k}" / "train_ids.txt").read_text().split()
        held_out = list(read_predictions(exp_dir / f"fold_{k}" / "val.csv", ds.emotions).index)
        assert recorded == fit_train  # the record is what the model was really given
        assert set(held_out) == set(fold.index[fold == k])
        assert fit_val == []  # a model that chooses nothing on validation data is given none
        assert not set(recorded) & set(held_out)
        assert not (set(recorded) | set(held_out)) & set(ds.test_ids)


def test_oof_rows_are_the_held_out_predictions_of_their_fold(setup):
    ds, exp_dir = setup["ds"], setup["wd"].experiment("spy")
    fold = read_folds(setup["wd"].folds, ds)
    oof = read_predictions(exp_dir / "oof.csv", ds.emotions)
    assert sorted(oof.index) == sorted(ds.labelled_ids)
    for clip, row in oof.iterrows():
        k = fold[clip]
        val = read_predictions(exp_dir / f"fold_{k}" / "val.csv", ds.emotions)
        assert np.array_equal(row.to_numpy(), val.loc[clip].to_numpy())
        assert clip not in (exp_dir / f"fold_{k}" / "train_ids.txt").read_text().split()


def test_finalize_refuses_a_fold_that_trained_on_its_held_out_clips(setup, tmp_path):
    ds, wd = setup["ds"], setup["wd"]
    fold = read_folds(wd.folds, ds)
    exp = Experiment(tmp_path, setup["cfg"])
    shutil.copytree(wd.experiment("spy"), exp.dir)
    (exp.dir / "oof.csv").unlink()
    (exp.dir / "metrics.json").unlink()
    train_file = exp.dir / "fold_2" / "train_ids.txt"
    leaked = list(fold.index[fold == 2])[0]
    train_file.write_text(train_file.read_text() + leaked + "\n")
    with pytest.raises(ExperimentError, match=r"fold 2: 1 held-out clip\(s\) were also in its training set"):
        exp.finalize(ds, fold)
    assert not (exp.dir / "oof.csv").exists()


def test_a_fold_file_giving_test_clips_a_fold_is_refused(setup, tmp_path):
    ds = setup["ds"]
    bad = make_folds(ds, n_folds=4, seed=0)
    bad.loc[bad.File_ID == ds.test_ids[0], "fold"] = 1
    write_folds(ds, bad, tmp_path / "folds.csv", {})
    with pytest.raises(FoldsError, match="Test clips were given a fold"):
        read_folds(tmp_path / "folds.csv", ds)
    train, val = fold_ids(pd.Series(bad.fold.to_numpy(), index=bad.File_ID), 1)
    assert ds.test_ids[0] in val  # fold_ids alone would use it: read_folds is the guard


def test_tuning_never_fits_on_test_clips(setup, tmp_path):
    from competition.pipeline.tune import tune
    ds, wd = setup["ds"], setup["wd"]
    FITS.clear()
    tune(setup["cfg"], ds, wd, n_trials=2, storage=str(tmp_path / "study.db"), seed=0,
         out=tmp_path / "tuned.yaml", progress=False, no_wandb=True)
    assert len(FITS) == 2 * 4
    test = set(ds.test_ids)
    for train, val in FITS:
        assert not (set(train) | set(val)) & test
        assert not set(train) & set(val)


def _blend(data: Path, wd: Path, name: str) -> dict:
    assert make_submission(["--blend", "best", "--name", name, "--data", str(data), "--workdir", str(wd),
                            "--no-wandb"]) == 0
    return read_json(wd / "submissions" / f"{name}.json")


def test_blend_selection_does_not_look_at_test_predictions(setup, tmp_path):
    ds, wd = setup["ds"], setup["wd"]
    w = tmp_path / "w"
    shutil.copytree(wd.root / "folds", w / "folds")
    shutil.copytree(wd.experiment("spy"), w / "oof" / "spy")
    other = w / "oof" / "noisy"  # a second member: the spy's OOF plus noise
    shutil.copytree(w / "oof" / "spy", other)
    rng = np.random.default_rng(0)
    df = pd.read_csv(other / "oof.csv", dtype={"File_ID": str})
    df[ds.emotions] = np.clip(df[ds.emotions] + rng.normal(0, 0.2, (len(df), len(ds.emotions))), 0, 1)
    df.to_csv(other / "oof.csv", index=False, float_format="%.6f")
    m = read_json(other / "metrics.json")
    oof = read_predictions(other / "oof.csv", ds.emotions)
    m["oof_mean_pcc"] = mean_pcc(oof.to_numpy(), ds.labels(list(oof.index)))
    (other / "metrics.json").write_text(json.dumps(m))
    card_a = _blend(setup["data"], w, "a")
    for exp in ("spy", "noisy"):  # scramble every Test prediction
        f = w / "oof" / exp / "test.csv"
        df = pd.read_csv(f, dtype={"File_ID": str})
        df[ds.emotions] = rng.uniform(0, 1, (len(df), len(ds.emotions)))
        df.to_csv(f, index=False, float_format="%.6f")
    card_b = _blend(setup["data"], w, "b")
    keep = lambda c: {k: v for k, v in c.items() if k not in ("name", "submission", "zip", "created")}  # noqa: E731
    assert keep(card_a) == keep(card_b)
    sub_a = pd.read_csv(w / "submissions" / "a.csv")
    sub_b = pd.read_csv(w / "submissions" / "b.csv")
    assert not np.allclose(sub_a[ds.emotions], sub_b[ds.emotions])  # the Test values did change


@pytest.mark.slow
def test_planted_subject_leak_inflates_the_score_and_grouping_removes_it(tmp_path):
    """Synthetic data: a per-subject reporting bias plus a per-subject look (face size and place, room).
    Ungrouped folds put one subject's clips on both sides of a split, so an RBF SVR on face-box features
    recognises the subject and scores higher than with Subject-grouped folds, for every fold seed."""
    from competition.data.synth import generate
    from competition.data.subjects import main as subjects_main
    from competition.folds import main as folds_main
    data = generate(tmp_path / "data", n=180, seed=1, jobs=2, duration=(1.0, 1.5))
    ds = load_dataset(data)
    truth = pd.read_csv(data / "synth_truth.csv", dtype=str)
    cfg = load_config(write_config(tmp_path / "svr.yaml", "svr_pose", model="svr", features=("pose",)))
    subject = pd.Series(truth.Subject.to_numpy(), index=truth.File_ID.str.strip("[]"))
    scores: dict[str, list[float]] = {"plain": [], "grouped": []}
    for seed in range(3):
        for mode in scores:
            wd = Workdir(tmp_path / f"{mode}{seed}")
            extra = ["--groups", "none"]
            if mode == "grouped":
                subjects_main(["--data", str(data), "--workdir", str(wd.root), "--csv", str(data / "synth_truth.csv")])
                extra = ["--groups", "subjects"]
            folds_main(["--data", str(data), "--workdir", str(wd.root), "--seed", str(seed), *extra])
            fold = read_folds(wd.folds, ds)
            lab = fold[fold >= 0]
            split_subjects = lab.groupby(subject[lab.index]).nunique()
            assert (split_subjects > 1).any() if mode == "plain" else (split_subjects == 1).all()
            if seed or mode == "grouped":
                shutil.copytree(tmp_path / "plain0" / "features", wd.features, dirs_exist_ok=True)
            for k in range(5):
                run_fold(cfg, k, ds, wd, jobs=2, progress=False, no_wandb=True)
            scores[mode].append(read_json(wd.experiment("svr_pose") / "metrics.json")["oof_mean_pcc"])
    print(scores)
    assert min(scores["plain"]) > max(scores["grouped"]), scores


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """Synthetic stored features of 36 clips, 3 folds, and the same dataset with fold 1's labels
    replaced by 1 - y (which reverses every choice made by their PCC)."""
    from dataclasses import replace

    from synthetic_features import synthetic_bank
    from conftest import write_fake_dataset
    tmp = tmp_path_factory.mktemp("planted")
    bank, ids, _ = synthetic_bank(tmp / "features", n=36, seed=3)
    ds = load_dataset(write_fake_dataset(tmp / "data", n_train=30, n_val=6, n_test=0, media=False),
                      check_media=False)
    fold = pd.Series(make_folds(ds, n_folds=3, seed=0).fold.to_numpy(), index=ds.ids)
    table = ds.table.copy()
    held = fold.index[fold == 1]
    table.loc[held, ds.emotions] = 1.0 - table.loc[held, ds.emotions]
    return {"root": tmp / "features", "specs": bank.specs, "ds": ds, "other": replace(ds, table=table),
            "fold": fold, "held": set(held)}


def _model_names() -> list[str]:
    from competition.models.registry import list_models
    return [n for n in list_models() if n != "leak_spy"]


@pytest.mark.parametrize("name", _model_names())
def test_no_models_held_out_predictions_depend_on_the_held_out_labels(name, planted, monkeypatch):
    """fit_fold for every registered model: the clips (and so the labels) given to fit never include the
    held-out fold, and the held-out predictions (its OOF rows) are bit-identical when that fold's labels
    are replaced: early stopping, best-epoch and top-k selection and LR plateaus read a split of the
    training fold (folds.inner_split), never the fold whose predictions become the OOF."""
    from competition.models.registry import model_class
    from competition.pipeline.run_fold import fit_fold
    from test_models_zoo import params_for
    cls = model_class(name)
    seen: list[set[str]] = []
    real_fit = cls.fit

    def spy(self, bank, train_ids, y_train, val_ids, y_val):
        seen.append(set(train_ids) | set(val_ids))
        return real_fit(self, bank, train_ids, y_train, val_ids, y_val)

    monkeypatch.setattr(cls, "fit", spy)
    params = params_for(name) if name not in ("ridge", "svr", "gbm") else {"max_iter": 10} if name == "gbm" else {}
    params = {**params, "epochs": 3} if "epochs" in cls.param_defaults() else params
    cfg = {"name": f"leak_{name}", "model": name, "features": planted["specs"], "params": params, "seed": 0}
    preds = [fit_fold(cfg, 1, ds, planted["fold"], planted["root"], extract_features=False).val_pred
             for ds in (planted["ds"], planted["other"])]
    assert seen and not any(s & planted["held"] for s in seen)
    assert np.isfinite(preds[0]).all() and np.array_equal(preds[0], preds[1])
