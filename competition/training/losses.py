"""Training losses for clip-level intensity regression: MSE, 1 - PCC and 1 - CCC (each averaged over
targets, PCC/CCC computed over the batch), weighted sums of them, and label smoothing.

A loss spec in a config is a name (`mse`, `pcc`, `ccc`), a sum of names (`mse+pcc`) or a mapping of
weights (`{mse: 0.5, ccc: 1.0}`). Every loss takes optional per-sample weights (pseudo-labelled clips
count less than labelled ones)."""
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


LOSSES: dict[str, LossFn] = {"mse": mse_loss, "pcc": pcc_loss, "ccc": ccc_loss}


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
