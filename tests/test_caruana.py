import numpy as np
import pytest

from competition.pipeline.ensembling.table import format_steps
from competition.pipeline.ensembling.caruana import CaruanaOptions, caruana_select, select_from_stats
from competition.pipeline.ensembling.moments import block_moments, total
from competition.core.metrics import mean_pcc, pcc_per_column


def planted(seed: int = 0, n: int = 400, e: int = 3):
    """One strong model, an exact copy of it, a weaker model with independent errors, and noise."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, e))
    strong = y + rng.normal(0, 0.4, y.shape)
    other = y + rng.normal(0, 0.6, y.shape)
    noise = [rng.random(y.shape) for _ in range(4)]
    names = ["strong", "strong_copy", "other", *[f"noise{i}" for i in range(4)]]
    return names, np.stack([strong, strong.copy(), other, *noise]), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_library_picks_the_signal_models(seed):
    names, preds, y = planted(seed)
    sel = caruana_select(names, preds, y)
    assert not any(n.startswith("noise") for n in sel.weights)
    assert "other" in sel.weights
    assert sel.steps[0].member in ("strong", "strong_copy")
    assert sel.weights.get("strong", 0) + sel.weights.get("strong_copy", 0) > sel.weights["other"]
    assert sel.score > mean_pcc(preds[0], y) + 0.01
    assert abs(sum(sel.weights.values()) - 1) < 1e-9
    assert np.isclose(mean_pcc(np.tensordot(sel.weight_vector(names), preds, axes=1), y), sel.score)
    assert "+ other" in format_steps(sel.steps, "mean_pcc")


def test_steps_score_what_they_say_and_best_seen_is_returned():
    names, preds, y = planted(3, e=5)
    sel = caruana_select(names, preds, y, CaruanaOptions(max_steps=30, patience=30, min_gain=0.0))
    total_pred, prev = np.zeros_like(y), None
    for k, step in enumerate(sel.steps):        # every printed score is the real mean PCC of the running mean
        total_pred += preds[names.index(step.member)]
        assert np.isclose(mean_pcc(total_pred, y), step.score)
        if prev is not None:
            assert np.isclose(step.gain, step.score - prev)
        prev = step.score
    assert len(sel.steps) == 31
    assert np.isclose(sel.score, max(s.score for s in sel.steps))
    assert not sel.steps[-1].kept or sel.steps[-1].score == sel.score
    kept = [s for s in sel.steps if s.kept]
    assert sel.counts == {n: sum(s.member == n for s in kept) for n in sel.counts}


def test_sorted_initialisation_starts_from_the_n_best():
    names, preds, y = planted(4)
    sel = caruana_select(names, preds, y, CaruanaOptions(init=3, max_steps=0))
    assert [s.member for s in sel.steps] == ["strong", "strong_copy", "other"]
    assert sel.counts == {"strong": 1, "strong_copy": 1, "other": 1}


def test_min_gain_stops_early():
    names, preds, y = planted(5)
    loose = caruana_select(names, preds, y, CaruanaOptions(min_gain=0.0, patience=1))
    strict = caruana_select(names, preds, y, CaruanaOptions(min_gain=0.5, patience=1))
    assert len(strict.weights) == 1 and len(strict.steps) == 2
    assert loose.score > strict.score


def test_bagging_averages_over_subsets_of_the_library():
    names, preds, y = planted(6)
    sel = caruana_select(names, preds, y, CaruanaOptions(bags=30, bag_fraction=0.5, seed=1))
    assert abs(sum(sel.weights.values()) - 1) < 1e-9
    signal = sum(sel.weights.get(n, 0) for n in ("strong", "strong_copy", "other"))
    assert signal > 0.8          # a bag without any signal model still has to pick something
    assert np.isclose(mean_pcc(np.tensordot(sel.weight_vector(names), preds, axes=1), y), sel.score)
    assert sel.steps[0].member in ("strong", "strong_copy", "other")   # table: by decreasing weight
    assert [s.member for s in sel.steps] == sorted(sel.weights, key=lambda n: -sel.weights[n])


def test_moments_of_folds_add_up_to_the_exact_pcc():
    names, preds, y = planted(7, n=300, e=4)
    blocks = np.arange(300) % 5
    parts = block_moments(preds, y, blocks)
    w = np.array([0.5, 0.0, 0.3, 0.2, 0, 0, 0])
    blend = np.tensordot(w, preds, axes=1)
    assert np.allclose(total(parts).centred().pcc(w), pcc_per_column(blend, y))
    rest = (total(parts) - parts[2]).centred()
    keep = blocks != 2
    assert np.allclose(rest.pcc(w), pcc_per_column(blend[keep], y[keep]))
    assert np.allclose(rest.single_pcc()[:, 2], pcc_per_column(preds[2][keep], y[keep]))


def test_constant_member_scores_zero_and_is_not_chosen():
    names, preds, y = planted(8)
    preds = np.concatenate([preds, np.full((1, *y.shape), 0.5)])
    sel = select_from_stats(block_moments(preds, y, np.zeros(len(y), int))[0].centred(), names + ["const"])
    assert "const" not in sel.weights


def test_single_model_library():
    y = np.random.default_rng(1).random((50, 2))
    sel = caruana_select(["only"], y[None] + 0.1, y)
    assert sel.weights == {"only": 1.0}
