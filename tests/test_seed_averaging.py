"""Seed averaging (`seeds: [...]`): each fold trained once per seed, predictions averaged, every seed
kept; the blend library sees one experiment."""
import json

import numpy as np
import pandas as pd
import torch

from competition.data.contract import load_dataset
from competition.pipeline.ensembling.library import finished_experiments
from competition.folds import make_folds, write_folds
from competition.core.paths import Workdir
from competition.pipeline.run_fold import run_fold, seeds_of
from tiny_data import write_audio_dataset

torch.set_num_threads(1)
FEATURES = [{"name": "mfcc", "params": {"n_mfcc": 20, "stack": 4}}]
PARAMS = {"hidden": 8, "heads": 2, "layers": 1, "epochs": 2, "progress": False}


def run_all(cfg, ds, wd, n_folds=3):
    metrics = None
    for k in range(n_folds):
        metrics = run_fold(cfg, k, ds, wd, progress=False, no_wandb=True)
    return metrics


def values(path):
    return pd.read_csv(path, dtype={"File_ID": str}).set_index("File_ID").sort_index()


def test_seed_averaged_oof_is_the_mean_of_the_single_seed_oofs(tmp_path):
    ds = load_dataset(write_audio_dataset(tmp_path / "data", n_train=18, n_val=6, n_test=5))
    wd = Workdir.of(tmp_path / "work")
    write_folds(ds, make_folds(ds, n_folds=3, seed=0), wd.folds, {"n_folds": 3})
    cfg = {"name": "te_seeds", "model": "te", "features": FEATURES, "seeds": [0, 1], "params": PARAMS}
    assert seeds_of(cfg) == [0, 1] and seeds_of({"seed": 5}) == [5]
    metrics = run_all(cfg, ds, wd)
    exp = wd.oof / "te_seeds"
    one, two = values(exp / "seeds/0/oof.csv"), values(exp / "seeds/1/oof.csv")
    assert np.abs(one.to_numpy() - two.to_numpy()).max() > 1e-3          # the seeds differ
    np.testing.assert_allclose(values(exp / "oof.csv"), (one + two) / 2, atol=2e-6)
    np.testing.assert_allclose(values(exp / "test.csv"),
                               (values(exp / "seeds/0/test.csv") + values(exp / "seeds/1/test.csv")) / 2, atol=2e-6)
    card = json.loads((exp / "fold_1/fold.json").read_text())
    assert [card["seeds"][s]["seed"] for s in ("0", "1")] == [1, 2]      # seed s + fold k
    assert set(metrics["oof_mean_pcc_seeds"]) == {"0", "1"}
    assert finished_experiments(wd.oof) == ["te_seeds"]                  # one experiment for the blend

    # seed 1's share is what training with seed 1 alone gives
    alone = run_all({**cfg, "name": "te_seed1", "seeds": None, "seed": 1}, ds, wd)
    np.testing.assert_allclose(values(wd.oof / "te_seed1/oof.csv"), two, atol=2e-6)
    assert alone["oof_mean_pcc"] == metrics["oof_mean_pcc_seeds"]["1"]

    from competition.pipeline.predict import PredictBank, load_experiment, predict_experiment
    loaded_cfg, models = load_experiment(exp, len(ds.emotions))  # every fold's seeds reloaded
    again = predict_experiment(models, PredictBank(wd.features, loaded_cfg["features"], wd.features), ds.ids)
    np.testing.assert_allclose(again[[ds.ids.index(i) for i in ds.test_ids]],
                               pd.read_csv(exp / "test.csv").iloc[:, 1:].to_numpy(), atol=1e-4)
