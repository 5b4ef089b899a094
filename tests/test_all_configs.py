"""Every shipped experiment config runs all its folds end to end on a tiny embedded dataset, with the real
extractors it names, and leaves a complete experiment directory (sequence models at a tiny size)."""
import json

import numpy as np
import pandas as pd
import pytest

from competition.config import CONFIG_DIR, load_config
from competition.data.contract import load_dataset
from competition.data.synth import generate
from competition.folds import make_folds, write_folds
from competition.metrics import mean_pcc
from competition.models.registry import _MODELS, list_models
from competition.paths import Workdir
from competition.training.run_fold import run_fold
from competition.training.trainer import TorchSequenceModel

CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
TINY = ["params.epochs=2", "params.patience=2", "params.progress=false", "params.amp=false"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("allcfg")
    data = generate(root / "data", n=20, seed=5, jobs=2, duration=(2.0, 2.5))
    ds = load_dataset(data)
    wd = Workdir.of(root / "work")
    write_folds(ds, make_folds(ds, n_folds=2, seed=0), wd.folds, {"n_folds": 2})
    return ds, wd


@pytest.mark.parametrize("name", CONFIGS)
def test_config_runs_every_fold(tiny, name):
    ds, wd = tiny
    cfg = load_config(name)
    assert cfg["model"] in list_models()
    neural = issubclass(_MODELS[cfg["model"]], TorchSequenceModel)
    cfg = load_config(name, TINY if neural else [])
    metrics = None
    for k in range(2):
        metrics = run_fold(cfg, k, ds, wd, jobs=2, progress=False, no_wandb=True)
    assert metrics is not None, f"{name}: experiment not finalised after its last fold"
    exp = wd.experiment(cfg["name"])
    oof = pd.read_csv(exp / "oof.csv", dtype={"File_ID": str})
    test = pd.read_csv(exp / "test.csv", dtype={"File_ID": str})
    assert len(oof) == len(ds.labelled_ids) and len(test) == len(ds.test_ids)
    values = oof[ds.emotions].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    ids = oof.File_ID.str.strip("[]")
    assert metrics["oof_mean_pcc"] == pytest.approx(mean_pcc(values, ds.labels(list(ids))), abs=1e-9)
    assert json.loads((exp / "metrics.json").read_text())["experiment"] == cfg["name"]
