import numpy as np
import pytest
from scipy.stats import pearsonr

from competition.metrics import (ConstantPredictionWarning, ccc_per_column, mean_pcc,
                                 pcc_per_column, score_report)


def test_mean_pcc_equals_scipy_per_emotion_mean():
    rng = np.random.default_rng(0)
    y = rng.random((200, 7))
    p = y + rng.normal(0, 0.5, y.shape)
    official = np.mean([pearsonr(p[:, i], y[:, i])[0] for i in range(7)])
    assert mean_pcc(p, y) == pytest.approx(official, abs=1e-12)


def test_constant_prediction_scores_zero_with_warning_not_nan():
    y = np.random.default_rng(1).random((50, 3))
    p = np.ones_like(y) * 0.5
    with pytest.warns(ConstantPredictionWarning):
        r = pcc_per_column(p, y)
    assert np.all(r == 0.0) and not np.isnan(r).any()


def test_ccc_matches_definition_and_penalises_bias():
    rng = np.random.default_rng(2)
    y = rng.random((300, 2))
    assert ccc_per_column(y, y) == pytest.approx([1, 1])
    biased = ccc_per_column(y + 0.5, y)
    assert np.all(biased < 0.6) and pcc_per_column(y + 0.5, y) == pytest.approx([1, 1])
    p = rng.random((300, 2))
    mp, my = p.mean(0), y.mean(0)
    expect = 2 * ((p - mp) * (y - my)).mean(0) / (p.var(0) + y.var(0) + (mp - my) ** 2)
    assert ccc_per_column(p, y) == pytest.approx(expect)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        pcc_per_column(np.zeros((3, 2)), np.zeros((3, 3)))


def test_score_report_fields():
    y = np.random.default_rng(3).random((40, 2))
    r = score_report(y, y, ["a", "b"])
    assert r["mean_pcc"] == pytest.approx(1.0) and set(r["pcc"]) == {"a", "b"} and r["n"] == 40
