"""Within-subject standardisation of stored features (config key `subject_norm: true`).

The person is the largest source of variance in affect data (voice, face, room, expressivity). Every
feature column of a unit is standardised by the mean and std of that column over all the subject's units
of every split (Train, Val and Test; rows that are real, for sequences), so a model sees how a clip
differs from the person's own usual, not who the person is. Only features and subject ids are read,
never labels. A subject with fewer than MIN_CLIPS stored clips has no usable statistics of its own and
takes the global ones (all units of all subjects). Whether this helps is left to cross-validation."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from competition.features.registry import FeatureOutput
from competition.features.store import FeatureStore

MIN_CLIPS = 2
GLOBAL = object()  # key of the all-subjects statistics


def _moments(x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, mean, sum of squared deviations) of the rows of x, in float64."""
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    return len(x), mean, ((x - mean) ** 2).sum(0)


def _pool(parts: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the union of row sets from their moments (Chan et al.'s parallel update)."""
    n = np.array([p[0] for p in parts], np.float64)
    means = np.stack([p[1] for p in parts])
    mean = (n[:, None] * means).sum(0) / n.sum()
    ss = sum(p[2] for p in parts) + (n[:, None] * (means - mean) ** 2).sum(0)
    std = np.sqrt(ss / n.sum())
    return mean, np.where(std > 1e-6, std, 1.0)  # a constant column is centred, not blown up


class SubjectNorm:
    """Standardises each stored unit's feature by its subject's statistics, computed once per feature
    store from every unit in `subject_of` (unit id -> subject)."""

    def __init__(self, subject_of: Mapping[str, str]):
        self.subject_of = dict(subject_of)
        self.stats: dict[str, dict] = {}  # store key -> subject (or GLOBAL) -> (mean, std)

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
        stats = {GLOBAL: _pool([p for parts in per.values() for p in parts])} if per else {}
        stats.update({s: _pool(parts) for s, parts in per.items() if len(parts) >= MIN_CLIPS})
        return stats

    def apply(self, store: FeatureStore, unit: str, out: FeatureOutput | None) -> FeatureOutput | None:
        if out is None:
            return None
        if unit not in self.subject_of:
            raise KeyError(f"unit {unit!r} has no subject in the subjects file; every clip needs one")
        if store.key not in self.stats:
            self.stats[store.key] = self._fit(store)
        stats = self.stats[store.key]
        mean, std = stats.get(self.subject_of[unit], stats[GLOBAL])
        return FeatureOutput(((out.x - mean) / std).astype(np.float32), out.t, out.mask, out.info)
