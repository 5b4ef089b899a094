import numpy as np
import pytest
import torch

import torch.nn.functional as F

from competition.core.metrics import ccc_per_column, f1_per_class, macro_f1, pcc_per_column
from competition.models.losses import (LOSSES, build_loss, ccc_loss, ce_loss, mse_loss, parse_loss_spec,
                                         pcc_loss, smooth_labels, soft_f1_loss, soft_f1_per_class)


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


# ------------------------------------------------------------------------- classification (EXPR)
@pytest.fixture
def cls_pair():
    g = torch.Generator().manual_seed(0)
    k, n = 8, 64
    cls = torch.arange(n) % k                                     # every class present
    logits = torch.randn(n, k, generator=g, dtype=torch.float64)
    logits[torch.arange(n), cls] += 1.0
    return torch.softmax(logits, 1), F.one_hot(cls, k).to(torch.float64), cls


def test_ce_equals_nll_of_log_probabilities_on_one_hot_targets(cls_pair):
    p, y, cls = cls_pair
    assert float(ce_loss(p, y)) == pytest.approx(float(F.nll_loss(torch.log(p), cls)), rel=1e-12)
    logits = torch.log(p) + 2.0                                   # softmax(logits) == p
    assert float(ce_loss(torch.softmax(logits, 1), y)) == pytest.approx(float(F.cross_entropy(logits, cls)),
                                                                       rel=1e-10)


def test_ce_soft_targets_and_clamping():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64)
    y = torch.tensor([[0.9, 0.05, 0.05], [0.0, 0.5, 0.5]], dtype=torch.float64)
    expect = -(0.9 * np.log(.7) + 0.05 * np.log(.2) + 0.05 * np.log(.1) + 0.5 * np.log(.1) + 0.5 * np.log(.8)) / 2
    assert float(ce_loss(p, y)) == pytest.approx(expect, rel=1e-12)
    # F.cross_entropy with probability targets agrees too
    assert float(ce_loss(p, y)) == pytest.approx(float(F.cross_entropy(torch.log(p), y)), rel=1e-12)
    # a zero probability on the true class is clamped: large but finite, with finite gradients
    q = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = ce_loss(q, torch.tensor([[0.0, 1.0]]))
    loss.backward()
    assert torch.isfinite(loss) and float(loss.detach()) == pytest.approx(-np.log(1e-7), rel=1e-3)
    assert torch.isfinite(q.grad).all()


def test_classification_losses_zero_weight_excludes_a_sample(cls_pair):
    p, y, _ = cls_pair
    w = torch.ones(len(p), dtype=torch.float64)
    w[-5:] = 0
    for fn in (ce_loss, soft_f1_loss):
        assert float(fn(p, y, w)) == pytest.approx(float(fn(p[:-5], y[:-5])), abs=1e-12)
    # integer weights are relative: doubling a sample == duplicating it
    w2 = torch.ones(len(p), dtype=torch.float64)
    w2[0] = 2.0
    dup = (torch.cat([p, p[:1]]), torch.cat([y, y[:1]]))
    for fn in (ce_loss, soft_f1_loss):
        assert float(fn(p, y, w2)) == pytest.approx(float(fn(*dup)), abs=1e-12)


def test_soft_f1_hand_computed_values():
    p = torch.tensor([[0.8, 0.2], [0.4, 0.6]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # class 0: TP=.8, FP=.4, FN=.2 -> 1.6/2.2 = 8/11; class 1: TP=.6, FP=.2, FN=.4 -> 1.2/1.8 = 2/3
    np.testing.assert_allclose(soft_f1_per_class(p, y).numpy(), [8 / 11, 2 / 3], rtol=1e-7)
    assert float(soft_f1_loss(p, y)) == pytest.approx(1 - (8 / 11 + 2 / 3) / 2, rel=1e-7)   # 10/33
    # only the first sample: class 0 F1 = 1.6/1.8 = 8/9; class 1 has no true sample -> F1 0 (counts in mean)
    w = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert float(soft_f1_loss(p, y, w)) == pytest.approx(1 - (8 / 9 + 0) / 2, rel=1e-7)


def test_soft_f1_perfect_is_zero_and_hard_predictions_give_the_metric(cls_pair):
    _, y, _ = cls_pair
    assert float(soft_f1_loss(y, y)) == pytest.approx(0.0, abs=1e-7)
    assert float(ce_loss(y, y)) == pytest.approx(0.0, abs=1e-12)
    # on one-hot (hard) predictions the soft F1 is the metric's F1, absent classes included
    rng = np.random.default_rng(1)
    t = rng.choice([0, 1, 2, 4, 6], 300)                          # classes 3, 5, 7 never true
    h = np.where(rng.random(300) < 0.5, t, rng.choice([0, 1, 2, 3, 4, 6], 300))   # 3 predicted, 5/7 never
    hp, ht = torch.tensor(np.eye(8)[h]), torch.tensor(np.eye(8)[t])
    np.testing.assert_allclose(soft_f1_per_class(hp, ht).numpy(), f1_per_class(h, t, 8), atol=1e-7)
    assert 1 - float(soft_f1_loss(hp, ht)) == pytest.approx(macro_f1(h, t, 8), abs=1e-7)


def test_classification_losses_reject_bad_shapes():
    for fn in (ce_loss, soft_f1_loss):
        with pytest.raises(ValueError, match="one-hot"):
            fn(torch.rand(4, 8), torch.arange(4))                 # class ids instead of one-hot
        with pytest.raises(ValueError, match="one-hot"):
            fn(torch.rand(4, 8), torch.rand(4, 7))


@pytest.mark.parametrize("spec", ["ce", "soft_f1", "ce+soft_f1", {"ce": 0.5, "soft_f1": 2.0}])
def test_sgd_on_logits_through_softmax_reduces_the_loss(spec):
    torch.manual_seed(0)
    k, n = 8, 128
    cls = torch.arange(n) % k
    y = F.one_hot(cls, k).float()
    logits = torch.zeros(n, k, requires_grad=True)                # uniform start, F1 = 1/8 each class
    loss_fn = build_loss(spec)
    opt = torch.optim.SGD([logits], lr=2.0 * n)                   # per-sample losses are averaged over n
    losses = []
    for _ in range(20):
        loss = loss_fn(torch.softmax(logits, 1), y)
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:]))


def test_classification_specs_build_weighted_sums(cls_pair):
    p, y, _ = cls_pair
    assert {"ce", "soft_f1"} <= set(LOSSES)
    assert parse_loss_spec("ce+soft_f1") == {"ce": 1.0, "soft_f1": 1.0}
    assert parse_loss_spec({"ce": 1, "soft_f1": 1}) == {"ce": 1.0, "soft_f1": 1.0}
    ce, f1 = float(ce_loss(p, y)), float(soft_f1_loss(p, y))
    assert ce > 0 and f1 > 0
    assert float(build_loss("ce+soft_f1")(p, y)) == pytest.approx(ce + f1, rel=1e-12)
    assert float(build_loss({"ce": 0.3, "soft_f1": 2})(p, y)) == pytest.approx(0.3 * ce + 2 * f1, rel=1e-12)
    w = torch.rand(len(p), dtype=torch.float64)
    assert float(build_loss("ce+soft_f1")(p, y, w)) == pytest.approx(
        float(ce_loss(p, y, w)) + float(soft_f1_loss(p, y, w)), rel=1e-12)
