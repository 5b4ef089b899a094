"""Ensemble selection (Caruana et al. 2004): sorted initialisation with the n best members, forward
selection with replacement, a minimum gain per step, optional bagging over random subsets of the
library, and the best ensemble seen returned (not the last).

Each step scores every candidate at once from the centred cross-products (moments.py): adding member m
to the running sum s changes w.b by b[m] and w'Cw by 2(Cs)[m] + C[m, m], so a step is O(M^2 E) and
never touches the clips.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from competition.pipeline.ensembling.moments import Centred, block_moments
from competition.pipeline.ensembling.table import Step, format_steps, weight_steps

_EPS = 1e-12


@dataclass(frozen=True)
class CaruanaOptions:
    init: int = 1            # sorted initialisation: start from the `init` best single members
    max_steps: int = 100     # forward steps after the initialisation (patience usually stops it first)
    min_gain: float = 1e-4   # a step only counts as an improvement if it adds more than this
    patience: int = 5        # stop after this many steps without an improvement
    bags: int = 0            # > 0: average this many selections, each on a random subset of the library
    bag_fraction: float = 0.5
    seed: int = 0


@dataclass
class Selection:
    counts: dict[str, int]    # times each member was added (empty with bagging)
    weights: dict[str, float]
    score: float              # in-sample objective of the returned ensemble
    steps: list[Step] = field(default_factory=list)

    def weight_vector(self, names: list[str]) -> np.ndarray:
        return np.array([self.weights.get(n, 0.0) for n in names])

    def blend(self, names: list[str], preds: np.ndarray) -> np.ndarray:
        """Weighted mean of (M, N, E) member predictions."""
        return np.tensordot(self.weight_vector(names), preds, axes=1)

    def table(self, metric: str = "mean_pcc") -> str:
        return format_steps(self.steps, metric)


def _mean_pcc(num: np.ndarray, var: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Mean over emotions (axis 0) of num / sqrt(var * vy); 0 where a side is constant."""
    vy = np.clip(vy, 0, None).reshape((-1,) + (1,) * (num.ndim - 1))
    den = np.sqrt(np.clip(var, 0, None) * vy)
    return np.where(den > _EPS, num / np.where(den > _EPS, den, 1.0), 0.0).mean(0)


def greedy_counts(stats: Centred, opts: CaruanaOptions) -> tuple[np.ndarray, list[tuple[int, float]], int]:
    """One forward selection. Returns (counts of the best ensemble seen, the full trail of
    (member index, score) steps, how many trail steps that best ensemble uses)."""
    c, b = stats.c, stats.b
    m = stats.n_members
    diag = np.einsum("emm->em", c)
    single = _mean_pcc(b, diag, stats.vy)
    num = np.zeros(len(b))      # w.b per emotion for the running counts w
    var = np.zeros(len(b))      # w'Cw
    cw = np.zeros_like(b)       # C w, (E, M)
    trail: list[tuple[int, float]] = []

    def add(i: int) -> float:
        nonlocal num, var, cw
        num = num + b[:, i]
        var = var + 2 * cw[:, i] + diag[:, i]
        cw = cw + c[:, :, i]
        return float(_mean_pcc(num, var, stats.vy))

    for i in np.argsort(-single, kind="stable")[: max(1, min(opts.init, m))]:
        trail.append((int(i), add(int(i))))
    best_score, best_len, stale = trail[-1][1], len(trail), 0
    for _ in range(opts.max_steps):
        cand = _mean_pcc(num[:, None] + b, var[:, None] + 2 * cw + diag, stats.vy)
        j = int(np.argmax(cand))
        trail.append((j, add(j)))
        if trail[-1][1] > best_score + opts.min_gain:
            best_score, best_len, stale = trail[-1][1], len(trail), 0
        else:
            stale += 1
            if stale >= opts.patience:
                break
    counts = np.bincount([i for i, _ in trail[:best_len]], minlength=m)
    return counts, trail, best_len


def caruana_weights(stats: Centred, opts: CaruanaOptions = CaruanaOptions()) -> np.ndarray:
    """(M,) non-negative weights summing to 1; with bagging, the mean of the bags' weights."""
    m = stats.n_members
    if opts.bags <= 0:
        counts, _, _ = greedy_counts(stats, opts)
        return counts / counts.sum()
    rng = np.random.default_rng(opts.seed)
    size = min(m, max(1, int(round(opts.bag_fraction * m))))
    w = np.zeros(m)
    for _ in range(opts.bags):
        idx = np.sort(rng.choice(m, size, replace=False))
        counts, _, _ = greedy_counts(stats.members(idx), opts)
        w[idx] += counts / counts.sum()
    return w / opts.bags


def select_from_stats(stats: Centred, names: list[str], opts: CaruanaOptions = CaruanaOptions()) -> Selection:
    """Caruana selection on precomputed statistics, with the step table."""
    if len(names) != stats.n_members:
        raise ValueError(f"{len(names)} names for {stats.n_members} members")
    counts = np.zeros(len(names), int)  # stays 0 with bagging: weights are then means over bags
    if opts.bags > 0:
        w = caruana_weights(stats, opts)
        steps = weight_steps(stats, names, w)
    else:
        counts, trail, best_len = greedy_counts(stats, opts)
        w = counts / counts.sum()
        steps, prev = [], 0.0
        for k, (i, s) in enumerate(trail):
            steps.append(Step(names[i], float(w[i]), s, 0.0 if k == 0 else s - prev, kept=k < best_len))
            prev = s
    score = float(stats.pcc(w).mean())
    return Selection(counts={names[i]: int(counts[i]) for i in np.flatnonzero(counts)},
                     weights={names[i]: float(w[i]) for i in np.flatnonzero(w > 0)},
                     score=score, steps=steps)


def caruana_select(names: list[str], preds: np.ndarray, y: np.ndarray,
                   opts: CaruanaOptions = CaruanaOptions()) -> Selection:
    """preds (M, N, E), y (N, E): select on all clips (the objective is mean PCC over emotions)."""
    stats = block_moments(preds, y, np.zeros(len(y), int))[0].centred()
    return select_from_stats(stats, names, opts)
