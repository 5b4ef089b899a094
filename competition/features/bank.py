"""The feature bank models read from: the stored features an experiment names, by sample id (a clip, or a
frame with its unit's rows around the frame's time), pooled or as sequences."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from competition.features.registry import FeatureError, FeatureOutput
from competition.features.store import FeatureStore, pool_outputs
from competition.features.subject_norm import SubjectNorm
from competition.features.batching import clip_span, row_times, window_bounds

Window = tuple[float, float]


@dataclass(frozen=True)
class Windows:
    """Frame samples: sample id -> (unit, time) via `locate`; a sample sees its unit's feature rows
    within [time - before, time + after] seconds."""
    locate: Callable[[list[str]], tuple[list[str], np.ndarray]]
    before: float
    after: float

    @classmethod
    def of(cls, ds: Any, window: dict[str, float] | None) -> "Windows | None":
        """The windows of a frame dataset (None for clip datasets, whose samples are whole clips)."""
        if ds.units is ds:
            return None
        if not window:
            raise ValueError("a frame task needs a context window: window: {before: S, after: S}")
        return cls(ds.times, float(window.get("before", 0.0)), float(window.get("after", 0.0)))


def _timed(outs: list[FeatureOutput | None]) -> list[tuple[FeatureOutput, np.ndarray] | None]:
    span = clip_span(outs)
    return [None if o is None else (o, row_times(o, span) if o.x.ndim == 2 else np.zeros(0)) for o in outs]


def crop(timed: tuple[FeatureOutput, np.ndarray] | None, lo: float, hi: float) -> FeatureOutput | None:
    """The rows of a sequence within [lo, hi] (with their times); vectors as they are."""
    if timed is None:
        return None
    out, t = timed
    if out.x.ndim == 1:
        return out
    a, b = window_bounds(t, lo, hi)
    return FeatureOutput(out.x[a:b], t[a:b], None if out.mask is None else out.mask[a:b])


def window_stats(timed: tuple[FeatureOutput, np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """`pool(crop(timed, lo[k], hi[k]))` for every window k at once, from prefix sums over the unit's rows
    (O(1) per window instead of O(rows)): (K, 2 * dims) mean and std over the real rows in each window,
    NaN where a window holds none; a vector feature is repeated. Sums run in float64 around the unit's
    mean, so they agree with the direct mean and std to float32 rounding."""
    out, t = timed
    if out.x.ndim == 1:
        return np.repeat(out.x.astype(np.float32)[None], len(lo), axis=0)
    real = np.ones(len(out.x), bool) if out.mask is None else np.asarray(out.mask, bool)
    x = out.x.astype(np.float64)
    centre = x[real].mean(0) if real.any() else np.zeros(x.shape[1])
    xc = np.where(real[:, None], x - centre, 0.0)
    zero = np.zeros((1, x.shape[1]))
    s1 = np.concatenate([zero, np.cumsum(xc, 0)])
    s2 = np.concatenate([zero, np.cumsum(xc * xc, 0)])
    count = np.concatenate([[0], np.cumsum(real)])
    a, b = window_bounds(t, lo, hi)
    n = (count[b] - count[a]).astype(np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0: NaN where a window holds no real row
        mean = (s1[b] - s1[a]) / n
        var = np.maximum((s2[b] - s2[a]) / n - mean * mean, 0.0)
    return np.concatenate([mean + centre, np.sqrt(var)], axis=1).astype(np.float32)


class FeatureBank:
    """Read access to the stored features an experiment names, by sample id: a clip, or with `windows`
    a frame (its unit's rows around the frame's time). With `subjects` (unit -> subject, every unit of
    every split), each unit's features are standardised within its subject (subject_norm.py)."""

    def __init__(self, root: Path | str, specs: list[str | dict], windows: Windows | None = None,
                 subjects: Mapping[str, str] | None = None):
        self.root = Path(root)
        self.specs = list(specs)
        self.windows = windows
        self.norm = None if subjects is None else SubjectNorm(subjects)

    def load(self, store: FeatureStore, unit: str) -> FeatureOutput | None:
        """One unit's stored feature (subject-standardised when the bank has subjects)."""
        out = store.load(unit)
        return out if self.norm is None else self.norm.apply(store, unit, out)

    def stores(self) -> list[FeatureStore]:
        return [FeatureStore.for_spec(self.root, s) for s in self.specs]

    def units(self, ids: list[str]) -> list[str]:
        """The stored unit of each sample (the sample itself for clips)."""
        return list(ids) if self.windows is None else self.windows.locate(list(ids))[0]

    def outputs(self, ids: list[str], used: set[int] | None = None
                ) -> Iterator[tuple[list[FeatureOutput | None], Window | None]]:
        """Per sample: one FeatureOutput per spec (None where missing or not in `used`) and its window."""
        stores = self.stores()
        used = set(range(len(stores))) if used is None else used

        def load(unit: str) -> list[FeatureOutput | None]:
            return [self.load(stores[i], unit) if i in used else None for i in range(len(stores))]

        if self.windows is None:
            for cid in ids:
                yield load(cid), None
            return
        units, times = self.windows.locate(list(ids))
        cached: tuple[str, list] | None = None
        for unit, t in zip(units, times):
            if cached is None or cached[0] != unit:
                cached = (unit, _timed(load(unit)))
            lo, hi = t - self.windows.before, t + self.windows.after
            yield [crop(o, lo, hi) for o in cached[1]], (lo, hi)

    def pooled(self, ids: list[str]) -> np.ndarray:
        """(N, D): every feature pooled to a vector per sample and concatenated; NaN where missing."""
        if not self.specs:
            raise ValueError("this experiment names no features")
        if self.windows is None:
            seqs = self.sequences(ids)
            return np.concatenate([pool_outputs(s, self.root, outs) for s, outs in zip(self.specs, seqs)], axis=1)
        units, times = self.windows.locate(list(ids))
        names, which = np.unique(np.asarray(units, dtype=object), return_inverse=True)
        times = np.asarray(times, np.float64)
        stores = self.stores()
        parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in stores]  # per spec: (rows, stats)
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(len(names) + 1))
        for u, unit in enumerate(names):
            rows = order[bounds[u]:bounds[u + 1]]
            lo, hi = times[rows] - self.windows.before, times[rows] + self.windows.after
            for i, timed in enumerate(_timed([self.load(s, unit) for s in stores])):
                if timed is not None:
                    parts[i].append((rows, window_stats(timed, lo, hi)))
        cols = []
        for spec, got in zip(self.specs, parts):
            if not got:
                raise FeatureError(f"no stored values of feature {spec!r} for these {len(ids)} frames under "
                                   f"{self.root}")
            dim = max(stats.shape[1] for _, stats in got)
            col = np.full((len(ids), dim), np.nan, np.float32)
            for rows, stats in got:
                if stats.shape[1] == dim:  # a unit whose stored dimension differs counts as missing
                    col[rows] = stats
            cols.append(col)
        return np.concatenate(cols, axis=1)

    def sequences(self, ids: list[str]) -> list[list[FeatureOutput | None]]:
        """Per feature spec, one FeatureOutput (or None if extraction failed) per clip."""
        return [[self.load(store, c) for c in ids] for store in self.stores()]
