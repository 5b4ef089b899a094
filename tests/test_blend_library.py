"""The blend library loader, and `make_library`: finished experiments written through the real
experiment contract (Experiment.bind / write_fold / finalize), used by the other blend tests."""
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fake_dataset

from competition.data.contract import Dataset, load_dataset
from competition.pipeline.ensembling.library import load_library
from competition.pipeline.experiment import Experiment, ExperimentError
from competition.folds import fold_ids, make_folds, read_folds, write_folds
from competition.core.paths import Workdir


def make_library(root: Path, members: dict[str, float], n_train: int = 160, n_val: int = 40,
                 n_test: int = 12, n_folds: int = 4, seed: int = 0) -> tuple[Dataset, Workdir]:
    """A dataset plus one finished experiment per member: predictions = labels + N(0, sd) noise,
    squashed into [0, 1]; a negative sd means pure noise. Members sharing an sd share their noise
    (copies)."""
    data = write_fake_dataset(root / "data", n_train, n_val, n_test, seed=seed)
    ds = load_dataset(data)
    wd = Workdir.of(root / "work")
    write_folds(ds, make_folds(ds, n_folds, seed), wd.folds, {"scheme": "kfold", "n_folds": n_folds, "seed": seed})
    fold = read_folds(wd.folds, ds)
    y_all = ds.labels(ds.ids[: n_train + n_val])
    for j, (name, sd) in enumerate(members.items()):
        rng = np.random.default_rng(1000 + int(abs(sd) * 1e4))
        raw = rng.random(y_all.shape) if sd < 0 else y_all + rng.normal(0, sd, y_all.shape)
        pred_of = dict(zip(ds.ids, 1 / (1 + np.exp(-3 * (raw - 0.5)))))
        exp = Experiment(wd.oof, {"name": name, "model": "fake", "features": [], "params": {"sd": sd}})
        exp.bind(ds, fold)
        for k in range(n_folds):
            tr, va = fold_ids(fold, k)
            test_pred = np.random.default_rng(k + 10 * j).random((len(ds.test_ids), len(ds.emotions)))
            exp.write_fold(k, ds.emotions, tr, va, np.stack([pred_of[i] for i in va]), ds.labels(va),
                           ds.test_ids, test_pred, {})
        assert exp.finalize(ds, fold) is not None
    return ds, wd


def test_library_aligns_experiments_and_folds(tmp_path):
    ds, wd = make_library(tmp_path, {"good": 0.3, "bad": 0.8})
    lib = load_library(wd.oof, ds)
    assert lib.names == ["bad", "good"]
    assert lib.oof.shape == (2, len(ds.labelled_ids), 7) and lib.test.shape == (2, len(ds.test_ids), 7)
    fold = read_folds(wd.folds, ds)
    assert list(lib.fold) == [int(fold[i]) for i in lib.ids]
    assert lib.scores["good"] > lib.scores["bad"]


def test_incomplete_or_unknown_experiment_is_refused(tmp_path):
    ds, wd = make_library(tmp_path, {"good": 0.3, "bad": 0.8})
    (wd.oof / "good" / "metrics.json").unlink()
    (wd.oof / "good" / "fold_2" / "fold.json").unlink()
    with pytest.raises(ExperimentError, match=r"OOF incomplete .*fold_0, fold_1, fold_3.*run_all.sh good"):
        load_library(wd.oof, ds, ["good", "bad"])
    with pytest.raises(ExperimentError, match="no experiment 'nope'.*finished ones: \\['bad'\\]"):
        load_library(wd.oof, ds, ["nope"])


def test_oof_with_missing_rows_is_refused(tmp_path):
    ds, wd = make_library(tmp_path, {"good": 0.3, "bad": 0.8})
    p = wd.oof / "bad" / "oof.csv"
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:-3]))
    with pytest.raises(ExperimentError, match="covers .* clips"):
        load_library(wd.oof, ds)



def test_a_neural_experiment_finished_before_honest_oof_is_refused(tmp_path, monkeypatch):
    """Models that choose on validation data chose on their OOF fold before issue 24; their config hash now
    carries the inner-split selection, so a result whose recorded hash lacks it is refused, not blended."""
    import json

    import yaml

    from competition.models.registry import model_class
    from competition.pipeline.config import config_hash
    ds, wd = make_library(tmp_path, {"good": 0.3, "te_old": 0.5})
    exp = wd.oof / "te_old"
    cfg = {**yaml.safe_load((exp / "config.yaml").read_text()), "model": "te"}
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    with monkeypatch.context() as m:  # the hash as the code before issue 24 computed it
        m.setattr(model_class("te"), "selects_on_validation", False)
        old = config_hash(cfg)
    assert old != config_hash(cfg)
    metrics = json.loads((exp / "metrics.json").read_text())
    metrics.pop("selects_on_validation")  # not recorded before issue 24
    (exp / "metrics.json").write_text(json.dumps({**metrics, "config_hash": old}))
    with pytest.raises(ExperimentError, match="te_old was computed by an older version .* --force"):
        load_library(wd.oof, ds)
    assert load_library(wd.oof, ds, ["good"]).names == ["good"]
