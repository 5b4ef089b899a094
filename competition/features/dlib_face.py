"""dlib's face models (5- and 68-point shape predictors, ResNet face descriptor) from the
`face-recognition-models` wheel, run with `dlib-bin` on the toolkit's own aligned crops (no second detector)."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from competition.features.registry import wheel_file

# The box dlib's detector frames on a crop aligned to the 112 px ArcFace template (x0, y0, x1, y1, margin 0):
# the mean of its detections on 23 real frames (astronaut, ../shared/data/real_videos; sd about 7 px).
DLIB_BOX_112 = (16.5, 27.2, 95.8, 113.8)
DESCRIPTOR_SIDE = 224  # crops upsampled first: the 150 px chip then lands nearer dlib's own (0.07 vs 0.10)


def model_path(name: str) -> Path:
    """A model file of the face-recognition-models wheel, e.g. 'shape_predictor_68_face_landmarks.dat'."""
    return wheel_file("face_recognition_models", "models", name,
                      install="`pip install face-recognition-models dlib-bin` (requirements.txt)")


@functools.lru_cache(maxsize=2)
def shape_predictor(points: int):
    """dlib's 5-point (eye corners, nose base) or 68-point (iBUG 300-W) shape predictor."""
    import dlib
    if points not in (5, 68):
        raise ValueError(f"dlib ships 5- and 68-point shape predictors, not {points}")
    return dlib.shape_predictor(str(model_path(f"shape_predictor_{points}_face_landmarks.dat")))


@functools.lru_cache(maxsize=1)
def descriptor_net():
    import dlib
    return dlib.face_recognition_model_v1(str(model_path("dlib_face_recognition_resnet_model_v1.dat")))


def _rgb(crop: np.ndarray, side: int | None = None) -> np.ndarray:
    """uint8 RGB (grey input becomes 3 equal channels), upsampled to at least `side` px."""
    import cv2
    img = np.asarray(crop, np.uint8)
    if img.ndim == 2 or img.shape[-1] == 1:
        img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    if side and img.shape[0] < side:
        img = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(img)


def _box(side: int, margin: float):
    """The dlib face box of an aligned crop of `side` px made with `margin` (faces' crop_transform)."""
    import dlib
    x0, y0, x1, y1 = ((np.array(DLIB_BOX_112) - 56.0) / (1.0 + margin) + 56.0) * side / 112.0
    return dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))


def crop_shape(crop: np.ndarray, margin: float, points: int = 68) -> np.ndarray:
    """(points, 2) landmark pixels of the crop (iBUG 300-W order for 68)."""
    img = _rgb(crop)
    shape = shape_predictor(points)(img, _box(img.shape[0], margin))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def face_descriptor(crop: np.ndarray, margin: float) -> np.ndarray:
    """(128,) dlib ResNet descriptor of an aligned crop: 5-point shape -> dlib's own 150 px face chip
    -> network. dlib's same-person rule on single faces: Euclidean distance below 0.6."""
    img = _rgb(crop, DESCRIPTOR_SIDE)
    shape = shape_predictor(5)(img, _box(img.shape[0], margin))
    return np.asarray(descriptor_net().compute_face_descriptor(img, shape), np.float32)
