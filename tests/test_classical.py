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


@pytest.mark.parametrize("name", ["ridge", "svr", "gbm"])
def test_round_trip_without_pickle(data, tmp_path, name):
    """Saved with skops and reloaded with no environment flag: the same predictions."""
    bank, ids, y = data
    m = build_model(name, {"max_iter": 10} if name == "gbm" else {}, 3)
    m.fit(bank, ids[:60], y[:60], ids[60:], y[60:])
    m.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]
    m2 = build_model(name, {}, 3)
    m2.load(tmp_path)
    assert np.array_equal(m2.predict(bank, ids), m.predict(bank, ids))


def test_checkpoint_with_a_foreign_type_is_refused(data, tmp_path):
    """A checkpoint naming a type our pipelines never hold is refused before anything is loaded."""
    import skops.io

    bank, ids, y = data
    m = build_model("ridge", {}, 3)
    m.fit(bank, ids[:60], y[:60], ids[60:], y[60:])
    m.pipeline.steps.append(("evil", Evil()))
    m.save(tmp_path)
    assert "test_classical.Evil" in skops.io.get_untrusted_types(file=tmp_path / "model.skops")
    with pytest.raises(PermissionError, match="Evil"):
        build_model("ridge", {}, 3).load(tmp_path)


class Evil:
    """Stands for any class an attacker's checkpoint could name."""

    def fit(self, x, y=None):
        return self

    def predict(self, x):
        return x


@pytest.mark.parametrize("name, params, message", [
    ("ridge", {"alhpa": 3}, "unknown param 'alhpa' for model 'ridge' \\(did you mean 'alpha'\\?\\)"),
    ("ridge", {"alpha": "big"}, "param 'alpha' of model 'ridge' must be int or float, got str"),
    ("gbm", {"max_iter": 2.5}, "param 'max_iter' of model 'gbm' must be int, got float"),
    ("svr", {"C": None}, "param 'C' of model 'svr' must be int or float"),
])
def test_mistyped_params_are_errors(name, params, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, params, 3, source="configs/mine.yaml")
    build_model("svr", {"gamma": 0.1}, 3)  # a number or 'scale' / 'auto'
