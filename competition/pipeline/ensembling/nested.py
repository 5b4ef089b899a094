"""Honest scores for blends: nested CV over the folds the members were trained on.
More: docs/PIPELINE.md, "Nested CV for blends: nested.py"."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from competition.pipeline.ensembling.caruana import CaruanaOptions
from competition.pipeline.ensembling.library import Library
from competition.pipeline.ensembling.methods import METHODS, Blender, fit_blender
from competition.pipeline.ensembling.moments import Moments, block_moments, total
from competition.pipeline.ensembling.postprocess import POSTPROCESS, SUBJECT_POSTPROCESS, postprocess
from competition.core.metrics import mean_pcc

MIN_POST_GAIN = 1e-6  # post-processing must beat "none" by more than this to be kept


@dataclass
class Evaluation:
    method: str
    blender: Blender                          # fitted on all OOF clips, with the chosen post-processing
    in_sample: float                          # that blender scored on the clips it was fitted on
    nested: float                             # pooled held-out score (docs/PIPELINE.md)
    nested_per_fold: dict[int, float]
    by_post: dict[str, tuple[float, float]]   # post-processing -> (in-sample, nested)
    held: dict[str, np.ndarray]               # post-processing -> held-out predictions (N, E)

    @property
    def post(self) -> str:
        return self.blender.post


def pick_post(nested: dict[str, float]) -> str:
    """'none' unless a post-processing beats it by more than MIN_POST_GAIN (in order, the best so far)."""
    post = "none"
    for p in list(nested)[1:]:
        if nested[p] > nested[post] + MIN_POST_GAIN:
            post = p
    return post


def split_for_nested(fold: np.ndarray, n_splits: int = 5, seed: int = 0) -> tuple[np.ndarray, str]:
    """The blocks nested CV uses: the training folds; with a single fold (the official Train/Val scheme)
    a seeded random split of its clips, said so in the returned note."""
    if len(np.unique(fold)) >= 2:
        return np.asarray(fold), "the folds the members were trained on"
    rng = np.random.default_rng(seed)
    blocks = rng.permutation(len(fold)) % n_splits
    return blocks, f"a seeded random {n_splits}-way split of the single validation fold (only one fold)"


class NestedCV:
    """Fold statistics computed once (O(M^2 N E)), then any method is fitted per fold in O(M^2 E)."""

    methods = METHODS
    score = staticmethod(mean_pcc)

    def __init__(self, lib: Library, blocks: np.ndarray | None = None, opts: CaruanaOptions = CaruanaOptions()):
        self.lib = lib
        self.opts = opts
        self.blocks, self.note = split_for_nested(lib.fold if blocks is None else blocks)
        self.parts: dict[int, Moments] = block_moments(lib.oof, lib.y, self.blocks)
        self.all = total(self.parts)

    def fit(self, method: str, rows: np.ndarray | None = None, stats: Moments | None = None) -> Blender:
        """Fitted on `rows` (default: all OOF clips) whose statistics are `stats`; the step table only
        for the fit on all clips."""
        full = rows is None
        rows = np.arange(len(self.lib.y)) if full else rows
        stats = self.all if stats is None else stats
        train = (self.lib.oof[:, rows], self.lib.y[rows]) if method == "rank_mean" else None
        return fit_blender(method, stats.centred(), self.lib.names, train, self.opts, table=full)

    def held_out(self, method: str) -> np.ndarray:
        """(N, E) predictions of every OOF clip by the method fitted without that clip's fold."""
        out = np.empty_like(self.lib.y)
        for k, part in self.parts.items():
            test = self.blocks == k
            blender = self.fit(method, np.flatnonzero(~test), self.all - part)
            out[test] = blender.apply(self.lib.oof[:, test])
        return out

    def evaluate(self, method: str) -> Evaluation:
        y = self.lib.y
        full = self.fit(method)
        inside, held = full.apply(self.lib.oof), self.held_out(method)
        subjects = self.lib.subjects
        kinds = POSTPROCESS + (SUBJECT_POSTPROCESS if subjects is not None else ())
        helds = {p: postprocess(held, p, subjects=subjects) for p in kinds}
        by_post = {p: (mean_pcc(postprocess(inside, p, subjects=subjects), y), mean_pcc(helds[p], y)) for p in kinds}
        post = pick_post({p: s[1] for p, s in by_post.items()})
        per_fold = {k: mean_pcc(helds[post][self.blocks == k], y[self.blocks == k]) for k in self.parts}
        return Evaluation(method, full.with_post(post), by_post[post][0], by_post[post][1], per_fold, by_post,
                          helds)
