"""Image augmentation of face-crop sequences with albumentations, declared in a config:

    augment:
      - {name: HorizontalFlip, p: 0.5}
      - {name: Affine, rotate: [-10, 10], scale: [0.95, 1.05], translate_percent: [-0.05, 0.05], p: 0.5}
      - {name: ColorJitter, brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.02, p: 0.5}
      - {name: GaussianBlur, blur_limit: [3, 5], p: 0.2}
      - {name: CoarseDropout, num_holes_range: [1, 2], hole_height_range: [0.1, 0.25],
         hole_width_range: [0.1, 0.25], p: 0.3}

Each entry is an albumentations transform (its class name and keyword arguments). All frames of one clip
go through the pipeline together (albumentations' `images` target), so they share one draw of the
random parameters: a clip is flipped, shifted or darkened as a whole, never frame by frame. Draws are
seeded per (seed, epoch, clip), so a run is reproducible whatever the number of loader workers."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def build_pipeline(spec: Sequence[dict[str, Any]]):
    """An albumentations Compose from a list of {name: TransformClass, **kwargs}."""
    import albumentations as A
    transforms = []
    for entry in spec:
        kw = dict(entry)
        name = kw.pop("name", None)
        cls = getattr(A, str(name), None) if name else None
        if cls is None or not isinstance(cls, type):
            raise ValueError(f"augment: {name!r} is not an albumentations transform (entry {entry})")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
        try:
            transforms.append(cls(**kw))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"augment: {name}({kw}) is invalid: {exc}") from exc
    return A.Compose(transforms)


class ClipAugmenter:
    """Augments a clip's image rows (T, S*S*3) uint8 with one parameter draw for all its frames."""

    def __init__(self, spec: Sequence[dict[str, Any]]):
        self.pipeline = build_pipeline(spec)

    def __call__(self, rows: np.ndarray, seed: int) -> np.ndarray:
        side = int(round(np.sqrt(rows.shape[1] / 3)))
        if side * side * 3 != rows.shape[1] or rows.dtype != np.uint8:
            raise ValueError(f"augment needs uint8 square RGB crop rows, got {rows.dtype} rows of width "
                             f"{rows.shape[1]}")
        self.pipeline.set_random_seed(seed)
        frames = np.ascontiguousarray(rows.reshape(len(rows), side, side, 3))
        out = self.pipeline(images=frames)["images"]
        return np.asarray(out, np.uint8).reshape(len(rows), -1)
