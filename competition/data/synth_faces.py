"""The face of the synthetic dataset: a real photo whose expression dense displacement fields change
(docs/SYNTHETIC.md); `render_head(bank, act)` draws the canonical head crop for activations `act`."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from competition.data.contract import HUME_EMOTIONS

# Square region of the 512x512 astronaut photo that holds hair, face and neck: x0, y0, side (photo px).
SRC_CROP = (130, 20, 190)
CANON = 160  # side of the canonical head crop
_K = CANON / SRC_CROP[2]

# Landmarks in photo pixels. The 5 points and the box come from facenet_pytorch
# `MTCNN().detect(skimage.data.astronaut(), landmarks=True)`; brows, lips, nostrils and chin were read off a
# 7x zoom of the photo with a 5 px grid. The astronaut is smiling with teeth showing: that is the neutral face.
FACE_BOX_SRC = (181.1, 62.2, 267.7, 172.1)  # x1, y1, x2, y2 (MTCNN)
EYE_L, EYE_R = (205.0, 101.7), (246.8, 103.7)  # MTCNN
MOUTH_L, MOUTH_R = (201.7, 139.2), (245.3, 141.9)  # MTCNN
BROW_L = ((190.0, 93.0), (200.0, 89.0), (213.0, 91.0))  # outer, peak, inner (inspection)
BROW_R = ((260.0, 93.0), (250.0, 89.0), (238.0, 92.0))  # outer, peak, inner (inspection)
UPPER_LIP, LOWER_LIP = (222.0, 139.0), (222.0, 153.0)  # inspection
MOUTH_GAP = (223.0, 146.0)  # between the lips (teeth), inspection
NOSTRIL_L, NOSTRIL_R = (216.0, 131.0), (232.0, 131.0)  # inspection
NOSE_BRIDGE = (225.0, 110.0)  # inspection
CHIN = (224.0, 176.0)  # inspection
# Outline of hair, face and neck (photo px), traced by inspection on a 4x zoom with a 10 px grid.
HEAD_OUTLINE = (
    (212, 21), (240, 21), (262, 28), (280, 40), (294, 58), (301, 80), (300, 100), (291, 116), (276, 130),
    (269, 134), (266, 152), (258, 170), (254, 190), (256, 210), (189, 210), (189, 190), (187, 170),
    (183, 152), (180, 134), (168, 120), (157, 105), (153, 85), (157, 62), (168, 45), (188, 29),
)

# Action-unit-like components, in the order of the activation vector.
COMPONENTS: tuple[str, ...] = (
    "smile",       # AU12 lip-corner puller (+ cheek raise)
    "frown",       # AU15 lip-corner depressor (+ AU17 chin raise)
    "lip_raise",   # AU9/AU10 nose wrinkle, upper-lip raise (+ AU4 brow lowering)
    "brow_raise",  # AU1+AU2 whole brows up
    "brow_inner",  # AU1+AU4 inner brows up and together (worry)
    "eye_widen",   # AU5 upper lids up, lower lids down
    "jaw_drop",    # AU26/27 lower lip and chin down, mouth opens
)

# How much each emotion drives each component (rows: COMPONENTS, columns: HUME_EMOTIONS).
_DRIVE = {
    "smile": {"Amusement": 0.9, "Adoration": 0.6},
    "frown": {"Empathic-Pain": 0.8, "Disgust": 0.5},
    "lip_raise": {"Disgust": 1.0},
    "brow_raise": {"Surprise": 0.8, "Fear": 0.5},
    "brow_inner": {"Anxiety": 0.8, "Empathic-Pain": 0.7, "Fear": 0.3},
    "eye_widen": {"Fear": 0.8, "Surprise": 0.7},
    "jaw_drop": {"Surprise": 0.8, "Amusement": 0.5},
}
EMOTION_TO_AU = np.array([[_DRIVE[c].get(e, 0.0) for e in HUME_EMOTIONS] for c in COMPONENTS],
                         dtype=np.float32)


def to_canon(p: tuple[float, float]) -> tuple[float, float]:
    """Photo pixel -> canonical head crop pixel."""
    return ((p[0] - SRC_CROP[0]) * _K, (p[1] - SRC_CROP[1]) * _K)


def face_box_canon() -> tuple[float, float, float, float]:
    """Face box (cx, cy, w, h) in canonical crop pixels."""
    x1, y1 = to_canon(FACE_BOX_SRC[:2])
    x2, y2 = to_canon(FACE_BOX_SRC[2:])
    return ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)


@dataclass
class FaceBank:
    rgb: np.ndarray      # (S, S, 3) float32, 0..255, the neutral head crop
    alpha: np.ndarray    # (S, S) float32, head + neck mask, feathered
    fields: np.ndarray   # (K, S, S, 2) float32: displacement (dx, dy) in px at activation 1
    shades: np.ndarray   # (K, S, S) float32: relative brightness change at activation 1 (mostly 0)
    has_shade: np.ndarray  # (K,) bool
    grid: np.ndarray     # (S, S, 2) float32 pixel coordinates (x, y)


def _bump(xs: np.ndarray, ys: np.ndarray, centre_src: tuple[float, float], vec: tuple[float, float],
          rx_src: float, ry_src: float | None = None) -> np.ndarray:
    """Gaussian displacement bump: `vec` (canonical px) at the centre, fading with radii given in photo px."""
    cx, cy = to_canon(centre_src)
    rx, ry = rx_src * _K, (ry_src if ry_src is not None else rx_src) * _K
    g = np.exp(-0.5 * (((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2))
    return np.stack([g * vec[0], g * vec[1]], -1).astype(np.float32)


def _ellipse_map(xs: np.ndarray, ys: np.ndarray, centre_src: tuple[float, float],
                 axes_src: tuple[float, float], soft: float = 1.0) -> np.ndarray:
    cx, cy = to_canon(centre_src)
    r = np.sqrt(((xs - cx) / (axes_src[0] * _K)) ** 2 + ((ys - cy) / (axes_src[1] * _K)) ** 2)
    return np.clip((1.0 - r) / max(soft, 1e-6), 0.0, 1.0).astype(np.float32)


def _build_fields(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.zeros((CANON, CANON, 2), np.float32)
    fields = {c: z.copy() for c in COMPONENTS}
    shades = {c: np.zeros((CANON, CANON), np.float32) for c in COMPONENTS}
    # Displacements are canonical px at activation 1 (the face box is ~73 px wide here, so 5 px is ~7 %).
    fields["smile"] += _bump(xs, ys, MOUTH_L, (-2.0, -5.0), 10) + _bump(xs, ys, MOUTH_R, (2.0, -5.0), 10)
    fields["smile"] += _bump(xs, ys, (EYE_L[0], 122), (0, -2.0), 12) + _bump(xs, ys, (EYE_R[0], 123), (0, -2.0), 12)
    fields["frown"] += _bump(xs, ys, MOUTH_L, (1.0, 5.5), 10) + _bump(xs, ys, MOUTH_R, (-1.0, 5.5), 10)
    fields["frown"] += _bump(xs, ys, (222, 165), (0, -2.5), 9)
    fields["lip_raise"] += _bump(xs, ys, UPPER_LIP, (0, -4.5), 13, 6)
    fields["lip_raise"] += _bump(xs, ys, NOSTRIL_L, (0, -3.0), 6) + _bump(xs, ys, NOSTRIL_R, (0, -3.0), 6)
    fields["lip_raise"] += _bump(xs, ys, BROW_L[1], (1.0, 2.5), 11, 7) + _bump(xs, ys, BROW_R[1], (-1.0, 2.5), 11, 7)
    shades["lip_raise"] -= 0.1 * _ellipse_map(xs, ys, NOSE_BRIDGE, (6, 3), 0.6)
    for brow in (BROW_L, BROW_R):
        fields["brow_raise"] += _bump(xs, ys, brow[1], (0, -6.5), 17, 9)
    fields["brow_inner"] += _bump(xs, ys, BROW_L[2], (2.0, -5.0), 7) + _bump(xs, ys, BROW_R[2], (-2.0, -5.0), 7)
    fields["brow_inner"] += _bump(xs, ys, BROW_L[0], (0, 1.5), 7) + _bump(xs, ys, BROW_R[0], (0, 1.5), 7)
    shades["brow_inner"] -= 0.12 * _ellipse_map(xs, ys, (225.5, 92), (4, 6), 0.8)
    for eye in (EYE_L, EYE_R):
        fields["eye_widen"] += _bump(xs, ys, (eye[0], eye[1] - 5), (0, -3.2), 8, 3.5)
        fields["eye_widen"] += _bump(xs, ys, (eye[0], eye[1] + 5), (0, 1.6), 8, 3.5)
    # Jaw drop: everything below the mouth line moves down, fading sideways and below the chin.
    mx, my = to_canon(MOUTH_GAP)
    cx, cy = to_canon(CHIN)
    below = 1.0 / (1.0 + np.exp(-(ys - my) / (2.0 * _K)))
    side = np.exp(-0.5 * ((xs - mx) / (30 * _K)) ** 2)
    fade = np.exp(-0.5 * (np.maximum(0.0, ys - cy) / (14 * _K)) ** 2)
    fields["jaw_drop"][..., 1] += (7.0 * below * side * fade).astype(np.float32)
    shades["jaw_drop"] -= 0.45 * _ellipse_map(xs, ys, (MOUTH_GAP[0], MOUTH_GAP[1] + 4), (16, 6), 0.5)
    return (np.stack([fields[c] for c in COMPONENTS]), np.stack([shades[c] for c in COMPONENTS]))


@lru_cache(maxsize=1)
def face_bank() -> FaceBank:
    """The neutral head crop, its mask and the displacement bank; computed once per process."""
    from skimage import data

    photo = data.astronaut()
    x0, y0, side = SRC_CROP
    crop = photo[y0:y0 + side, x0:x0 + side]
    rgb = cv2.resize(crop, (CANON, CANON), interpolation=cv2.INTER_AREA).astype(np.float32)
    ys, xs = np.mgrid[0:CANON, 0:CANON].astype(np.float32)
    sup = 4  # draw the outline supersampled, then area-average: an anti-aliased mask
    pts = np.array([to_canon(p) for p in HEAD_OUTLINE]) * sup
    big = np.zeros((CANON * sup, CANON * sup), np.float32)
    cv2.fillPoly(big, [np.round(pts).astype(np.int32)], 1.0)
    alpha = cv2.GaussianBlur(cv2.resize(big, (CANON, CANON), interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    fields, shades = _build_fields(xs, ys)
    return FaceBank(rgb=rgb, alpha=alpha, fields=fields, shades=shades,
                    has_shade=shades.reshape(len(COMPONENTS), -1).any(1), grid=np.dstack([xs, ys]))


def render_head(bank: FaceBank, act: np.ndarray) -> np.ndarray:
    """The head crop (S, S, 3 float32) with component activations `act` (len(COMPONENTS),)."""
    act = np.asarray(act, np.float32)
    on = np.flatnonzero(np.abs(act) > 1e-3)
    if len(on) == 0:
        return bank.rgb.copy()
    disp = np.tensordot(act[on], bank.fields[on], axes=1)
    img = cv2.remap(bank.rgb, bank.grid - disp, None, interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REFLECT)
    shade_on = on[bank.has_shade[on]]
    if len(shade_on):
        img *= (1.0 + np.tensordot(act[shade_on], bank.shades[shade_on], axes=1))[..., None]
    return img
