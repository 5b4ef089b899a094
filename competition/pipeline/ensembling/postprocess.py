"""Post-processing of blended predictions (max_norm, clip, and the per-subject subject_centre /
subject_z), each kept only where nested CV says it helps. More: docs/PIPELINE.md, "Post-processing:
postprocess.py"."""
from __future__ import annotations

import numpy as np

from competition.data.subjects import within_subject

POSTPROCESS: tuple[str, ...] = ("none", "clip", "max_norm")
SUBJECT_POSTPROCESS: tuple[str, ...] = ("subject_centre", "subject_z")


def postprocess(pred: np.ndarray, kind: str, lo: float = 0.0, hi: float = 1.0,
                subjects: np.ndarray | None = None) -> np.ndarray:
    """(N, E) -> (N, E) post-processed by `kind` (docs/PIPELINE.md); the subject kinds need `subjects`, (N,)
    the subject of each row. A row whose maximum is not positive is left as clipped by max_norm."""
    if kind == "none":
        return pred
    if kind in SUBJECT_POSTPROCESS:
        if subjects is None or len(subjects) != len(pred):
            raise ValueError(f"post-processing {kind!r} needs the subject of each of the {len(pred)} clips "
                             "(a subjects file in the work directory)")
        return np.clip(within_subject(pred, np.asarray(subjects), scale=kind == "subject_z"), lo, hi)
    x = np.clip(pred, lo, hi)
    if kind == "clip":
        return x
    if kind == "max_norm":
        top = x.max(axis=1, keepdims=True)
        return np.where(top > 0, x / np.where(top > 0, top, 1.0) * hi, x)
    raise ValueError(f"unknown post-processing {kind!r}; known: {list(POSTPROCESS + SUBJECT_POSTPROCESS)}")
