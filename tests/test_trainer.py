import numpy as np
import pytest
import torch

from competition.features.registry import FeatureOutput
from competition.models.registry import build_model
from competition.features.batching import (ModalityInput, Standardiser, collate, even_grid, merge_features,
                                           resample, resolve_modalities)
from synthetic_features import SPECS, synthetic_bank

torch.set_num_threads(1)

FAST = {"modalities": {"frames": ["syn_face", "syn_pose"]}, "hidden": 8, "batch_size": 8, "progress": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_bank(tmp_path_factory.mktemp("features"), n=40, seed=5)


def fit(data, n_train=30, **params):
    bank, ids, y = data
    m = build_model("lstm_head", {**FAST, **params}, 7, seed=7)
    m.fit(bank, ids[:n_train], y[:n_train], ids[n_train:], y[n_train:])
    return m


# ----------------------------------------------------------------------------------------- batching
def test_resample_mean_averages_real_rows_and_holds_over_gaps():
    x = np.array([[0.0], [2.0], [100.0], [4.0]], np.float32)
    t = np.array([0.1, 0.3, 0.5, 2.9])
    mask = np.array([True, True, False, True])
    centres, width = even_grid([np.array([0.0, 3.0])], 3)  # cells [0,1), [1,2), [2,3)
    out, valid = resample(x, t, mask, centres, width, "mean")
    assert out[0, 0] == pytest.approx(1.0) and out[2, 0] == pytest.approx(4.0)
    assert not valid[1]  # 1.5 s is more than half a cell from any real row
    near, valid_n = resample(x, t, mask, centres, width, "nearest")
    assert near[0, 0] in (0.0, 2.0) and valid_n.all()


def test_merge_marks_missing_features_instead_of_pretending():
    face = FeatureOutput(np.ones((4, 3), np.float32), np.arange(4, dtype=np.float32), np.array([1, 1, 0, 1], bool))
    merged = merge_features([face, None], None, "mean", None, [3, 2])
    assert merged.x.shape == (4, 5) and not merged.mask.any() and not merged.x.any()
    vec = FeatureOutput(np.array([5.0, 6.0], np.float32))
    merged = merge_features([face, vec], None, "mean", None, [3, 2])
    np.testing.assert_array_equal(merged.mask, [True, True, False, True])
    np.testing.assert_array_equal(merged.x[0], [1, 1, 1, 5, 6])
    assert not merged.x[2].any()


def test_collate_pads_with_masked_zeros():
    a = {"m": ModalityInput(np.ones((2, 3), np.float32), np.array([True, False]))}
    b = {"m": ModalityInput(np.ones((5, 3), np.float32), np.ones(5, bool))}
    batch = collate([a, b])["m"]
    assert batch.x.shape == (2, 5, 3) and batch.lengths.tolist() == [2, 5]
    assert batch.mask[0].tolist() == [True, False, False, False, False]
    assert batch.present.tolist() == [True, True]


def test_resolve_modalities():
    assert resolve_modalities(None, ["a", {"name": "b"}]) == {"a": [0], "b": [1]}
    assert resolve_modalities({"v": ["b", "a"]}, ["a", "b"]) == {"v": [1, 0]}
    with pytest.raises(ValueError, match="matches 2"):
        resolve_modalities({"v": "a"}, ["a", {"name": "a", "params": {"k": 1}}])
    with pytest.raises(ValueError, match="matches 0"):
        resolve_modalities({"v": "zzz"}, ["a"])


def test_standardiser_uses_real_rows_only():
    clips = [{"m": ModalityInput(np.array([[1.0], [3.0], [1000.0]], np.float32), np.array([1, 1, 0], bool))}]
    st = Standardiser.fit(clips, ["m"])
    assert st.mean["m"][0] == pytest.approx(2.0) and st.std["m"][0] == pytest.approx(1.0)
    out = st.apply(clips[0])["m"]
    np.testing.assert_allclose(out.x[:, 0], [-1.0, 1.0, 0.0])


# ----------------------------------------------------------------------------------------- trainer
def test_reports_every_epoch_and_the_reporter_can_stop_training(data):
    bank, ids, y = data
    m = build_model("lstm_head", {**FAST, "epochs": 5}, 7)
    seen = []

    def reporter(epoch, row):
        seen.append(row)
        if epoch == 2:
            raise KeyboardInterrupt("pruned")

    m.reporter = reporter
    with pytest.raises(KeyboardInterrupt):
        m.fit(bank, ids[:30], y[:30], ids[30:], y[30:])
    assert [r["epoch"] for r in seen] == [0, 1, 2]
    assert all({"train_loss", "val_mean_pcc", "val_loss", "lr"} <= set(r) for r in seen)


def test_training_learns_and_keeps_the_best_epoch(data):
    bank, ids, y = data
    m = fit(data, epochs=15, lr=3e-3)
    scores = [h["val_mean_pcc"] for h in m.history]
    assert max(scores) > 0.3
    pred = m.predict(bank, ids[30:])
    from competition.core.metrics import mean_pcc
    assert mean_pcc(pred, y[30:]) == pytest.approx(max(scores), abs=1e-4)  # within min_delta


def test_early_stopping_and_lr_halving(data):
    m = fit(data, epochs=40, lr=1e-6, patience=3, lr_patience=0)
    assert len(m.history) < 40                       # next to nothing changes at this lr: stops early
    lrs = [h["lr"] for h in m.history]
    assert lrs[-1] < lrs[0] and all(b in (a, a * 0.5) for a, b in zip(lrs, lrs[1:]))


def test_same_seed_same_model(data):
    bank, ids, _ = data
    a, b = fit(data, epochs=2), fit(data, epochs=2)
    np.testing.assert_array_equal(a.predict(bank, ids), b.predict(bank, ids))


def test_label_smoothing_and_pseudo_labels_run(data):
    bank, ids, y = data
    m = build_model("lstm_head", {**FAST, "epochs": 2, "label_smoothing": 0.1, "pseudo_label": 1}, 7)
    m.unlabelled_ids = ids[34:]
    m.fit(bank, ids[:26], y[:26], ids[26:34], y[26:34])
    assert len(m.history) == 4  # two epochs, then two more on labelled + pseudo-labelled clips
    assert m.predict(bank, ids).shape == (40, 7)


def test_staged_training_freezes_the_branches(data):
    bank, ids, y = data
    m = build_model("dual_branch", {"modalities": {"visual": "syn_crops", "audio": "syn_audio"}, "image_size": 16,
                                    "spatial_dim": 8, "temporal_dim": 8, "tcn_layers": 2, "grid_len": 6,
                                    "epochs": 1, "staged": True, "progress": False}, 7)
    m.fit(bank, ids[:30], y[:30], ids[30:], y[30:])
    assert [h["stage"] for h in m.history] == [0.0, 1.0, 2.0]
    assert not any(p.requires_grad for p in m.module.frames.parameters())
    assert all(p.requires_grad for p in m.module.fuse.parameters())


def test_unknown_params_and_missing_grid_are_errors(data):
    bank, ids, y = data
    with pytest.raises(ValueError, match="unknown param"):
        build_model("lstm_head", {"hiden": 8}, 7)
    m = build_model("te", {"modalities": {"a": "syn_face", "b": "syn_audio"}, "progress": False}, 7)
    with pytest.raises(ValueError, match="grid_len"):
        m.fit(bank, ids[:30], y[:30], ids[30:], y[30:])


def test_synthetic_specs_cover_every_feature_kind():
    assert {"syn_face", "syn_audio", "syn_crops", "syn_vec"} <= set(SPECS)


def test_run_fold_end_to_end_with_a_sequence_model(tmp_path):
    """All folds of a TE on real MFCC sequences of a tiny audio dataset, through run_fold: the same
    experiment directory as the classical models, and a fold checkpoint that predicts Test again."""
    import pandas as pd

    from competition.data.contract import load_dataset
    from competition.folds import make_folds, write_folds
    from competition.features.bank import FeatureBank
    from competition.core.paths import Workdir
    from competition.pipeline.run_fold import run_fold
    from tiny_data import write_audio_dataset

    ds = load_dataset(write_audio_dataset(tmp_path / "data", n_train=18, n_val=6, n_test=5))
    wd = Workdir.of(tmp_path / "work")
    write_folds(ds, make_folds(ds, n_folds=3, seed=0), wd.folds, {"n_folds": 3})
    features = [{"name": "mfcc", "params": {"n_mfcc": 20, "stack": 4}}]
    cfg = {"name": "te_tiny", "model": "te", "features": features, "seed": 3,
           "params": {"hidden": 8, "heads": 2, "layers": 1, "epochs": 2, "progress": False}}
    metrics = None
    for k in range(3):
        metrics = run_fold(cfg, k, ds, wd, progress=False, no_wandb=True)
    assert metrics is not None and np.isfinite(metrics["oof_mean_pcc"])
    exp = wd.oof / "te_tiny"
    assert len(pd.read_csv(exp / "oof.csv")) == 24 and len(pd.read_csv(exp / "test.csv")) == 5
    assert all(len(metrics["folds"][str(k)]["seconds"]) >= 3 for k in range(3))
    again = build_model("te", cfg["params"], 7)
    again.load(exp / "fold_0")
    fold_test = pd.read_csv(exp / "fold_0" / "test.csv").iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(again.predict(FeatureBank(wd.features, features), ds.test_ids), fold_test,
                               atol=1e-4)
