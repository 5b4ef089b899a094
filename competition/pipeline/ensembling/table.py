"""The step table printed for every blend: member, weight, OOF mean PCC of the blend so far, gain.
Caruana's table lists its forward steps; any other weighting is shown by adding members in order of
decreasing weight (weights renormalised over the members added so far)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from competition.pipeline.ensembling.moments import Centred


@dataclass
class Step:
    member: str
    weight: float      # the member's weight in the returned blend (mean over emotions if per-emotion)
    score: float       # blend score after this step
    gain: float        # score minus the previous step's score (0 for the first step)
    kept: bool = True  # False for steps after the best ensemble seen (tried, not returned)


def format_steps(steps: list[Step], metric: str = "mean_pcc") -> str:
    width = max([len(s.member) for s in steps] + [6]) + 2
    lines = [f"{'step':>4}  {'member':<{width}} {'weight':>7} {metric:>9} {'gain':>8}"]
    for i, s in enumerate(steps):
        name = ("  " if i == 0 else "+ ") + s.member
        gain = "" if i == 0 else f"{s.gain:+.4f}"
        note = "" if s.kept else "  (after the best seen: not kept)"
        lines.append(f"{i + 1:>4}  {name:<{width}} {s.weight:>7.3f} {s.score:>9.4f} {gain:>8}{note}")
    return "\n".join(lines)


def weight_steps(stats: Centred, names: list[str], weights: np.ndarray) -> list[Step]:
    """Steps of a fixed weighting: members by decreasing (mean) weight, scoring the renormalised
    blend of the members added so far. weights: (M,) shared or (E, M) per emotion."""
    w = np.broadcast_to(np.asarray(weights, np.float64), stats.b.shape)
    mean_w = w.mean(0)
    steps: list[Step] = []
    prev = 0.0
    for k, i in enumerate(np.argsort(-mean_w, kind="stable")):
        if mean_w[i] <= 0:
            break
        keep = np.zeros(len(names), bool)
        keep[np.argsort(-mean_w, kind="stable")[: k + 1]] = True
        score = float(stats.pcc(np.where(keep, w, 0.0)).mean())
        steps.append(Step(names[i], float(mean_w[i]), score, 0.0 if k == 0 else score - prev))
        prev = score
    return steps
