import numpy as np

from competition.ensembling.caruana import caruana_select
from competition.metrics import mean_pcc


def test_planted_library_picks_the_signal_models():
    rng = np.random.default_rng(0)
    y = rng.random((400, 3))
    strong = y + rng.normal(0, 0.4, y.shape)
    other = y + rng.normal(0, 0.6, y.shape)      # independent errors: blending with strong helps
    noise = [rng.random(y.shape) for _ in range(4)]
    names = ["strong", "strong_copy", "other", *[f"noise{i}" for i in range(4)]]
    preds = np.stack([strong, strong.copy(), other, *noise])
    sel = caruana_select(names, preds, y, mean_pcc)
    assert not any(n.startswith("noise") for n in sel.weights)
    assert "other" in sel.weights
    assert sel.steps[0].member in ("strong", "strong_copy")
    assert sel.score > mean_pcc(strong, y)
    assert abs(sum(sel.weights.values()) - 1) < 1e-9
    blended = sel.blend(names, preds)
    assert np.isclose(mean_pcc(blended, y), sel.score)
    assert "+ other" in sel.table()


def test_single_model_library():
    y = np.random.default_rng(1).random((50, 2))
    sel = caruana_select(["only"], y[None] + 0.1, y, mean_pcc)
    assert sel.weights == {"only": 1.0}
