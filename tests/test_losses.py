import numpy as np
import pytest
import torch

from competition.metrics import ccc_per_column, pcc_per_column
from competition.training.losses import (build_loss, ccc_loss, mse_loss, parse_loss_spec, pcc_loss,
                                         smooth_labels)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    y = rng.random((32, 7))
    p = 0.5 * y + 0.5 * rng.random((32, 7))
    return torch.tensor(p, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)


def test_losses_match_the_metrics(pair):
    p, y = pair
    assert float(mse_loss(p, y)) == pytest.approx(float(((p - y) ** 2).mean()))
    assert float(pcc_loss(p, y)) == pytest.approx(1 - pcc_per_column(p.numpy(), y.numpy()).mean(), abs=1e-6)
    assert float(ccc_loss(p, y)) == pytest.approx(1 - ccc_per_column(p.numpy(), y.numpy()).mean(), abs=1e-6)


def test_perfect_prediction_scores_zero_loss(pair):
    _, y = pair
    for fn in (mse_loss, pcc_loss, ccc_loss):
        assert float(fn(y, y)) == pytest.approx(0.0, abs=1e-6)
    # PCC ignores scale and shift, CCC does not
    assert float(pcc_loss(0.5 * y + 0.2, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(ccc_loss(0.5 * y + 0.2, y)) > 0.05


def test_zero_weight_excludes_a_sample(pair):
    p, y = pair
    w = torch.ones(len(p), dtype=torch.float64)
    w[-4:] = 0
    for fn in (mse_loss, pcc_loss, ccc_loss):
        assert float(fn(p, y, w)) == pytest.approx(float(fn(p[:-4], y[:-4])), abs=1e-9)


def test_weighted_sums_and_specs(pair):
    p, y = pair
    assert parse_loss_spec("mse+pcc") == {"mse": 1.0, "pcc": 1.0}
    both = build_loss({"mse": 0.5, "ccc": 2.0})(p, y)
    assert float(both) == pytest.approx(0.5 * float(mse_loss(p, y)) + 2.0 * float(ccc_loss(p, y)))
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("mae")


def test_correlation_losses_have_finite_gradients_on_constant_predictions():
    p = torch.full((8, 7), 0.5, requires_grad=True)
    y = torch.rand(8, 7)
    (pcc_loss(p, y) + ccc_loss(p, y)).backward()
    assert torch.isfinite(p.grad).all()


def test_label_smoothing_shrinks_towards_the_mean():
    y = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], np.float32)
    s = smooth_labels(y, 0.2)
    np.testing.assert_allclose(s, 0.8 * y + 0.2 * y.mean(0))
    assert np.allclose(s.mean(0), y.mean(0))
    with pytest.raises(ValueError):
        smooth_labels(y, 1.0)
