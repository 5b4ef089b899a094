"""Blend methods and nested CV on planted libraries (arrays; no files)."""
import numpy as np
import pytest

from competition.pipeline.ensembling.library import Library
from competition.pipeline.ensembling.methods import METHODS, fit_blender, rank_reference, rank_transform
from competition.pipeline.ensembling.moments import block_moments
from competition.pipeline.ensembling.nested import NestedCV, split_for_nested
from competition.pipeline.ensembling.postprocess import postprocess
from competition.core.metrics import mean_pcc, pcc_per_column


def library(preds: np.ndarray, y: np.ndarray, names: list[str], n_folds: int = 5) -> Library:
    n = len(y)
    return Library(names=names, oof=preds, test=preds[:, :10], y=y, ids=[f"{i:05d}" for i in range(n)],
                   test_ids=[f"t{i}" for i in range(10)], targets=[f"e{j}" for j in range(y.shape[1])],
                   folds_fingerprint="x", scores={m: mean_pcc(p, y) for m, p in zip(names, preds)},
                   fold=np.arange(n) % n_folds)


def stats_of(preds, y):
    return block_moments(preds, y, np.zeros(len(y), int))[0].centred()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_convex_weights_and_scores_what_it_applies(method):
    rng = np.random.default_rng(0)
    y = rng.random((300, 4))
    preds = np.clip(np.stack([y + rng.normal(0, s, y.shape) for s in (0.3, 0.5, 0.8)] + [rng.random(y.shape)]), 0, 1)
    names = ["a", "b", "c", "noise"]
    b = fit_blender(method, stats_of(preds, y), names, (preds, y))
    assert b.weights.shape == (4, 4) and (b.weights >= 0).all() and np.allclose(b.weights.sum(1), 1)
    out = b.apply(preds)
    assert out.shape == y.shape and out.min() >= 0 and out.max() <= 1
    if method != "rank_mean":   # the step table's last kept score is the blend's own score
        assert np.isclose([s for s in b.steps if s.kept][-1].score, mean_pcc(out, y), atol=1e-9)
    assert b.steps[0].member in ("a", "b", "c", "noise")


def test_per_emotion_methods_pick_per_emotion_winners():
    rng = np.random.default_rng(1)
    y = rng.random((400, 3))
    good_on = [np.where(np.arange(3) == j, 0.2, 2.0) for j in range(3)]   # member j is good on emotion j only
    preds = np.stack([y + rng.normal(0, 1, y.shape) * sd for sd in good_on])
    names = ["m0", "m1", "m2"]
    st = stats_of(preds, y)
    per = fit_blender("best_per_emotion", st, names)
    assert list(per.weights.argmax(1)) == [0, 1, 2]
    assert not per.shared and per.weights_by_target(["x", "y", "z"])["y"] == {"m1": 1.0}
    car = fit_blender("caruana_per_emotion", st, names)
    assert list(car.weights.argmax(1)) == [0, 1, 2]
    single = fit_blender("best_single", st, names)
    assert mean_pcc(car.apply(preds), y) > mean_pcc(single.apply(preds), y) + 0.1


def test_nnls_and_pcc_opt_are_optimal_among_nonnegative_weights():
    rng = np.random.default_rng(2)
    y = rng.random((500, 2))
    preds = np.stack([y + rng.normal(0, s, y.shape) for s in (0.3, 0.4, 0.6)] + [rng.random(y.shape)])
    st = stats_of(preds, y)
    names = list("abcd")
    nn = fit_blender("nnls", st, names)
    opt = fit_blender("pcc_opt", st, names)
    best_nn = pcc_per_column(nn.apply(preds), y)
    best_opt = mean_pcc(opt.apply(preds), y)
    for _ in range(300):       # no random non-negative weighting beats them
        w = rng.dirichlet(np.ones(4))
        blend = np.tensordot(w, preds, axes=1)
        assert (pcc_per_column(blend, y) <= best_nn + 1e-9).all()
        assert mean_pcc(blend, y) <= best_opt + 1e-9


def test_rank_transform_is_the_empirical_cdf():
    rng = np.random.default_rng(3)
    preds = rng.random((2, 1000, 3))
    ref = rank_reference(preds)
    r = rank_transform(preds, ref)
    assert r.min() >= 0 and r.max() <= 1
    order = np.argsort(preds[1, :, 2])
    assert np.all(np.diff(r[1, order, 2]) >= 0)
    assert np.allclose(r[0, :, 0], np.argsort(np.argsort(preds[0, :, 0])) / 999, atol=2e-3)
    assert np.allclose(rank_transform(np.array([[[-1.0], [2.0]]]), ref[:1, :1]).ravel(), [0, 1])


def test_max_norm_rescales_each_clip_to_max_one():
    x = np.array([[0.2, 0.4, 0.1], [0.0, 0.0, 0.0], [1.3, -0.2, 0.5]])
    out = postprocess(x, "max_norm")
    assert np.allclose(out, [[0.5, 1.0, 0.25], [0, 0, 0], [1.0, 0.0, 0.5]])
    assert np.allclose(postprocess(x, "clip"), np.clip(x, 0, 1))
    with pytest.raises(ValueError, match="unknown post-processing"):
        postprocess(x, "sqrt")


def test_nested_cv_exposes_the_optimism_of_selecting_on_noise():
    """50 pure-noise members: picking the best one in-sample looks good, nested CV shows ~0."""
    rng = np.random.default_rng(4)
    y = rng.random((250, 3))
    preds = rng.random((50, 250, 3))
    cv = NestedCV(library(preds, y, [f"n{i}" for i in range(50)]))
    for method in ("best_single", "caruana", "nnls"):
        ev = cv.evaluate(method)
        assert ev.in_sample > 0.05
        assert ev.nested < ev.in_sample - 0.05
        assert abs(ev.nested) < 0.08


