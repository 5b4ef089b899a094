"""Post-processing of blended predictions. Hume labels are normalised by each clip's maximum (every
labelled clip has one emotion at 1.0), so rescaling each clip's row to a maximum of 1 can help the
per-emotion PCC; whether it does is decided by nested CV (nested.py), never assumed.

With subjects known (the work directory's subjects file; predictions and subject ids only, never
labels), two per-subject kinds are judged the same way: "subject_centre" moves each subject's mean
prediction to the mean over all clips (a person who reports everything higher or lower, or whose face or
voice shifts every prediction, no longer moves the emotion's PCC), "subject_z" also scales each subject's
spread to the overall one. Statistics are over the clips being post-processed (the OOF clips in nested
CV, the Test clips in a submission), shrunk towards the overall ones for subjects with few clips (the
rule of competition.data.subjects.within_subject, shared with feature normalisation)."""
from __future__ import annotations

import numpy as np

from competition.data.subjects import within_subject

POSTPROCESS: tuple[str, ...] = ("none", "clip", "max_norm")
SUBJECT_POSTPROCESS: tuple[str, ...] = ("subject_centre", "subject_z")


def postprocess(pred: np.ndarray, kind: str, lo: float = 0.0, hi: float = 1.0,
                subjects: np.ndarray | None = None) -> np.ndarray:
    """(N, E) -> (N, E). "clip": to [lo, hi]; "max_norm": clip, then divide each clip's row by its
    maximum (rows whose maximum is not positive are left as clipped); "subject_centre" / "subject_z"
    (need `subjects`, (N,) the subject of each row): per subject, then clipped."""
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
