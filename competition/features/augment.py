"""Image augmentation of face-crop sequences with albumentations, declared in a config (one draw per
clip, seeded per (seed, epoch, clip)). More: docs/PIPELINE.md, "Augmentation of face crops: augment.py"."""
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
