"""Sufficient statistics for Pearson's r of any linear blend of library members.
More: docs/PIPELINE.md, "Moments for blends: moments.py"."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-12


@dataclass
class Moments:
    """Raw sums over a block of clips. Predictions and labels are shifted by a common reference
    (the library mean) before summing, which keeps the later centring numerically exact."""

    n: float
    sp: np.ndarray     # (E, M)     sum of predictions
    spp: np.ndarray    # (E, M, M)  sum of pairwise products
    spy: np.ndarray    # (E, M)     sum of prediction x label
    sy: np.ndarray     # (E,)
    syy: np.ndarray    # (E,)

    def __add__(self, o: "Moments") -> "Moments":
        return Moments(self.n + o.n, self.sp + o.sp, self.spp + o.spp, self.spy + o.spy, self.sy + o.sy,
                       self.syy + o.syy)

    def __sub__(self, o: "Moments") -> "Moments":
        return Moments(self.n - o.n, self.sp - o.sp, self.spp - o.spp, self.spy - o.spy, self.sy - o.sy,
                       self.syy - o.syy)

    def centred(self) -> "Centred":
        n = max(self.n, 1.0)
        c = self.spp - self.sp[:, :, None] * self.sp[:, None, :] / n
        b = self.spy - self.sp * self.sy[:, None] / n
        vy = self.syy - self.sy ** 2 / n
        return Centred(c, b, vy)


@dataclass
class Centred:
    """Centred cross-products: c (E, M, M) of predictions, b (E, M) with the labels, vy (E,) of labels."""

    c: np.ndarray
    b: np.ndarray
    vy: np.ndarray

    @property
    def n_members(self) -> int:
        return self.c.shape[1]

    def members(self, idx: np.ndarray) -> "Centred":
        """The statistics of a subset of the library (for bagging)."""
        return Centred(self.c[:, idx][:, :, idx], self.b[:, idx], self.vy)

    def target(self, e: int) -> "Centred":
        """The statistics of one emotion (for per-emotion selection)."""
        return Centred(self.c[e:e + 1], self.b[e:e + 1], self.vy[e:e + 1])

    def single_pcc(self) -> np.ndarray:
        """(E, M): every member's own PCC per emotion (0 where a side is constant)."""
        den = np.sqrt(np.clip(np.einsum("emm->em", self.c), 0, None) * np.clip(self.vy, 0, None)[:, None])
        return np.where(den > _EPS, self.b / np.where(den > _EPS, den, 1.0), 0.0)

    def pcc(self, w: np.ndarray) -> np.ndarray:
        """(E,) PCC per emotion of the blend with weights w: (M,) shared or (E, M) per emotion."""
        w = np.broadcast_to(np.asarray(w, np.float64), self.b.shape)
        num = np.einsum("em,em->e", w, self.b)
        var = np.einsum("em,emk,ek->e", w, self.c, w)
        den = np.sqrt(np.clip(var, 0, None) * np.clip(self.vy, 0, None))
        return np.where(den > _EPS, num / np.where(den > _EPS, den, 1.0), 0.0)


def block_moments(preds: np.ndarray, y: np.ndarray, blocks: np.ndarray) -> dict[int, Moments]:
    """Moments per block id. preds (M, N, E), y (N, E), blocks (N,) ints (e.g. the fold of each clip).
    Cost: one (M x n) @ (n x M) product per emotion and block, i.e. O(M^2 N E) in BLAS."""
    preds = np.asarray(preds, np.float64)
    y = np.asarray(y, np.float64)
    blocks = np.asarray(blocks)
    if preds.ndim != 3 or preds.shape[1:] != y.shape or len(blocks) != len(y):
        raise ValueError(f"shapes do not match: preds {preds.shape}, y {y.shape}, blocks {blocks.shape}")
    order = np.argsort(blocks, kind="stable")
    # (E, M, N) with clips grouped by block, so every block is a contiguous slice
    x = np.ascontiguousarray((preds - preds.mean(axis=1, keepdims=True)).transpose(2, 0, 1)[:, :, order])
    yc = (y - y.mean(0))[order].T
    ids, starts = np.unique(blocks[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    out = {}
    for k, s, t in zip(ids, starts, ends):
        xb, yb = x[:, :, s:t], yc[:, s:t]
        out[int(k)] = Moments(float(t - s), xb.sum(2), np.matmul(xb, xb.transpose(0, 2, 1)),
                              np.einsum("emn,en->em", xb, yb), yb.sum(1), (yb * yb).sum(1))
    return out


def total(parts: dict[int, Moments]) -> Moments:
    it = iter(parts.values())
    acc = next(it)
    for m in it:
        acc = acc + m
    return acc
