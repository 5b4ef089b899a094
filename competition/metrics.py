"""Scores. The official ERI metric is the mean over emotions of Pearson's r (scipy.stats.pearsonr per
emotion, then np.mean); a constant column has no defined r and scores 0 here, with a warning."""
from __future__ import annotations

import warnings

import numpy as np


class ConstantPredictionWarning(UserWarning):
    pass


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def pcc_per_column(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r per column; 0 (with a warning) where either side is constant."""
    p, y = _as_2d(pred), _as_2d(true)
    if p.shape != y.shape:
        raise ValueError(f"prediction shape {p.shape} != label shape {y.shape}")
    p = p - p.mean(0)
    y = y - y.mean(0)
    den = np.sqrt((p * p).sum(0) * (y * y).sum(0))
    ok = den > 1e-12
    if not ok.all():
        warnings.warn(f"{int((~ok).sum())} column(s) constant in prediction or label: PCC set to 0",
                      ConstantPredictionWarning, stacklevel=2)
    return np.where(ok, (p * y).sum(0) / np.where(ok, den, 1.0), 0.0)


def mean_pcc(pred: np.ndarray, true: np.ndarray) -> float:
    """The official ERI score."""
    return float(np.mean(pcc_per_column(pred, true)))


def ccc_per_column(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    p, y = _as_2d(pred), _as_2d(true)
    mp, my = p.mean(0), y.mean(0)
    vp, vy = p.var(0), y.var(0)
    cov = ((p - mp) * (y - my)).mean(0)
    den = vp + vy + (mp - my) ** 2
    return np.where(den > 1e-12, 2 * cov / np.where(den > 1e-12, den, 1.0), 0.0)


def mean_ccc(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(ccc_per_column(pred, true)))


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean((_as_2d(pred) - _as_2d(true)) ** 2))


def score_report(pred: np.ndarray, true: np.ndarray, names: list[str]) -> dict:
    """Everything metrics.json records about one set of predictions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantPredictionWarning)
        per = pcc_per_column(pred, true)
        return {
            "mean_pcc": float(per.mean()),
            "pcc": {n: float(v) for n, v in zip(names, per)},
            "mean_ccc": mean_ccc(pred, true),
            "mse": mse(pred, true),
            "n": int(len(_as_2d(true))),
        }
