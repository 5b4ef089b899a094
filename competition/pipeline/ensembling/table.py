"""The step table printed for every blend and the modality table (blend weight per face / audio).
More: docs/PIPELINE.md, "Step tables: table.py"."""
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


def format_steps(steps: list[Step], metric: str = "mean_pcc", modalities: dict[str, str] | None = None) -> str:
    """The step table; with `modalities` (member -> modality) a modality column too."""
    width = max([len(s.member) for s in steps] + [6]) + 2
    mod = (lambda s: f" {modalities.get(s.member, '?'):<10}") if modalities else (lambda s: "")
    lines = [f"{'step':>4}  {'member':<{width}}{' modality  ' if modalities else ''} {'weight':>7} {metric:>9} "
             f"{'gain':>8}"]
    for i, s in enumerate(steps):
        name = ("  " if i == 0 else "+ ") + s.member
        gain = "" if i == 0 else f"{s.gain:+.4f}"
        note = "" if s.kept else "  (after the best seen: not kept)"
        lines.append(f"{i + 1:>4}  {name:<{width}}{mod(s)} {s.weight:>7.3f} {s.score:>9.4f} {gain:>8}{note}")
    return "\n".join(lines)


def modality_rows(names: list[str], weights: np.ndarray, scores: dict[str, float],
                  modalities: dict[str, str]) -> list[dict]:
    """Per modality: the blend's weight on its members (mean over emotions), its members in the blend
    and in the library, and its best single member's OOF score."""
    w = np.atleast_2d(np.asarray(weights, np.float64)).mean(0)
    rows = []
    for mod in sorted(set(modalities.get(n, "?") for n in names)):
        idx = [i for i, n in enumerate(names) if modalities.get(n, "?") == mod]
        best = max(idx, key=lambda i: scores.get(names[i], float("-inf")))
        rows.append({"modality": mod, "weight": float(w[idx].sum()),
                     "members_in_blend": [names[i] for i in idx if w[i] > 0], "n_library": len(idx),
                     "best_single": names[best], "best_single_score": float(scores.get(names[best], float("nan")))})
    return sorted(rows, key=lambda r: -r["weight"])


def format_modalities(rows: list[dict], metric: str = "mean_pcc") -> str:
    width = max([len(r["modality"]) for r in rows] + [8]) + 2
    lines = [f"  {'modality':<{width}} {'weight':>7}  {'in blend':>8}  best single ({metric})"]
    for r in rows:
        n_in = f"{len(r['members_in_blend'])} of {r['n_library']}"
        lines.append(f"  {r['modality']:<{width}} {r['weight']:>7.3f}  {n_in:>8}  {r['best_single']} "
                     f"{r['best_single_score']:.4f}")
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
