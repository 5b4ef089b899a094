"""Hand-crafted facial appearance on the cached aligned face crops (`hog`, `lbp`, `face_flow`), read
through `face_track()`, one row per sampled frame with the faces mask. Shapes and meaning: docs/FEATURES.md,
"Hand-crafted face appearance and geometry"."""
from __future__ import annotations

from typing import Any

import numpy as np

from competition.features.registry import ClipMedia, FeatureOutput, register_extractor


def _grey(crops: np.ndarray, size: int) -> np.ndarray:
    """(T, S, S, 3) uint8 RGB -> (T, size, size) uint8 grey."""
    import cv2
    out = np.empty((len(crops), size, size), np.uint8)
    for i, c in enumerate(crops):
        g = cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_RGB2GRAY)
        out[i] = g if g.shape[0] == size else cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA)
    return out


def hog_rows(crops: np.ndarray, size: int = 64, cell: int = 8, orientations: int = 9, block: int = 1
             ) -> np.ndarray:
    """(T, D) HOG descriptors of RGB crops (L2-Hys block normalisation)."""
    from skimage.feature import hog
    grey = _grey(crops, size)
    n_cells = size // cell
    dim = (n_cells - block + 1) ** 2 * block * block * orientations
    if len(grey) == 0:
        return np.zeros((0, dim), np.float32)
    return np.stack([hog(g, orientations=orientations, pixels_per_cell=(cell, cell),
                         cells_per_block=(block, block), block_norm="L2-Hys", feature_vector=True)
                     for g in grey]).astype(np.float32)


def lbp_rows(crops: np.ndarray, size: int = 64, grid: int = 4, points: int = 8, radius: float = 1.0
             ) -> np.ndarray:
    """(T, grid*grid*(points+2)) uniform-LBP histograms per region, each normalised to sum 1."""
    from skimage.feature import local_binary_pattern
    grey = _grey(crops, size)
    bins = points + 2
    rows = np.zeros((len(grey), grid * grid * bins), np.float32)
    edges = np.linspace(0, size, grid + 1).round().astype(int)
    for i, g in enumerate(grey):
        codes = local_binary_pattern(g, points, radius, method="uniform").astype(np.int64)
        hists = []
        for a in range(grid):
            for b in range(grid):
                cell = codes[edges[a]:edges[a + 1], edges[b]:edges[b + 1]].ravel()
                h = np.bincount(cell, minlength=bins)[:bins].astype(np.float32)
                hists.append(h / max(1.0, h.sum()))
        rows[i] = np.concatenate(hists)
    return rows


def flow_rows(crops: np.ndarray, mask: np.ndarray | None = None, size: int = 64, grid: int = 8
              ) -> np.ndarray:
    """(T, 2*grid*grid + 2) optical flow from the clip's median face to each frame, per grid cell
    (dx then dy, frame-mean flow removed), then the frame-mean flow (dx, dy); fractions of the side."""
    import cv2
    grey = _grey(crops, size)
    dim = 2 * grid * grid + 2
    if len(grey) == 0:
        return np.zeros((0, dim), np.float32)
    real = grey[mask] if mask is not None and np.any(mask) else grey
    ref = np.median(real, axis=0).astype(np.uint8)
    edges = np.linspace(0, size, grid + 1).round().astype(int)
    rows = np.zeros((len(grey), dim), np.float32)
    for i, g in enumerate(grey):
        f = cv2.calcOpticalFlowFarneback(ref, g, None, 0.5, 2, 9, 3, 5, 1.1, 0) / size
        mean = f.reshape(-1, 2).mean(0)
        cells = np.array([[f[edges[a]:edges[a + 1], edges[b]:edges[b + 1]].reshape(-1, 2).mean(0)
                           for b in range(grid)] for a in range(grid)]) - mean  # (grid, grid, 2)
        rows[i] = np.concatenate([cells[..., 0].ravel(), cells[..., 1].ravel(), mean])
    return rows


def _track(clip: ClipMedia, faces: dict[str, Any]):
    from competition.features.faces import face_track
    return face_track(clip, faces)


_IMG = {"faces": {}, "size": 64}


@register_extractor("hog", kind="sequence", defaults={**_IMG, "cell": 8, "orientations": 9, "block": 1},
                    modality="face")
def hog(clip: ClipMedia, faces: dict[str, Any], size: int, cell: int, orientations: int, block: int
        ) -> FeatureOutput:
    """HOG of the grey aligned face crop per frame (skimage; 64 px, 8 px cells, 9 bins: 576-D)."""
    track = _track(clip, faces)
    return FeatureOutput(x=hog_rows(track.crops, int(size), int(cell), int(orientations), int(block)),
                         t=track.times, mask=track.mask)


@register_extractor("lbp", kind="sequence", defaults={**_IMG, "grid": 4, "points": 8, "radius": 1.0},
                    modality="face")
def lbp(clip: ClipMedia, faces: dict[str, Any], size: int, grid: int, points: int, radius: float
        ) -> FeatureOutput:
    """Uniform LBP histograms per face region (4x4 regions of the 64 px grey crop: 160-D)."""
    track = _track(clip, faces)
    return FeatureOutput(x=lbp_rows(track.crops, int(size), int(grid), int(points), float(radius)),
                         t=track.times, mask=track.mask)


@register_extractor("face_flow", kind="sequence", defaults={**_IMG, "grid": 8}, modality="face")
def face_flow(clip: ClipMedia, faces: dict[str, Any], size: int, grid: int) -> FeatureOutput:
    """Optical flow from the clip's median face to each frame, per cell of an 8x8 grid (130-D)."""
    track = _track(clip, faces)
    return FeatureOutput(x=flow_rows(track.crops, track.mask, int(size), int(grid)),
                         t=track.times, mask=track.mask)
