"""Ensemble selection (Caruana et al. 2004): the n best members to start, forward selection with
replacement and a minimum gain per step, optional bagging, the best ensemble seen returned.
More: docs/PIPELINE.md, "Ensemble selection: caruana.py"."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from competition.pipeline.ensembling.moments import Centred, block_moments
from competition.pipeline.ensembling.table import Step, weight_steps

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


def _mean_pcc(num: np.ndarray, var: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Mean over emotions (axis 0) of num / sqrt(var * vy); 0 where a side is constant."""
    vy = np.clip(vy, 0, None).reshape((-1,) + (1,) * (num.ndim - 1))
    den = np.sqrt(np.clip(var, 0, None) * vy)
    return np.where(den > _EPS, num / np.where(den > _EPS, den, 1.0), 0.0).mean(0)


class GreedyScorer(Protocol):
    """What forward selection needs: scores of the members alone, of the running ensemble plus each
    member, and a way to add one. `MomentScorer` (mean PCC from moments) and the direct scorer of any
    task metric (direct.py) implement it."""
    n_members: int

    def single(self) -> np.ndarray: ...

    def candidates(self) -> np.ndarray: ...

    def add(self, i: int) -> float: ...


class MomentScorer:
    """Mean PCC of the running ensemble from centred moments: O(M^2 E) per step, no clip is touched."""

    def __init__(self, stats: Centred):
        self.stats, self.n_members = stats, stats.n_members
        self.diag = np.einsum("emm->em", stats.c)
        self.num = np.zeros(len(stats.b))      # w.b per emotion for the running counts w
        self.var = np.zeros(len(stats.b))      # w'Cw
        self.cw = np.zeros_like(stats.b)       # C w, (E, M)

    def single(self) -> np.ndarray:
        return _mean_pcc(self.stats.b, self.diag, self.stats.vy)

    def candidates(self) -> np.ndarray:
        return _mean_pcc(self.num[:, None] + self.stats.b, self.var[:, None] + 2 * self.cw + self.diag,
                         self.stats.vy)

    def add(self, i: int) -> float:
        self.num = self.num + self.stats.b[:, i]
        self.var = self.var + 2 * self.cw[:, i] + self.diag[:, i]
        self.cw = self.cw + self.stats.c[:, :, i]
        return float(_mean_pcc(self.num, self.var, self.stats.vy))


def forward_selection(scorer: GreedyScorer, opts: CaruanaOptions) -> tuple[np.ndarray, list[tuple[int, float]], int]:
    """One forward selection with replacement. Returns (counts of the best ensemble seen, the full trail
    of (member index, score) steps, how many trail steps that best ensemble uses)."""
    m = scorer.n_members
    trail = [(int(i), scorer.add(int(i)))
             for i in np.argsort(-scorer.single(), kind="stable")[: max(1, min(opts.init, m))]]
    best_score, best_len, stale = trail[-1][1], len(trail), 0
    for _ in range(opts.max_steps):
        j = int(np.argmax(scorer.candidates()))
        trail.append((j, scorer.add(j)))
        if trail[-1][1] > best_score + opts.min_gain:
            best_score, best_len, stale = trail[-1][1], len(trail), 0
        else:
            stale += 1
            if stale >= opts.patience:
                break
    return np.bincount([i for i, _ in trail[:best_len]], minlength=m), trail, best_len


def bagged_weights(m: int, opts: CaruanaOptions, bags: int,
                   select: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Mean over `bags` selections, each on a random `bag_fraction` of the M members; `select(idx)`
    returns the counts of one selection among the members idx."""
    rng = np.random.default_rng(opts.seed)
    size = min(m, max(1, int(round(opts.bag_fraction * m))))
    w = np.zeros(m)
    for _ in range(bags):
        idx = np.sort(rng.choice(m, size, replace=False))
        counts = select(idx)
        w[idx] += counts / counts.sum()
    return w / bags


def trail_steps(names: list[str], w: np.ndarray, trail: list[tuple[int, float]], best_len: int) -> list[Step]:
    """The step table of one selection: each member added, its final weight, the score and its gain."""
    steps, prev = [], 0.0
    for k, (i, s) in enumerate(trail):
        steps.append(Step(names[i], float(w[i]), s, 0.0 if k == 0 else s - prev, kept=k < best_len))
        prev = s
    return steps


def caruana_weights(stats: Centred, opts: CaruanaOptions = CaruanaOptions()) -> np.ndarray:
    """(M,) non-negative weights summing to 1; with bagging, the mean of the bags' weights."""
    if opts.bags <= 0:
        counts, _, _ = forward_selection(MomentScorer(stats), opts)
        return counts / counts.sum()
    return bagged_weights(stats.n_members, opts, opts.bags,
                          lambda idx: forward_selection(MomentScorer(stats.members(idx)), opts)[0])


def select_from_stats(stats: Centred, names: list[str], opts: CaruanaOptions = CaruanaOptions()) -> Selection:
    """Caruana selection on precomputed statistics, with the step table."""
    if len(names) != stats.n_members:
        raise ValueError(f"{len(names)} names for {stats.n_members} members")
    counts = np.zeros(len(names), int)  # stays 0 with bagging: weights are then means over bags
    if opts.bags > 0:
        w = caruana_weights(stats, opts)
        steps = weight_steps(stats, names, w)
    else:
        counts, trail, best_len = forward_selection(MomentScorer(stats), opts)
        w = counts / counts.sum()
        steps = trail_steps(names, w, trail, best_len)
    score = float(stats.pcc(w).mean())
    return Selection(counts={names[i]: int(counts[i]) for i in np.flatnonzero(counts)},
                     weights={names[i]: float(w[i]) for i in np.flatnonzero(w > 0)},
                     score=score, steps=steps)


def caruana_select(names: list[str], preds: np.ndarray, y: np.ndarray,
                   opts: CaruanaOptions = CaruanaOptions()) -> Selection:
    """preds (M, N, E), y (N, E): select on all clips (the objective is mean PCC over emotions)."""
    stats = block_moments(preds, y, np.zeros(len(y), int))[0].centred()
    return select_from_stats(stats, names, opts)
