"""Blends judged by any task metric, scored directly on the predictions (CCC for VA, macro-F1 for EXPR).
More: docs/PIPELINE.md, "Blends scored by any task metric: direct.py"."""
from __future__ import annotations

from typing import Callable

import numpy as np

from competition.pipeline.ensembling.caruana import CaruanaOptions, bagged_weights, forward_selection, trail_steps
from competition.pipeline.ensembling.library import Library
from competition.pipeline.ensembling.methods import DEFAULT_BAGS, Blender
from competition.pipeline.ensembling.nested import Evaluation, split_for_nested
from competition.pipeline.ensembling.table import Step

DIRECT_METHODS: tuple[str, ...] = ("best_single", "mean", "caruana", "caruana_bagged")
Scorer = Callable[[np.ndarray, np.ndarray], float]


class DirectScorer:
    """Any task metric of the running ensemble (the mean of the members added so far), scored on the
    (M, n, E) predictions: one metric evaluation per candidate and step."""

    def __init__(self, preds: np.ndarray, y: np.ndarray, score: Scorer):
        self.preds, self.y, self.score, self.n_members = preds, y, score, len(preds)
        self.total, self.count = np.zeros(preds.shape[1:]), 0

    def single(self) -> np.ndarray:
        return np.array([self.score(p, self.y) for p in self.preds])

    def candidates(self) -> np.ndarray:
        return np.array([self.score((self.total + p) / (self.count + 1), self.y) for p in self.preds])

    def add(self, i: int) -> float:
        self.total, self.count = self.total + self.preds[i], self.count + 1
        return self.score(self.total / self.count, self.y)


def _steps_of(names: list[str], w: np.ndarray, preds: np.ndarray, y: np.ndarray, score: Scorer) -> list[Step]:
    """A fixed weighting shown as members added by decreasing weight (renormalised so far)."""
    steps, prev = [], 0.0
    order = [i for i in np.argsort(-w, kind="stable") if w[i] > 0]
    for k, i in enumerate(order):
        keep = np.zeros(len(w))
        keep[order[: k + 1]] = w[order[: k + 1]]
        s = score(np.tensordot(keep / keep.sum(), preds, axes=1), y)
        steps.append(Step(names[i], float(w[i]), s, 0.0 if k == 0 else s - prev))
        prev = s
    return steps


def fit_direct(method: str, names: list[str], preds: np.ndarray, y: np.ndarray, score: Scorer,
               opts: CaruanaOptions = CaruanaOptions(), table: bool = True) -> Blender:
    """Fit `method` on (M, n, E) member predictions of the samples it may look at."""
    m, e = len(preds), preds.shape[2]
    if method == "best_single":
        w = np.eye(m)[int(np.argmax([score(p, y) for p in preds]))]
    elif method == "mean":
        w = np.full(m, 1.0 / m)
    elif method == "caruana":
        counts, trail, best_len = forward_selection(DirectScorer(preds, y, score), opts)
        w = counts / counts.sum()
        return Blender(method, list(names), np.tile(w, (e, 1)),
                       steps=trail_steps(names, w, trail, best_len) if table else [])
    elif method == "caruana_bagged":
        w = bagged_weights(m, opts, opts.bags or DEFAULT_BAGS,
                           lambda idx: forward_selection(DirectScorer(preds[idx], y, score), opts)[0])
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
        return Evaluation(method, full, inside, nested, per_fold, {"none": (inside, nested)}, {"none": held})
