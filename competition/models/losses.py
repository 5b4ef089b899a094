"""Training losses, weighted sums of them, and label smoothing. More: docs/PIPELINE.md, "Losses: losses.py"."""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

LossFn = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]
_EPS = 1e-8


def _weights(pred: Tensor, weight: Tensor | None) -> Tensor:
    """(B, 1) weights summing to 1."""
    w = torch.ones(pred.shape[0], device=pred.device, dtype=pred.dtype) if weight is None else weight.to(pred)
    return (w / w.sum().clamp_min(_EPS)).unsqueeze(1)


def mse_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    w = _weights(pred, weight)
    return ((pred - target) ** 2 * w).sum(0).mean()


def _moments(pred: Tensor, target: Tensor, weight: Tensor | None) -> tuple[Tensor, ...]:
    """Weighted per-target means, variances and covariance over the batch."""
    w = _weights(pred, weight)
    mp, mt = (pred * w).sum(0), (target * w).sum(0)
    dp, dt = pred - mp, target - mt
    return mp, mt, (dp * dp * w).sum(0), (dt * dt * w).sum(0), (dp * dt * w).sum(0)


def pcc_per_target(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    _, _, vp, vt, cov = _moments(pred, target, weight)
    return cov / torch.sqrt((vp * vt).clamp_min(1e-12))


def pcc_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """1 - mean over targets of Pearson's r within the batch (the competition metric, made a loss)."""
    return 1.0 - pcc_per_target(pred, target, weight).mean()


def ccc_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """1 - mean concordance correlation: like PCC, but also penalises shifted means and scales."""
    mp, mt, vp, vt, cov = _moments(pred, target, weight)
    ccc = 2 * cov / (vp + vt + (mp - mt) ** 2 + _EPS)
    return 1.0 - ccc.mean()


_PROB_MIN = 1e-7  # probabilities are clamped to [_PROB_MIN, 1] before the log (finite loss and gradients)


def _check_classes(pred: Tensor, target: Tensor, name: str) -> None:
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(f"{name} needs (B, K) class probabilities and (B, K) one-hot/soft targets, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")


def ce_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Cross-entropy of class probabilities `pred` (softmax rows, not logits) against one-hot or soft targets,
    weighted mean over samples (docs/PIPELINE.md, "Losses")."""
    _check_classes(pred, target, "ce")
    w = _weights(pred, weight)
    nll = -(target.to(pred) * torch.log(pred.clamp(_PROB_MIN, 1.0))).sum(1, keepdim=True)
    return (nll * w).sum()


def soft_f1_per_class(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """(K,) differentiable F1 per class over the batch (docs/PIPELINE.md, "Losses"; paper 004's eqs. 6-7 swap
    the names FP and FN, the same loss). A class absent from the batch scores 0 with no gradient, like the
    metric's zero_division=0."""
    _check_classes(pred, target, "soft_f1")
    w = _weights(pred, weight)
    y = target.to(pred)
    tp = (pred * y * w).sum(0)
    fp = (pred * (1 - y) * w).sum(0)
    fn = ((1 - pred) * y * w).sum(0)
    return 2 * tp / (2 * tp + fp + fn + _EPS)


def soft_f1_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """1 - mean over all K classes of the soft F1 (paper 004's F1 loss, a differentiable macro-F1)."""
    return 1.0 - soft_f1_per_class(pred, target, weight).mean()


LOSSES: dict[str, LossFn] = {"mse": mse_loss, "pcc": pcc_loss, "ccc": ccc_loss, "ce": ce_loss,
                             "soft_f1": soft_f1_loss}


def parse_loss_spec(spec: str | Mapping[str, float]) -> dict[str, float]:
    """'mse' | 'mse+pcc' | {'mse': 0.5, 'pcc': 1} -> {name: weight}."""
    if isinstance(spec, str):
        names = [s.strip() for s in spec.split("+") if s.strip()]
        weights = {n: 1.0 for n in names}
    elif isinstance(spec, Mapping):
        weights = {str(k): float(v) for k, v in spec.items()}
    else:
        raise ValueError(f"loss spec must be a name, 'a+b' or a mapping of weights, got {spec!r}")
    unknown = sorted(set(weights) - set(LOSSES))
    if unknown or not weights:
        raise ValueError(f"unknown loss(es) {unknown or spec!r}; known: {sorted(LOSSES)}")
    return weights


def build_loss(spec: str | Mapping[str, float]) -> LossFn:
    """The weighted sum of the named losses."""
    weights = parse_loss_spec(spec)

    def loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return sum(w * LOSSES[name](pred, target, weight) for name, w in weights.items())

    return loss


def smooth_labels(y: np.ndarray, epsilon: float, prior: np.ndarray | None = None) -> np.ndarray:
    """Regression label smoothing: shrink each target towards its prior (default: its training mean)
    by `epsilon`, so a single clip's extreme self-report pulls less."""
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {epsilon}")
    y = np.asarray(y, dtype=np.float32)
    prior = y.mean(0) if prior is None else np.asarray(prior, dtype=np.float32)
    return (1.0 - epsilon) * y + epsilon * prior
