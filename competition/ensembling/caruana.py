"""Ensemble selection (Caruana et al. 2004): forward selection with replacement from a sorted
initialisation, returning the best ensemble seen (not the last), with each step's gain logged."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Step:
    member: str
    score: float
    gain: float


@dataclass
class Selection:
    counts: dict[str, int]
    weights: dict[str, float]
    score: float
    steps: list[Step] = field(default_factory=list)

    def blend(self, names: list[str], preds: np.ndarray) -> np.ndarray:
        """Weighted mean of (M, N, E) member predictions."""
        w = np.array([self.weights.get(n, 0.0) for n in names])
        return np.tensordot(w, preds, axes=1)

    def table(self, metric: str = "PCC") -> str:
        lines = []
        for i, s in enumerate(self.steps):
            prefix = "  " if i == 0 else "+ "
            before = "" if i == 0 else f"{self.steps[i - 1].score:.4f} -> "
            lines.append(f"{prefix}{s.member:<28} {metric} {before}{s.score:.4f}"
                         + ("" if i == 0 else f"  ({s.gain:+.4f})"))
        return "\n".join(lines)


def caruana_select(names: list[str], preds: np.ndarray, y: np.ndarray, score: Callable,
                   max_steps: int = 50, init: int = 1, min_gain: float = 1e-5) -> Selection:
    """preds: (M, N, E). Sorted initialisation with the `init` best members, then add (with
    replacement) whichever member raises the score of the running mean most; stop when no member
    adds `min_gain`. Returns the best ensemble seen."""
    m = len(names)
    single = np.array([score(preds[i], y) for i in range(m)])
    order = np.argsort(-single)
    counts = np.zeros(m, dtype=int)
    total = np.zeros_like(preds[0])
    steps: list[Step] = []
    current = -np.inf
    for i in order[: max(1, init)]:
        counts[i] += 1
        total += preds[i]
        new = score(total / counts.sum(), y)
        steps.append(Step(names[i], new, new - current if np.isfinite(current) else 0.0))
        current = new
    best_counts, best_score = counts.copy(), current
    for _ in range(max_steps):
        n = counts.sum() + 1
        cand = [score((total + preds[i]) / n, y) for i in range(m)]
        j = int(np.argmax(cand))
        if cand[j] - current < min_gain:
            break
        counts[j] += 1
        total += preds[j]
        steps.append(Step(names[j], cand[j], cand[j] - current))
        current = cand[j]
        if current > best_score:
            best_counts, best_score = counts.copy(), current
    w = best_counts / best_counts.sum()
    return Selection(counts={names[i]: int(c) for i, c in enumerate(best_counts) if c},
                     weights={names[i]: float(x) for i, x in enumerate(w) if x > 0},
                     score=float(best_score), steps=steps)
