import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import f1_score

from competition.core.metrics import (ConstantPredictionWarning, ccc_per_column, f1_per_class, macro_f1,
                                 mean_ccc, mean_pcc, pcc_per_column, score_report, score_report_classes)


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


# ------------------------------------------------------------------------------- CCC (Aff-Wild2 VA)
def _ccc_direct(p, y):
    """Lin's CCC written out with population moments, one column at a time."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    mx, my = p.sum() / len(p), y.sum() / len(y)
    vx, vy = ((p - mx) ** 2).sum() / len(p), ((y - my) ** 2).sum() / len(y)
    cov = ((p - mx) * (y - my)).sum() / len(p)
    return 2 * cov / (vx + vy + (mx - my) ** 2)


def test_ccc_hand_computed_exact_values_and_mean_over_two_columns():
    # column 0: mp=2, my=4, var_p=2/3, var_y=8/3, cov=4/3 -> (8/3) / (2/3 + 8/3 + 4) = 4/11
    # column 1: reversed order, same means and variances, cov=-2/3 -> -1
    p = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    y = np.array([[2.0, 3.0], [4.0, 2.0], [6.0, 1.0]])
    np.testing.assert_allclose(ccc_per_column(p, y), [4 / 11, -1.0], rtol=0, atol=1e-15)
    assert mean_ccc(p, y) == pytest.approx((4 / 11 - 1.0) / 2, abs=1e-15)
    # 1-D input is one column
    assert ccc_per_column(p[:, 0], y[:, 0]) == pytest.approx([4 / 11], abs=1e-15)


def test_ccc_matches_direct_formula_valence_arousal():
    rng = np.random.default_rng(4)
    y = rng.uniform(-1, 1, (1000, 2))                       # valence, arousal
    p = np.clip(0.6 * y + 0.1 + rng.normal(0, 0.3, y.shape), -1, 1)
    per = ccc_per_column(p, y)
    expect = [_ccc_direct(p[:, j], y[:, j]) for j in range(2)]
    np.testing.assert_allclose(per, expect, rtol=1e-12)
    assert mean_ccc(p, y) == pytest.approx(np.mean(expect), rel=1e-12)
    # CCC <= |PCC|, equal only without location/scale bias; symmetric in its arguments
    assert np.all(per <= np.abs(pcc_per_column(p, y)) + 1e-12)
    np.testing.assert_allclose(ccc_per_column(y, p), per, rtol=1e-12)


def test_ccc_uses_population_not_sample_variance():
    p, y = np.array([0.0, 1.0]), np.array([0.0, 2.0])
    # population: var_p=1/4, var_y=1, cov=1/2, (mp-my)^2=1/4 -> 1 / 1.5; ddof=1 would give 2 / 3.25
    assert ccc_per_column(p, y)[0] == pytest.approx(2 / 3, abs=1e-15)


def test_ccc_of_two_equal_constants_is_zero_not_nan():
    r = ccc_per_column(np.ones((5, 2)), np.ones((5, 2)))
    assert np.all(r == 0.0)


# ------------------------------------------------------------------------ macro-F1 (Aff-Wild2 EXPR)
def _sk_macro(y, p, k):
    return f1_score(y, p, average="macro", labels=list(range(k)), zero_division=0)


def _onehot(ids, k):
    return np.eye(k)[ids]


def test_macro_f1_equals_sklearn_with_an_absent_class():
    rng = np.random.default_rng(5)
    k, n = 8, 2000
    y = rng.choice([0, 1, 2, 3, 4, 6, 7], n, p=[.3, .05, .05, .05, .3, .15, .1])   # class 5 never true
    probs = rng.dirichlet(np.ones(k), n)
    probs[np.arange(n), y] += rng.random(n)                      # informative but imperfect
    probs[:, 5] = 0.0                                            # class 5 never predicted either
    probs /= probs.sum(1, keepdims=True)
    p = probs.argmax(1)
    assert 5 not in set(y) | set(p)
    expect = _sk_macro(y, p, k)
    # one-hot labels vs probabilities (the toolkit's layout)
    assert macro_f1(probs, _onehot(y, k)) == pytest.approx(expect, abs=1e-12)
    # 1-D ints on both sides, with and without n_classes; mixed layouts
    assert macro_f1(p, y, n_classes=k) == pytest.approx(expect, abs=1e-12)
    assert macro_f1(p, y) == pytest.approx(expect, abs=1e-12)    # max id 7 -> K = 8
    assert macro_f1(probs, y) == pytest.approx(expect, abs=1e-12)
    assert macro_f1(p, _onehot(y, k)) == pytest.approx(expect, abs=1e-12)
    # unnormalised scores (logits) give the same argmax
    assert macro_f1(np.log(probs + 1e-12) + 3.0, _onehot(y, k)) == pytest.approx(expect, abs=1e-12)
    # the absent class counts 0 in the mean over ALL K (not ignored)
    per = f1_per_class(probs, _onehot(y, k))
    assert per.shape == (k,) and per[5] == 0.0
    assert macro_f1(probs, _onehot(y, k)) == pytest.approx(per.sum() / 8)
    np.testing.assert_allclose(per, f1_score(y, p, average=None, labels=list(range(k)), zero_division=0))


def test_macro_f1_trailing_absent_class_needs_n_classes_for_1d():
    y = np.array([0, 1, 1, 2, 0])
    p = np.array([0, 1, 2, 2, 1])
    assert macro_f1(p, y, n_classes=4) == pytest.approx(_sk_macro(y, p, 4))
    assert macro_f1(p, y) == pytest.approx(_sk_macro(y, p, 3))     # inferred K = 3
    assert macro_f1(p, y, n_classes=4) == pytest.approx(macro_f1(p, y) * 3 / 4)


def test_macro_f1_perfect_and_all_one_class():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 8, 500)
    y[:8] = np.arange(8)
    assert macro_f1(_onehot(y, 8), _onehot(y, 8)) == 1.0
    assert macro_f1(y, y) == 1.0
    # true [0,0,1,2,2,2], K=4, everything predicted as class 2: F1_2 = 2*3/(2*3+3+0) = 2/3, others 0
    y = np.array([0, 0, 1, 2, 2, 2])
    p = np.full(6, 2)
    np.testing.assert_allclose(f1_per_class(p, y, n_classes=4), [0, 0, 2 / 3, 0])
    assert macro_f1(p, y, n_classes=4) == pytest.approx(1 / 6)
    assert macro_f1(p, y, n_classes=4) == pytest.approx(_sk_macro(y, p, 4))


def test_macro_f1_large_random_matches_sklearn():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 8, 200_000)
    p = np.where(rng.random(len(y)) < 0.4, y, rng.integers(0, 8, len(y)))
    assert macro_f1(p, y, 8) == pytest.approx(_sk_macro(y, p, 8), abs=1e-12)


@pytest.mark.parametrize("pred,true,kw,match", [
    (np.zeros((3, 8)), np.eye(7)[[0, 1, 2]], {}, "inconsistent number of classes"),
    (np.zeros((3, 8)), np.array([0, 1, 2]), {"n_classes": 7}, "inconsistent number of classes"),
    (np.array([0, 1]), np.array([0, 1, 2]), {}, "rows"),
    (np.array([0, 1, -1]), np.array([0, 1, 2]), {}, "negative"),
    (np.array([0, 1, 2]), np.array([0, 1, -1]), {}, "negative"),
    (np.array([0, 1, 8]), np.eye(8)[[0, 1, 2]], {}, "out of range"),
    (np.array([0, 1, 5]), np.array([0, 1, 2]), {"n_classes": 3}, "out of range"),
    (np.array([0.0, 1.5]), np.array([0, 1]), {}, "integer"),
    (np.full((2, 3), np.nan), np.eye(3)[[0, 1]], {}, "NaN"),
    (np.eye(3)[[0, 1]], np.array([[1.0, 0, 0], [0, 0, 0]]), {}, "no positive entry"),
    (np.zeros((0, 3)), np.zeros((0, 3)), {}, "no samples"),
    (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), {}, "shape|1-D"),
])
def test_macro_f1_rejects_bad_inputs(pred, true, kw, match):
    with pytest.raises(ValueError, match=match):
        macro_f1(pred, true, **kw)


def test_score_report_classes_fields():
    names = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
    y = np.array([0, 0, 4, 4, 4, 6, 7, 1])
    p = np.array([0, 4, 4, 4, 0, 6, 0, 1])
    r = score_report_classes(np.eye(8)[p] * 0.9 + 0.0125, np.eye(8)[y], names)
    assert set(r) == {"macro_f1", "f1", "accuracy", "n"}
    assert list(r["f1"]) == names and r["n"] == 8
    assert r["accuracy"] == pytest.approx(5 / 8)
    assert r["macro_f1"] == pytest.approx(_sk_macro(y, p, 8))
    assert r["f1"]["Happiness"] == pytest.approx(2 / 3) and r["f1"]["Fear"] == 0.0
    assert all(isinstance(v, float) for v in r["f1"].values())
    with pytest.raises(ValueError, match="inconsistent"):
        score_report_classes(np.eye(8)[p], np.eye(8)[y], names[:7])
    with pytest.raises(ValueError, match="out of range"):
        score_report_classes(p, y, names[:7])
