import numpy as np
import pytest

from competition.models.registry import build_model


class ArrayBank:
    def __init__(self, x):
        self.x = x

    def pooled(self, ids):
        return self.x[ids]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6))
    y = np.clip(0.5 + 0.15 * x[:, :3] + rng.normal(0, 0.05, (80, 3)), 0, 1)
    x[3, 1] = x[50, 4] = x[70, 1] = np.nan   # failed extraction: imputed with a missing indicator
    return ArrayBank(x), np.arange(80), y


@pytest.mark.parametrize("name", ["ridge", "svr", "gbm"])
def test_fits_signal_and_predicts_in_range(data, name):
    bank, ids, y = data
    m = build_model(name, {}, 3)
    m.fit(bank, ids[:60], y[:60], ids[60:], y[60:])
    p = m.predict(bank, ids[60:])
    assert p.shape == (20, 3) and (p >= 0).all() and (p <= 1).all() and np.isfinite(p).all()
    assert np.corrcoef(p[:, 0], y[60:, 0])[0, 1] > 0.5


def test_ridge_round_trip_without_pickle(data, tmp_path):
    bank, ids, y = data
    m = build_model("ridge", {"alpha": 1.0}, 3)
    m.fit(bank, ids[:60], y[:60], ids[60:], y[60:])
    m.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["ridge.npz"]
    m2 = build_model("ridge", {"alpha": 1.0}, 3)
    m2.load(tmp_path)
    assert np.allclose(m2.predict(bank, ids), m.predict(bank, ids), atol=1e-12)


def test_pickled_checkpoints_need_explicit_trust(data, tmp_path, monkeypatch):
    bank, ids, y = data
    m = build_model("gbm", {"max_iter": 10}, 3)
    m.fit(bank, ids[:60], y[:60], ids[60:], y[60:])
    m.save(tmp_path)
    monkeypatch.delenv("ERI_TRUST_PICKLE", raising=False)
    with pytest.raises(PermissionError, match="ERI_TRUST_PICKLE"):
        build_model("gbm", {}, 3).load(tmp_path)
    monkeypatch.setenv("ERI_TRUST_PICKLE", "1")
    m2 = build_model("gbm", {}, 3)
    m2.load(tmp_path)
    assert np.allclose(m2.predict(bank, ids), m.predict(bank, ids))
