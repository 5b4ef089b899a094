"""Within-subject standardisation of stored features (config key `subject_norm: true`).
More: docs/SUBJECTS.md, "Within-subject standardisation: subject_norm.py"."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from competition.data.subjects import STD_FLOOR, shrunk_statistics
from competition.features.registry import FeatureOutput
from competition.features.store import FeatureStore


def _moments(x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, mean, sum of squared deviations) of the rows of x, in float64."""
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    return len(x), mean, ((x - mean) ** 2).sum(0)


def _pool(parts: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[int, np.ndarray, np.ndarray]:
    """(clips, mean, variance) of the union of row sets from their moments (Chan et al.'s parallel update)."""
    n = np.array([p[0] for p in parts], np.float64)
    means = np.stack([p[1] for p in parts])
    mean = (n[:, None] * means).sum(0) / n.sum()
    ss = sum(p[2] for p in parts) + (n[:, None] * (means - mean) ** 2).sum(0)
    return len(parts), mean, ss / n.sum()


class SubjectNorm:
    """Standardises each stored unit's feature by its subject's statistics, computed once per feature
    store from every unit in `subject_of` (unit id -> subject)."""

    def __init__(self, subject_of: Mapping[str, str]):
        self.subject_of = dict(subject_of)
        self.stats: dict[str, dict] = {}  # store key -> subject (None: all subjects) -> (mean, std)

    def _fit(self, store: FeatureStore) -> dict:
        per: dict[object, list] = {}
        for unit, subject in self.subject_of.items():
            out = store.load(unit)
            if out is None:
                continue
            x = out.x[None] if out.x.ndim == 1 else out.x[np.ones(len(out.x), bool) if out.mask is None
                                                           else np.asarray(out.mask, bool)]
            if len(x):
                per.setdefault(subject, []).append(_moments(x))
        dims = {p[1].shape for parts in per.values() for p in parts}
        if len(dims) > 1:
            raise ValueError(f"feature {store.key}: units of different widths {sorted(dims)}; re-extract it")
        if not per:
            return {}
        n, mean, var = zip(*(_pool(parts) for parts in per.values()))
        means, stds = shrunk_statistics(n, mean, var)
        _, g_mean, g_var = _pool([p for parts in per.values() for p in parts])
        g_std = np.sqrt(g_var)
        return {None: (g_mean, np.where(g_std > STD_FLOOR, g_std, 1.0)), **dict(zip(per, zip(means, stds)))}

    def apply(self, store: FeatureStore, unit: str, out: FeatureOutput | None) -> FeatureOutput | None:
        if out is None:
            return None
        if unit not in self.subject_of:
            raise KeyError(f"unit {unit!r} has no subject in the subjects file; every clip needs one")
        if store.key not in self.stats:
            self.stats[store.key] = self._fit(store)
        stats = self.stats[store.key]
        mean, std = stats.get(self.subject_of[unit], stats[None])
        return FeatureOutput(((out.x - mean) / std).astype(np.float32), out.t, out.mask, out.info)
