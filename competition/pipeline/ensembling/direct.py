"""Blends judged by any task metric, scored directly on the predictions (CCC for VA, macro-F1 of
blended class probabilities for EXPR, or whatever a new task scores). Same contract as the moment-based
methods (methods.py, nested.py): a `Blender` with non-negative weights summing to 1, an in-sample and a
nested-CV score, a step table; only slower per step (each candidate is scored on the samples), which
is fine for the few members a library holds.

    best_single     the member with the best score (the baseline every blend must beat)
    mean            every member with equal weight
    caruana         ensemble selection with replacement, scored by the task metric
    caruana_bagged  the same, averaged over bags of random halves of the library
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from competition.pipeline.ensembling.caruana import CaruanaOptions
from competition.pipeline.ensembling.library import Library
from competition.pipeline.ensembling.methods import DEFAULT_BAGS, Blender
from competition.pipeline.ensembling.nested import Evaluation, split_for_nested
from competition.pipeline.ensembling.table import Step

DIRECT_METHODS: tuple[str, ...] = ("best_single", "mean", "caruana", "caruana_bagged")
Scorer = Callable[[np.ndarray, np.ndarray], float]


def _blend(preds: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.tensordot(w, preds, axes=1)


def greedy_direct(preds: np.ndarray, y: np.ndarray, score: Scorer, opts: CaruanaOptions
                  ) -> tuple[np.ndarray, list[tuple[int, float]], int]:
    """Forward selection with replacement on (M, n, E) predictions: (counts of the best ensemble
    seen, the trail of (member, score) steps, how many trail steps the best ensemble uses)."""
    m = len(preds)
    single = np.array([score(p, y) for p in preds])
    total = np.zeros(preds.shape[1:])
    count, trail = 0, []
    for i in np.argsort(-single, kind="stable")[: max(1, min(opts.init, m))]:
        total, count = total + preds[i], count + 1
        trail.append((int(i), score(total / count, y)))
    best, best_len, stale = trail[-1][1], len(trail), 0
    for _ in range(opts.max_steps):
        cand = [score((total + preds[j]) / (count + 1), y) for j in range(m)]
        j = int(np.argmax(cand))
        total, count = total + preds[j], count + 1
        trail.append((j, cand[j]))
        if cand[j] > best + opts.min_gain:
            best, best_len, stale = cand[j], len(trail), 0
        else:
            stale += 1
            if stale >= opts.patience:
                break
    return np.bincount([i for i, _ in trail[:best_len]], minlength=m), trail, best_len


def _steps_of(names: list[str], w: np.ndarray, preds: np.ndarray, y: np.ndarray, score: Scorer) -> list[Step]:
    """A fixed weighting shown as members added by decreasing weight (renormalised so far)."""
    steps, prev = [], 0.0
    order = [i for i in np.argsort(-w, kind="stable") if w[i] > 0]
    for k, i in enumerate(order):
        keep = np.zeros(len(w))
        keep[order[: k + 1]] = w[order[: k + 1]]
        s = score(_blend(preds, keep / keep.sum()), y)
        steps.append(Step(names[i], float(w[i]), s, 0.0 if k == 0 else s - prev))
        prev = s
    return steps


def fit_direct(method: str, names: list[str], preds: np.ndarray, y: np.ndarray, score: Scorer,
               opts: CaruanaOptions = CaruanaOptions(), table: bool = True) -> Blender:
    """Fit `method` on (M, n, E) member predictions of the samples it may look at."""
    m, e = len(preds), preds.shape[2]
    steps: list[Step] = []
    if method == "best_single":
        w = np.eye(m)[int(np.argmax([score(p, y) for p in preds]))]
    elif method == "mean":
        w = np.full(m, 1.0 / m)
    elif method == "caruana":
        counts, trail, best_len = greedy_direct(preds, y, score, replace(opts, bags=0))
        w = counts / counts.sum()
        prev = 0.0
        for k, (i, s) in enumerate(trail):
            steps.append(Step(names[i], float(w[i]), s, 0.0 if k == 0 else s - prev, kept=k < best_len))
            prev = s
        return Blender(method, list(names), np.tile(w, (e, 1)), steps=steps if table else [])
    elif method == "caruana_bagged":
        rng = np.random.default_rng(opts.seed)
        size = min(m, max(1, int(round(opts.bag_fraction * m))))
        w = np.zeros(m)
        bags = opts.bags or DEFAULT_BAGS
        for _ in range(bags):
            idx = np.sort(rng.choice(m, size, replace=False))
            counts, _, _ = greedy_direct(preds[idx], y, score, replace(opts, bags=0))
            w[idx] += counts / counts.sum()
        w = w / bags
    else:
        raise ValueError(f"unknown blend method {method!r} for this task; known: {list(DIRECT_METHODS)}")
    return Blender(method, list(names), np.tile(w, (e, 1)),
                   steps=_steps_of(names, w, preds, y, score) if table else [])


class DirectNestedCV:
    """Nested CV like nested.NestedCV, for a metric that is not a function of centred moments."""

    methods = DIRECT_METHODS

    def __init__(self, lib: Library, score: Scorer, blocks: np.ndarray | None = None,
                 opts: CaruanaOptions = CaruanaOptions()):
        self.lib, self.score, self.opts = lib, score, opts
        self.blocks, self.note = split_for_nested(lib.fold if blocks is None else blocks)

    def fit(self, method: str, rows: np.ndarray | None = None) -> Blender:
        full = rows is None
        rows = np.arange(len(self.lib.y)) if full else rows
        return fit_direct(method, self.lib.names, self.lib.oof[:, rows], self.lib.y[rows], self.score,
                          self.opts, table=full)

    def evaluate(self, method: str) -> Evaluation:
        y = self.lib.y
        full = self.fit(method)
        inside = self.score(full.apply(self.lib.oof), y)
        held = np.empty_like(y)
        for k in np.unique(self.blocks):
            test = self.blocks == k
            held[test] = self.fit(method, np.flatnonzero(~test)).apply(self.lib.oof[:, test])
        nested = self.score(held, y)
        per_fold = {int(k): self.score(held[self.blocks == k], y[self.blocks == k]) for k in np.unique(self.blocks)}
        return Evaluation(method, full, inside, nested, per_fold, {"none": (inside, nested)})
