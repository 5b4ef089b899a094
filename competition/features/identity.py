"""What identifies a person and their room rather than their emotion, for estimating subjects:
`face_identity` (dlib's face descriptor of a few aligned crops) and `scene` (the background with the person
masked). Both read the `faces` cache through `face_track()`. Details: docs/FEATURES.md, "Identity"."""
from __future__ import annotations

from typing import Any

import numpy as np

from competition.features.registry import ClipMedia, FeatureError, FeatureOutput, register_extractor

# Where the person is assumed to be when no face was found (fractions of width / height).
_CENTRE_BOX = np.array([0.3, 0.1, 0.7, 0.6], np.float32)


def _lab(img: np.ndarray) -> np.ndarray:
    """uint8/float RGB (..., 3) in 0..255 -> float32 CIE-Lab (L 0..100, a/b about -128..127)."""
    import cv2
    rgb = np.clip(np.asarray(img, np.float32) / 255.0, 0.0, 1.0)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)


def identity_frames(track, k: int) -> list[int]:
    """Up to k frames to describe the face by: the real frames of the best kind (found on the frame itself
    with landmarks, then found without them, then interpolated), spread evenly over time."""
    from competition.features.faces import DETECTED_CODES, DETECTOR_CODES
    mask = np.asarray(track.mask, bool)
    found = np.isin(track.source, [*DETECTED_CODES, DETECTOR_CODES["aligned"]]) & mask
    landmarks = np.isfinite(np.asarray(track.landmarks).reshape(len(mask), -1)).all(1)
    tier = next((t for t in (found & landmarks, found, mask) if t.any()), None)
    if tier is None or k < 1:
        return []
    real = np.flatnonzero(tier)
    return [int(i) for i in real[np.unique(np.linspace(0, len(real) - 1, min(k, len(real))).round().astype(int))]]


@register_extractor("face_identity", kind="vector", defaults={"faces": {}, "frames": 3}, modality="face",
                    version=2)
def face_identity(clip: ClipMedia, faces: dict[str, Any], frames: int) -> FeatureOutput:
    """dlib ResNet face descriptor of the aligned crops, mean over up to 3 of the clip's real frames (128-D)."""
    from competition.features.dlib_face import face_descriptor
    from competition.features.faces import FACE_DEFAULTS, face_track
    track = face_track(clip, faces)
    chosen = identity_frames(track, int(frames))
    if not chosen:
        raise FeatureError("no face in any sampled frame: no face identity")
    margin = float({**FACE_DEFAULTS, **faces}["margin"])
    desc = np.stack([face_descriptor(track.crops[i], margin) for i in chosen])
    spread = float(np.linalg.norm(desc - desc.mean(0), axis=1).mean())
    return FeatureOutput(x=desc.mean(0), info={"face_frames": len(chosen), "spread": round(spread, 4)})


def person_mask(h: int, w: int, box: np.ndarray | None, pad: float) -> np.ndarray:
    """(h, w) bool, True on the person: the face box (fractions) grown by `pad` of its size on each
    side, and below it a torso twice the face width down to the frame bottom."""
    x0, y0, x1, y1 = (_CENTRE_BOX if box is None else np.asarray(box, np.float32)) * np.array([w, h, w, h])
    bw, bh = x1 - x0, y1 - y0
    m = np.zeros((h, w), bool)
    m[int(max(0, y0 - pad * bh)): int(min(h, y1 + pad * bh)) + 1,
      int(max(0, x0 - pad * bw)): int(min(w, x1 + pad * bw)) + 1] = True
    cx = (x0 + x1) / 2
    m[int(max(0, y1)):, int(max(0, cx - bw)): int(min(w, cx + bw)) + 1] = True
    return m


def scene_vector(frame: np.ndarray, person: np.ndarray, grid: tuple[int, int], hue_bins: int,
                 sat_bins: int) -> np.ndarray:
    """One frame's background: per-cell Lab means (cells without background take the background mean),
    hue x saturation histogram of the background (sums to 1), background mean L and L std."""
    import cv2
    bg = ~person
    if bg.sum() < 16:
        bg = np.ones_like(bg)  # the person fills the frame: the whole frame is all we have
    lab = _lab(frame)
    h, w = bg.shape
    gw, gh = grid
    ys, xs = np.linspace(0, h, gh + 1).round().astype(int), np.linspace(0, w, gw + 1).round().astype(int)
    overall = lab[bg].mean(0)
    cells = np.empty((gh, gw, 3), np.float32)
    for a in range(gh):
        for b in range(gw):
            sel = bg[ys[a]:ys[a + 1], xs[b]:xs[b + 1]]
            cells[a, b] = lab[ys[a]:ys[a + 1], xs[b]:xs[b + 1]][sel].mean(0) if sel.any() else overall
    hsv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV)[bg].astype(np.int64)
    hi = np.minimum(hsv[:, 0] * hue_bins // 180, hue_bins - 1)
    si = np.minimum(hsv[:, 1] * sat_bins // 256, sat_bins - 1)
    hist = np.bincount(hi * sat_bins + si, minlength=hue_bins * sat_bins).astype(np.float32)
    hist /= max(1.0, hist.sum())
    return np.concatenate([cells.ravel(), hist, [overall[0], lab[bg][:, 0].std()]]).astype(np.float32)


def _box_at(track, t: float) -> np.ndarray | None:
    """The face box of the real track frame nearest to time t (None if the clip has no face)."""
    real = np.flatnonzero(np.asarray(track.mask, bool))
    if len(real) == 0:
        return None
    return track.boxes[real[np.argmin(np.abs(track.times[real] - t))]]


@register_extractor("scene", kind="vector",
                    defaults={"faces": {}, "n": 6, "grid": [4, 3], "hue_bins": 12, "sat_bins": 3, "pad": 0.35,
                              "max_side": 320})
def scene(clip: ClipMedia, faces: dict[str, Any], n: int, grid: list[int], hue_bins: int, sat_bins: int,
          pad: float, max_side: int) -> FeatureOutput:
    """Background with the person masked out: Lab layout on a 4x3 grid + hue x saturation histogram (74-D)."""
    from competition.features.faces import DETECTOR_CODES, face_track
    from competition.features.video import read_sampled
    track = face_track(clip, faces)
    if (np.asarray(track.source) == DETECTOR_CODES["aligned"]).any():
        raise FeatureError("scene needs full frames; this dataset has only aligned face crops")
    vf = read_sampled(clip.mp4, "uniform", n=int(n), max_side=int(max_side))
    if len(vf.frames) == 0:
        raise FeatureError(f"{clip.mp4}: no decodable frames")
    h, w = vf.frames.shape[1:3]
    rows = [scene_vector(f, person_mask(h, w, _box_at(track, float(t)), float(pad)), (int(grid[0]), int(grid[1])),
                         int(hue_bins), int(sat_bins)) for f, t in zip(vf.frames, vf.times)]
    return FeatureOutput(x=np.median(np.stack(rows), axis=0).astype(np.float32),
                         info={"frames": len(rows), "face_found": bool(np.asarray(track.mask).any())})