def test_nested_cv_never_looks_at_the_held_out_fold():
    """A member that is perfect on fold 0 only: fitted without fold 0, fold 0 must not be helped by
    choosing it, so nested and in-sample predictions of fold 0 differ."""
    rng = np.random.default_rng(5)
    y = rng.random((200, 2))
    fold = np.arange(200) % 4
    cheat = np.where((fold == 0)[:, None], y, rng.random(y.shape))
    honest = y + rng.normal(0, 0.5, y.shape)
    lib = library(np.stack([honest, cheat]), y, ["honest", "cheat"], n_folds=4)
    cv = NestedCV(lib)
    held = cv.held_out("best_per_emotion")
    assert np.allclose(held[fold == 0], honest[fold == 0])
    assert np.allclose(cv.fit("best_single", np.flatnonzero(fold != 1), cv.all - cv.parts[1]).weights[:, 0], 1)


def test_post_processing_is_kept_only_where_nested_cv_says_it_helps():
    rng = np.random.default_rng(6)
    z = rng.beta(1.2, 2.5, (400, 7))
    y = z / z.max(1, keepdims=True)                                     # labels max-normalised per clip
    scale = rng.uniform(0.3, 1.0, (400, 1))
    shrunk = np.stack([z * scale + rng.normal(0, 0.03, z.shape) for _ in range(2)])   # unnormalised members
    ev = NestedCV(library(shrunk, y, ["a", "b"])).evaluate("mean")
    assert ev.post == "max_norm" and ev.by_post["max_norm"][1] > ev.by_post["none"][1]
    raw = rng.random((400, 7))                                          # labels not normalised per clip
    inside = np.stack([np.clip(raw + rng.normal(0, 0.1, raw.shape), 0, 1) for _ in range(2)])
    ev2 = NestedCV(library(inside, raw, ["a", "b"])).evaluate("mean")
    assert ev2.post == "none"                     # clip changes nothing (a tie) and max_norm hurts
    assert ev2.by_post["max_norm"][1] < ev2.by_post["none"][1]
    assert ev2.by_post["clip"][1] == ev2.by_post["none"][1]
    assert np.isclose(ev2.nested, ev2.by_post["none"][1])
    outside = np.stack([raw + rng.normal(0, 0.3, raw.shape) for _ in range(2)])   # beyond [0, 1]: clip helps
    assert NestedCV(library(outside, raw, ["a", "b"])).evaluate("mean").post == "clip"


def test_single_fold_falls_back_to_a_random_split():
    blocks, note = split_for_nested(np.zeros(100, int))
    assert len(np.unique(blocks)) == 5 and "single validation fold" in note
    same, note2 = split_for_nested(np.arange(100) % 3)
    assert np.array_equal(same, np.arange(100) % 3) and "trained on" in note2


def test_evaluating_a_method_never_changes_the_library():
    """Regression: rank_mean once ranked a column-major OOF matrix in place (pandas hands those out),
    which changed every method evaluated after it."""
    rng = np.random.default_rng(7)
    y = rng.random((200, 3))
    preds = np.stack([y + rng.normal(0, s, y.shape) for s in (0.3, 0.5, 0.7)])
    pandas_like = np.ascontiguousarray(preds.transpose(0, 2, 1)).transpose(0, 2, 1)  # same values, other layout
    assert pandas_like.transpose(0, 2, 1).flags["C_CONTIGUOUS"]
    lib = library(pandas_like, y, ["a", "b", "c"])
    before = lib.oof.copy()
    cv = NestedCV(lib)
    first = cv.evaluate("caruana")
    for method in METHODS:
        cv.evaluate(method)
    assert np.array_equal(lib.oof, before)
    again = cv.evaluate("caruana")
    assert again.in_sample == first.in_sample and again.nested == first.nested


def test_the_claim_accounts_for_choosing_among_candidates():
    """Candidate k is perfect on fold k and noise elsewhere, so each one's nested score is high only
    because of the fold it happens to fit: the best nested score is an artefact of choosing. The claim
    chooses on the other folds and scores the fold left out, where the choice is noise: about 0. With a
    real signal the claim follows the chosen candidate's own nested score."""
    from types import SimpleNamespace

    from competition.pipeline.ensembling.blend import choice_score, choose, evaluate
    from competition.pipeline.ensembling.nested import Evaluation, NestedCV
    rng = np.random.default_rng(3)
    y, blocks = rng.random((200, 3)), np.arange(200) % 5
    evals = {}
    for k in range(5):
        held = np.where((blocks == k)[:, None], y, rng.random(y.shape))
        nested = mean_pcc(held, y)
        evals[f"m{k}"] = Evaluation(f"m{k}", None, nested, nested, {}, {"none": (nested, nested)}, {"none": held})
    cv = SimpleNamespace(lib=SimpleNamespace(y=y), blocks=blocks, score=mean_pcc)
    claim, per_fold = choice_score(cv, evals, "best")
    assert choose(evals, "best").nested > 0.15 and abs(claim) < 0.08
    assert all(per_fold[k] != f"m{k}+none" for k in range(5))   # never chosen by the fold it fits
    signal = library(np.stack([y + rng.normal(0, s, y.shape) for s in (0.2, 0.3, 0.4)]), y, ["a", "b", "c"])
    cv = NestedCV(signal)
    evals = evaluate(cv, "best")
    claim, _ = choice_score(cv, evals, "best")
    assert abs(claim - choose(evals, "best").nested) < 0.02
    one, _ = choice_score(cv, evals, "mean")    # a requested method: only its post-processing is chosen
    assert abs(one - evals["mean"].nested) < 0.02
