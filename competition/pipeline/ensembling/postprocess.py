"""Post-processing of blended predictions. Hume labels are normalised by each clip's maximum (every
labelled clip has one emotion at 1.0), so rescaling each clip's row to a maximum of 1 can help the
per-emotion PCC; whether it does is decided by nested CV (nested.py), never assumed."""
from __future__ import annotations

import numpy as np

POSTPROCESS: tuple[str, ...] = ("none", "clip", "max_norm")


def postprocess(pred: np.ndarray, kind: str, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """(N, E) -> (N, E). "clip": to [lo, hi]; "max_norm": clip, then divide each clip's row by its
    maximum (rows whose maximum is not positive are left as clipped)."""
    if kind == "none":
        return pred
    x = np.clip(pred, lo, hi)
    if kind == "clip":
        return x
    if kind == "max_norm":
        top = x.max(axis=1, keepdims=True)
        return np.where(top > 0, x / np.where(top > 0, top, 1.0) * hi, x)
    raise ValueError(f"unknown post-processing {kind!r}; known: {list(POSTPROCESS)}")
