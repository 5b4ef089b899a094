"""Blend methods: each fits a `Blender` from the centred statistics of the clips it may look at, with
per-emotion weights that are non-negative and sum to 1 (a blend of [0, 1] predictions stays in [0, 1]).
More: docs/PIPELINE.md, "Blend methods"."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import minimize, nnls

from competition.pipeline.ensembling.caruana import CaruanaOptions, caruana_weights, select_from_stats
from competition.pipeline.ensembling.moments import Centred, block_moments
from competition.pipeline.ensembling.postprocess import postprocess
from competition.pipeline.ensembling.table import Step, weight_steps

METHODS: tuple[str, ...] = ("best_single", "best_per_emotion", "mean", "rank_mean", "caruana",
                            "caruana_bagged", "caruana_per_emotion", "nnls", "pcc_opt")
RANK_QUANTILES = 1001
DEFAULT_BAGS = 20


@dataclass
class Blender:
    method: str
    names: list[str]
    weights: np.ndarray                  # (E, M), rows non-negative summing to 1
    transform: str = "raw"               # "raw" | "rank"
    reference: np.ndarray | None = None  # (M, E, Q) member quantiles that define the rank transform
    post: str = "none"
    steps: list[Step] = field(default_factory=list)

    def apply(self, preds: np.ndarray, subjects: np.ndarray | None = None) -> np.ndarray:
        """(M, n, E) member predictions, in `names` order -> (n, E) blend; `subjects` (n,) for the
        per-subject post-processing."""
        x = rank_transform(preds, self.reference) if self.transform == "rank" else preds
        return postprocess(np.einsum("em,mne->ne", self.weights, x), self.post, subjects=subjects)

    def with_post(self, post: str) -> "Blender":
        return replace(self, post=post)

    @property
    def members(self) -> list[str]:
        return [n for n, w in zip(self.names, self.weights.max(0)) if w > 0]

    @property
    def shared(self) -> bool:
        return bool(np.allclose(self.weights, self.weights[0]))

    def weights_by_target(self, targets: list[str]) -> dict[str, dict[str, float]]:
        return {t: {n: float(w) for n, w in zip(self.names, row) if w > 0} for t, row in zip(targets, self.weights)}


def rank_reference(preds: np.ndarray, q: int = RANK_QUANTILES) -> np.ndarray:
    """(M, n, E) -> (M, E, q): each member's quantiles per emotion (nearest rank; one sort per column)."""
    ordered = np.sort(np.ascontiguousarray(preds.transpose(0, 2, 1)), axis=2)
    return ordered[:, :, np.round(np.linspace(0, preds.shape[1] - 1, q)).astype(int)]


def rank_transform(preds: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each prediction -> its empirical CDF in [0, 1] against the member's reference quantiles."""
    probs = np.linspace(0, 1, reference.shape[2])
    cols = preds.transpose(0, 2, 1).astype(np.float64, order="C", copy=True)  # (M, E, n), never a view
    for m in range(cols.shape[0]):
        for e in range(cols.shape[1]):
            cols[m, e] = np.interp(cols[m, e], reference[m, e], probs)
    return cols.transpose(0, 2, 1)


def _one_hot_rows(idx: np.ndarray, m: int) -> np.ndarray:
    w = np.zeros((len(idx), m))
    w[np.arange(len(idx)), idx] = 1.0
    return w


def _normalise_rows(w: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows scaled to sum 1; a row with no positive weight takes the fallback row."""
    w = np.clip(w, 0, None)
    s = w.sum(1, keepdims=True)
    return np.where(s > 0, w / np.where(s > 0, s, 1.0), fallback)


def nnls_weights(stats: Centred) -> np.ndarray:
    """(E, M): per emotion argmin ||X w - y||^2 over w >= 0 on centred X, y, solved on the Gram
    matrix C = L L' as nnls(L', L^-1 b). Its direction also maximises that emotion's PCC over w >= 0."""
    e_count, m = stats.b.shape
    w = np.zeros((e_count, m))
    for e in range(e_count):
        c = stats.c[e]
        ridge = 1e-9 * max(np.trace(c) / m, 1e-12)   # copies in the library make C singular
        low = np.linalg.cholesky(c + ridge * np.eye(m))
        w[e], _ = nnls(low.T, np.linalg.solve(low, stats.b[e]), maxiter=50 * m)
    return _normalise_rows(w, _one_hot_rows(stats.single_pcc().argmax(1), m))


def pcc_opt_weights(stats: Centred, start: np.ndarray) -> np.ndarray:
    """(M,) shared non-negative weights maximising the mean over emotions of PCC, from `start`."""
    vy = np.clip(stats.vy, 1e-300, None)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        num = stats.b @ w
        cw = stats.c @ w                                  # (E, M)
        var = np.clip(cw @ w, 1e-300, None)
        sd = np.sqrt(var * vy)
        r = num / sd
        grad = stats.b / sd[:, None] - (num / (var * sd))[:, None] * cw
        return -float(r.mean()), -grad.mean(0)

    res = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(start),
                   options={"maxiter": 500})
    w = res.x if -res.fun >= -loss(start)[0] else start
    return w / w.sum() if w.sum() > 0 else start


def fit_blender(method: str, stats: Centred, names: list[str], train: tuple[np.ndarray, np.ndarray] | None = None,
                opts: CaruanaOptions = CaruanaOptions(), table: bool = True) -> Blender:
    """Fit `method` on the statistics of the clips it may look at. `train` = (preds (M, n, E), y (n, E))
    of those clips is needed only by rank_mean (for its rank reference). table=False skips the step
    table where it costs a pass over the clips (rank_mean), e.g. inside nested CV."""
    e_count, m = stats.b.shape
    if len(names) != m:
        raise ValueError(f"{len(names)} names for {m} members")
    single = stats.single_pcc()
    if method == "best_single":
        w = _one_hot_rows(np.full(e_count, int(single.mean(0).argmax())), m)
    elif method == "best_per_emotion":
        w = _one_hot_rows(single.argmax(1), m)
    elif method == "mean":
        w = np.full((e_count, m), 1.0 / m)
    elif method == "rank_mean":
        if train is None:
            raise ValueError("rank_mean needs the fitting clips' predictions for its rank reference")
        ref = rank_reference(train[0])
        w = np.full((e_count, m), 1.0 / m)
        if not table:
            return Blender(method, list(names), w, "rank", ref)
        ranked = block_moments(rank_transform(train[0], ref), train[1], np.zeros(len(train[1]), int))[0]
        return Blender(method, list(names), w, "rank", ref, steps=weight_steps(ranked.centred(), names, w[0]))
    elif method == "caruana":
        sel = select_from_stats(stats, names, replace(opts, bags=0))
        return Blender(method, list(names), np.tile(sel.weight_vector(names), (e_count, 1)), steps=sel.steps)
    elif method == "caruana_bagged":
        w = np.tile(caruana_weights(stats, replace(opts, bags=opts.bags or DEFAULT_BAGS)), (e_count, 1))
    elif method == "caruana_per_emotion":
        w = np.stack([caruana_weights(stats.target(e), replace(opts, bags=0)) for e in range(e_count)])
    elif method == "nnls":
        w = nnls_weights(stats)
    elif method == "pcc_opt":
        w = np.tile(pcc_opt_weights(stats, caruana_weights(stats, replace(opts, bags=0))), (e_count, 1))
    else:
        raise ValueError(f"unknown blend method {method!r}; known: {list(METHODS)}")
    return Blender(method, list(names), w, steps=weight_steps(stats, names, w))
