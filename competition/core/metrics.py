"""Scores: ERI's mean Pearson r over emotions (a constant column scores 0, with a warning), Aff-Wild2's
mean CCC (VA) and macro-F1 over all 8 classes (EXPR; as sklearn's with zero_division=0)."""
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
    """Lin's concordance correlation per column, 2 cov / (var_p + var_y + (mean_p - mean_y)^2), with
    population (ddof=0) moments; 0 where the denominator vanishes (both sides constant and equal)."""
    p, y = _as_2d(pred), _as_2d(true)
    mp, my = p.mean(0), y.mean(0)
    vp, vy = p.var(0), y.var(0)
    cov = ((p - mp) * (y - my)).mean(0)
    den = vp + vy + (mp - my) ** 2
    return np.where(den > 1e-12, 2 * cov / np.where(den > 1e-12, den, 1.0), 0.0)


def mean_ccc(pred: np.ndarray, true: np.ndarray) -> float:
    """The Aff-Wild2 VA score: (CCC_valence + CCC_arousal) / 2 for pred/true columns (valence, arousal)."""
    return float(np.mean(ccc_per_column(pred, true)))


def score_report(pred: np.ndarray, true: np.ndarray, names: list[str]) -> dict:
    """Everything metrics.json records about one set of predictions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantPredictionWarning)
        per = pcc_per_column(pred, true)
        return {
            "mean_pcc": float(per.mean()),
            "pcc": {n: float(v) for n, v in zip(names, per)},
            "mean_ccc": mean_ccc(pred, true),
            "mse": float(np.mean((_as_2d(pred) - _as_2d(true)) ** 2)),
            "n": int(len(_as_2d(true))),
        }


# ---------------------------------------------------------------------------------- classification
def _class_ids(a: np.ndarray, what: str, is_label: bool = False) -> tuple[np.ndarray, int | None]:
    """(N,) int64 class ids (the argmax of each row of an (N, K) input; a label row without a positive entry
    is an error, not class 0) and the number of classes a 2-D input implies (None for a 1-D input)."""
    a = np.asarray(a)
    if a.ndim == 2:
        if a.shape[1] == 0:
            raise ValueError(f"{what} has 0 columns: need one per class")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"{what} must be numeric, got dtype {a.dtype}")
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise ValueError(f"{what} contains NaN or inf")
        if is_label and len(a) and not (a.max(axis=1) > 0).all():
            raise ValueError(f"{int((a.max(axis=1) <= 0).sum())} {what} row(s) have no positive entry "
                             "(unannotated frames?): drop them first")
        return np.argmax(a, axis=1).astype(np.int64, copy=False), int(a.shape[1])
    if a.ndim == 1:
        if np.issubdtype(a.dtype, np.bool_) or not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{what} as a 1-D vector must hold integer class ids, got dtype {a.dtype}")
        if not np.issubdtype(a.dtype, np.integer):
            if not (np.isfinite(a).all() and (a == np.round(a)).all()):
                raise ValueError(f"{what} as a 1-D vector must hold integer class ids")
        ids = a.astype(np.int64)
        if ids.size and ids.min() < 0:
            raise ValueError(f"{what} has negative class ids (-1 marks an unannotated frame): drop them first")
        return ids, None
    raise ValueError(f"{what} must be (N, K) scores / one-hot or a 1-D vector of class ids, got {a.shape}")


def confusion_matrix(pred: np.ndarray, true: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class. Arguments as for `macro_f1`."""
    p, kp = _class_ids(pred, "prediction")
    y, ky = _class_ids(true, "label", is_label=True)
    if len(p) != len(y):
        raise ValueError(f"prediction has {len(p)} rows, label has {len(y)}")
    if len(y) == 0:
        raise ValueError("no samples to score")
    implied = {k for k in (kp, ky, n_classes) if k is not None}
    if len(implied) > 1:
        raise ValueError(f"inconsistent number of classes: prediction {kp}, label {ky}, n_classes {n_classes}")
    k = implied.pop() if implied else int(max(p.max(), y.max())) + 1
    if k < 1:
        raise ValueError(f"n_classes must be >= 1, got {k}")
    top = max(int(p.max()), int(y.max()))
    if top >= k:
        raise ValueError(f"class id {top} out of range for {k} classes")
    return np.bincount(y * k + p, minlength=k * k).reshape(k, k)


def f1_per_class(pred: np.ndarray, true: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """F1 of each of the K classes (0 for a class neither predicted nor present, as sklearn's
    zero_division=0). Inputs as `_class_ids`; K from a 2-D input, else `n_classes`, else the largest id + 1."""
    cm = confusion_matrix(pred, true, n_classes)
    den = cm.sum(0) + cm.sum(1)                       # (TP + FP) + (TP + FN)
    return np.where(den > 0, 2.0 * np.diag(cm) / np.maximum(den, 1), 0.0)


def macro_f1(pred: np.ndarray, true: np.ndarray, n_classes: int | None = None) -> float:
    """The Aff-Wild2 EXPR score: the unweighted mean of F1 over ALL K classes (an absent class counts 0),
    i.e. sklearn's f1_score(true, pred, average="macro", labels=range(K), zero_division=0)."""
    return float(f1_per_class(pred, true, n_classes).mean())


def score_report_classes(pred: np.ndarray, true: np.ndarray, names: list[str]) -> dict:
    """What metrics.json records about one set of class predictions (one name per class, in column /
    class-id order): macro-F1, per-class F1, accuracy and the number of samples."""
    names = list(names)
    cm = confusion_matrix(pred, true, len(names))
    per = f1_per_class(pred, true, len(names))
    return {
        "macro_f1": float(per.mean()),
        "f1": {n: float(v) for n, v in zip(names, per)},
        "accuracy": float(np.trace(cm) / cm.sum()),
        "n": int(cm.sum()),
    }
