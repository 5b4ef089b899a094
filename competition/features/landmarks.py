"""`landmark_geometry`: dlib's 68 points on each cached aligned face crop in the face's own frame (origin
between the eyes, eye line as x, unit the inter-ocular distance; y down, left/right image sides) plus
MEASURES; frames without a face interpolated in time. docs/FEATURES.md, "Hand-crafted face appearance"."""
from __future__ import annotations

from typing import Any

import numpy as np

from competition.features.registry import ClipMedia, FeatureOutput, register_extractor

N_POINTS = 68
# index of each point's mirror image (iBUG 300-W numbering)
MIRROR = np.r_[16:-1:-1, 26:16:-1, 27:31, 35:30:-1, 45:41:-1, 47:45:-1, 39:35:-1, 41:39:-1,
               54:47:-1, 59:54:-1, 64:59:-1, 67:64:-1]
MEASURES: tuple[str, ...] = (
    "brow_left", "brow_right",            # brow (mean of its 5 points) above the eye line
    "brow_gap",                           # between the inner brow ends (a frown pulls them together)
    "eye_open_left", "eye_open_right",    # lid distance / eye width (eye aspect ratio)
    "mouth_width",                        # lip corner to lip corner
    "mouth_open",                         # inner upper lip to inner lower lip
    "lip_corner_left", "lip_corner_right",  # corner above the mouth centre (smile +, depressor -)
    "upper_lip",                          # upper lip below the nose base (an upper-lip raise lowers it)
    "chin",                               # chin below the eye line (jaw drop)
    "nose_x",                             # nose tip off the eye midpoint along the eye line (yaw)
)
COLUMNS: tuple[str, ...] = tuple(f"{a}{i}" for i in range(N_POINTS) for a in "xy") + MEASURES


def _dist(p: np.ndarray, a: int, b: int) -> float:
    return float(np.hypot(*(p[a] - p[b])))


def geometry(points: np.ndarray) -> np.ndarray:
    """(len(COLUMNS),) from one face's 68 points (pixels); NaN when the eyes coincide."""
    p = np.asarray(points, np.float64)
    left, right = (p[36] + p[39]) / 2, (p[42] + p[45]) / 2  # eye corners: the lids do not move them
    axis = right - left
    iod = float(np.hypot(*axis))
    if iod < 1e-6:
        return np.full(len(COLUMNS), np.nan, np.float32)
    c, s = axis / iod
    q = (p - (left + right) / 2) @ np.array([[c, -s], [s, c]]) / iod  # rotate the eye line onto x
    eye_open = [(_dist(q, a + 1, a + 5) + _dist(q, a + 2, a + 4)) / (2 * max(_dist(q, a, a + 3), 1e-6))
                for a in (36, 42)]
    mouth_y = (q[62, 1] + q[66, 1]) / 2
    m = [-q[17:22, 1].mean(), -q[22:27, 1].mean(),
         _dist(q, 21, 22), *eye_open, _dist(q, 48, 54), _dist(q, 62, 66),
         mouth_y - q[48, 1], mouth_y - q[54, 1], q[51, 1] - q[33, 1], q[8, 1], q[30, 0]]
    return np.concatenate([q.ravel(), m]).astype(np.float32)


def geometry_rows(crops: np.ndarray, margin: float) -> np.ndarray:
    """(T, len(COLUMNS)) geometry of each aligned crop."""
    from competition.features.dlib_face import crop_shape
    rows = [geometry(crop_shape(c, margin, N_POINTS)) for c in crops]
    return np.stack(rows) if rows else np.zeros((0, len(COLUMNS)), np.float32)


def _fill_time(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate NaN rows over time; (filled, rows that were known). All-NaN -> zeros."""
    known = np.isfinite(x).all(1)
    x = x.copy()
    if not known.any():
        return np.zeros_like(x), known
    for j in range(x.shape[1]):
        x[:, j] = np.interp(t, t[known], x[known, j])
    return x, known


@register_extractor("landmark_geometry", kind="sequence", defaults={"faces": {}}, modality="face", version=2)
def landmark_geometry(clip: ClipMedia, faces: dict[str, Any]) -> FeatureOutput:
    """dlib's 68 face points in the eye frame (IOD units) + brow/eye/mouth measures per frame (148-D)."""
    from competition.features.faces import FACE_DEFAULTS, face_track
    track = face_track(clip, faces)
    mask = np.asarray(track.mask, bool)
    x = np.full((len(mask), len(COLUMNS)), np.nan, np.float32)
    if mask.any():
        x[mask] = geometry_rows(track.crops[mask], float({**FACE_DEFAULTS, **faces}["margin"]))
    x, known = _fill_time(x, np.asarray(track.times, np.float64))
    return FeatureOutput(x=x, t=track.times, mask=mask & bool(known.any()),
                         info={"landmark_rate": round(float(known.mean()), 4) if len(known) else 0.0})
