"""The face pipeline: sampled frames -> detector chain -> alignment -> crops (stored by `faces`, geometry in
`<clip>.track.npz`; `face_track()` reads that cache or runs it), plus the face-box / head-pose `pose`
features. Details: docs/FEATURES.md, "Frames and faces"; speed: docs/BENCHMARKS.md."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from competition.features.registry import ClipMedia, FeatureError, FeatureOutput, get_extractor, \
    register_extractor
from competition.core.io import atomic_path

DETECTOR_CODES: dict[str, int] = {"none": 0, "mtcnn": 1, "haar": 2, "interpolated": 3, "aligned": 4,
                                  "verified": 5}
# a face found on the frame itself (interpolated rows are not): by Haar, MTCNN or O-Net's check
DETECTED_CODES: tuple[int, ...] = (DETECTOR_CODES["mtcnn"], DETECTOR_CODES["haar"], DETECTOR_CODES["verified"])

# ArcFace 5-point template for a 112x112 crop: eyes, nose tip, mouth corners (image left first).
_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                          [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)

FACE_DEFAULTS: dict[str, Any] = {
    "scheme": "step", "step": 0.2, "n": 32, "every": 30,   # frame sampling (see competition.features.video)
    "size": 112,                 # crop side in pixels (112 as seed 001, 224 as seed 000)
    "detectors": "haar,mtcnn",   # chain, tried in order per frame
    "margin": 0.25,              # extra context around the face, as a fraction of its size
    "interp_frames": 12,         # fill misses whose detected neighbours are at most this many frames apart
    "max_side": 640,             # frames larger than this are downscaled before detection
    # detector chain on every k-th sampled frame, O-Net checks the ones between; 1 by default: 3 is 1.7x
    # faster on real footage but cost gbm_appearance 0.357 -> 0.256 OOF on the embedded set (docs/BENCHMARKS.md)
    "detect_every": 1,
    # while no face is in view the chain runs on every `idle_every`-th sampled frame only; when a face
    # comes into view the frames back to the last faceless search are searched one by one
    "idle_every": 4,
}


@dataclass
class FaceTrack:
    crops: np.ndarray        # (T, S, S, 3) uint8 RGB
    times: np.ndarray        # (T,) seconds
    boxes: np.ndarray        # (T, 4) x0, y0, x1, y1 as fractions of frame width/height
    landmarks: np.ndarray    # (T, 5, 2) fractions of frame width/height; NaN where unknown
    source: np.ndarray       # (T,) int8, DETECTOR_CODES
    mask: np.ndarray         # (T,) True where a face was detected or interpolated
    frame_size: tuple[int, int]  # (width, height) of the frames the geometry refers to
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- detectors

@functools.lru_cache(maxsize=1)
def _haar():
    import cv2
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    cv2.setNumThreads(1)  # frames are tiny: threads only fight the clip-level worker processes
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise FeatureError(f"OpenCV Haar cascade not loadable from {path}")
    return cascade


@functools.lru_cache(maxsize=1)
def _mtcnn():
    import torch
    from facenet_pytorch import MTCNN
    # channels-last weights: oneDNN's NHWC convolutions and max-pooling run O-Net 3x and the whole
    # cascade ~13 % faster on CPU than NCHW; outputs differ by < 1e-6 (float summation order)
    return MTCNN(keep_all=False, select_largest=True, min_face_size=20, post_process=False,
                 device="cuda" if torch.cuda.is_available() else "cpu").to(memory_format=torch.channels_last)


# Haar's cost follows the image area at each scale searched relative to the face (and the windows
# near a face, which run every stage), not the frame size, so both searches run on a grey copy
# downscaled to a fixed face size. Measured on 640x480 clips: 9 ms -> 3 ms CPU per tracked frame, same
# detections (bench/bench_extraction.py --hume-like, docs/BENCHMARKS.md).
HAAR_TRACK_FACE = 28  # px: the window around the previous face is scaled so that face is this size
HAAR_TRACK_STEP = 1.1  # scale step of the tracked search (1.2 misses more and falls back to full searches)
# the tracked search, then once more with finer scales before the full-frame search (~1-3 ms against ~20 ms)
HAAR_TRACK_SCANS = ((HAAR_TRACK_FACE, HAAR_TRACK_STEP), (40, 1.05))
HAAR_FULL_MIN = 32    # px: the whole frame is scaled so the smallest face searched (12 % of it) is this size
HAAR_FULL_STEP = 1.2  # scale step of the full-frame search (a miss there still gets full MTCNN)
MTCNN_MAX_SIDE = 320  # px: full MTCNN runs on frames downscaled to this side (its 20 px minimum face
                      # is then 40 px of a 640x480 webcam frame; Haar's minimum there is 57 px)


def _haar_scan(gray: np.ndarray, scale: float, lo: float, hi: float | None, factor: float
               ) -> np.ndarray | None:
    """Largest Haar face (x, y, w, h) in `gray` pixels, searched on a copy scaled by `scale` (<= 1)
    for faces of `lo`..`hi` pixels (of `gray`)."""
    import cv2
    h, w = gray.shape
    if scale < 1.0:
        sw, sh = max(24, int(round(w * scale))), max(24, int(round(h * scale)))
        img, sx, sy = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA), sw / w, sh / h
    else:
        img, sx, sy = gray, 1.0, 1.0
    s = min(sx, sy)
    mn = max(24, int(lo * s))
    kw = {"minSize": (mn, mn)}
    if hi is not None:
        mx = max(mn + 1, int(hi * s) + 1)
        kw["maxSize"] = (mx, mx)
    rects = _haar().detectMultiScale(img, factor, 4, **kw)
    if len(rects) == 0:
        return None
    r = rects[np.argmax(rects[:, 2] * rects[:, 3])]  # the largest
    return np.array([r[0] / sx, r[1] / sy, r[2] / sx, r[3] / sy], np.float32)


def detect_haar(frame: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray | None:
    """Largest Haar face as (x0, y0, x1, y1) pixels of `frame` (RGB or grey); searched first in a
    window around `prior` (the previous frame's Haar box) for a face near its size."""
    import cv2
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    min_side = max(24, int(0.12 * min(h, w)))
    if prior is not None:
        pw, ph = prior[2] - prior[0], prior[3] - prior[1]
        x0, y0 = int(max(0, prior[0] - pw)), int(max(0, prior[1] - ph))
        x1, y1 = int(min(w, prior[2] + pw)), int(min(h, prior[3] + ph))
        side = max(pw, ph)
        lo, hi = max(min_side, int(0.7 * side)), int(1.4 * side) + 1
        if x1 - x0 >= lo and y1 - y0 >= lo:  # a face near its last size: only a few scales to scan
            window = gray[y0:y1, x0:x1]
            for face_px, step in HAAR_TRACK_SCANS:
                r = _haar_scan(window, min(1.0, face_px / side), lo, hi, step)
                if r is not None:
                    return np.array([r[0] + x0, r[1] + y0, r[0] + x0 + r[2], r[1] + y0 + r[3]], np.float32)
    r = _haar_scan(gray, min(1.0, HAAR_FULL_MIN / min_side), min_side, None, HAAR_FULL_STEP)
    return None if r is None else np.array([r[0], r[1], r[0] + r[2], r[1] + r[3]], np.float32)


def _onet_square(box: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1])
    sq = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
    x0, y0 = int(max(0, np.floor(sq[0]))), int(max(0, np.floor(sq[1])))
    x1, y1 = int(min(w, np.ceil(sq[2]))), int(min(h, np.ceil(sq[3])))
    return x0, y0, x1, y1


def refine_onet_batch(frames: list[np.ndarray] | np.ndarray, boxes: list[np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MTCNN's O-Net on proposed boxes, one per frame, in one batched call: refined boxes (N, 4),
    5 landmarks (N, 5, 2) in pixels, face probabilities (N,)."""
    import torch
    from torch.nn.functional import interpolate
    n = len(boxes)
    if n == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros(0, np.float32)
    net = _mtcnn()
    squares, inputs = [], []
    for frame, box in zip(frames, boxes):
        x0, y0, x1, y1 = sq = _onet_square(box, frame.shape[1], frame.shape[0])
        squares.append(sq)
        img = torch.as_tensor(frame[y0:y1, x0:x1], dtype=torch.float32, device=net.device).permute(2, 0, 1)[None]
        inputs.append(interpolate(img, size=(48, 48), mode="area"))  # as facenet-pytorch's own O-Net stage
    with torch.no_grad():
        x = ((torch.cat(inputs) - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)
        reg, pts, prob = net.onet(x)
    reg, pts, prob = reg.cpu().numpy(), pts.cpu().numpy(), prob[:, 1].cpu().numpy()
    sq = np.asarray(squares, np.float32)
    x0, y0, x1, y1 = sq.T
    bw, bh = x1 - x0, y1 - y0
    lm = np.stack([bw[:, None] * pts[:, :5] + x0[:, None], bh[:, None] * pts[:, 5:] + y0[:, None]], axis=2)
    refined = np.stack([x0 + reg[:, 0] * bw, y0 + reg[:, 1] * bh, x1 + reg[:, 2] * bw, y1 + reg[:, 3] * bh], 1)
    return refined.astype(np.float32), lm.astype(np.float32), prob.astype(np.float32)


def detect_mtcnn(frame: np.ndarray, max_side: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Full MTCNN: (box (4,), landmarks (5, 2)) of the largest face, in pixels of `frame`. With
    `max_side`, a larger frame is searched on a copy downscaled to that side (faces from
    min_face_size * scale up); the landmarks lose little, since O-Net sees every face at 48x48."""
    import cv2
    h, w = frame.shape[:2]
    scale = 1.0
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        frame = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    boxes, probs, points = _mtcnn().detect(frame, landmarks=True)
    if boxes is None or len(boxes) == 0:
        return None
    return (boxes[0] / scale).astype(np.float32), (points[0] / scale).astype(np.float32)


def _detect_frame(frame: np.ndarray, chain: list[str], prior: np.ndarray | None
                  ) -> tuple[np.ndarray | None, np.ndarray | None, int, np.ndarray | None]:
    """(box, landmarks or None, detector code, Haar box to search around in the next frame).
    A Haar box comes back unrefined with landmarks None: `detect_frames` refines all of a clip's
    Haar boxes with O-Net in one batch."""
    for name in chain:
        if name == "haar":
            box = detect_haar(frame, prior)
            if box is not None:
                return box, None, DETECTOR_CODES["haar"], box
        elif name == "mtcnn":
            found = detect_mtcnn(frame, MTCNN_MAX_SIDE)
            if found is not None:
                return found[0], found[1], DETECTOR_CODES["mtcnn"], None
        else:
            raise ValueError(f"unknown face detector {name!r}; expected 'haar' or 'mtcnn'")
    return None, None, DETECTOR_CODES["none"], None


def detect_frames(frames: np.ndarray, chain: list[str], every: int = 1, indices: np.ndarray | None = None,
                  idle_every: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector chain over a clip's frames: boxes (T, 4), landmarks (T, 5, 2) in pixels (NaN where
    unknown), detector codes (T,). It runs on every `every`-th frame while a face is in view (every
    `idle_every`-th, default 2k, while none is); the frames between two with a face get the interpolated box
    checked by O-Net in one batch ("verified"), as docs/FEATURES.md, "Frames and faces" describes."""
    t_count, every = len(frames), max(1, int(every))
    idle = max(1, int(idle_every)) if idle_every else 2 * every
    boxes = np.zeros((t_count, 4), np.float32)
    lms = np.full((t_count, 5, 2), np.nan, np.float32)
    source = np.zeros(t_count, np.int8)
    haar_boxes: dict[int, np.ndarray] = {}  # Haar's own boxes: where the next frame's search starts

    def prior(i: int) -> np.ndarray | None:  # Haar box of the nearest earlier frame searched, if near
        return next((haar_boxes[j] for j in range(i - 1, i - every - 1, -1) if j in haar_boxes), None)

    def chain_on(i: int) -> None:
        box, lm, code, haar_box = _detect_frame(frames[i], chain, prior(i))
        if box is not None:
            boxes[i], source[i] = box, code
            if lm is not None:
                lms[i] = lm
        if haar_box is not None:
            haar_boxes[i] = haar_box

    def refine_haar(todo: list[int]) -> None:
        haar = [i for i in todo if source[i] == DETECTOR_CODES["haar"]]
        refined, lm, p = refine_onet_batch([frames[i] for i in haar], [boxes[i] for i in haar])
        for i, b, m, ok in zip(haar, refined, lm, p >= 0.5):  # O-Net agrees it is a face
            if ok:
                boxes[i], lms[i] = b, m

    keys, i = [], 0
    while i < t_count:  # stride `every` while a face is in view, `idle` while none is
        chain_on(i)
        keys.append(i)
        i = min(i + (every if source[i] else idle), t_count - 1) if i < t_count - 1 else t_count
    refine_haar(keys)
    pos = np.arange(t_count, dtype=np.float64) if indices is None else np.asarray(indices, np.float64)
    between, chain_too = [], []
    for a, b in zip(keys, keys[1:]):
        gap = list(range(a + 1, b))
        if gap and source[a] and source[b]:
            for i in gap:
                w = (pos[i] - pos[a]) / max(pos[b] - pos[a], 1e-9)
                between.append((i, ((1 - w) * boxes[a] + w * boxes[b]).astype(np.float32)))
        elif gap and (source[a] or source[b]):
            chain_too += gap
    refined, lm, p = refine_onet_batch([frames[i] for i, _ in between], [box for _, box in between])
    for (i, _), b, m, ok in zip(between, refined, lm, p >= 0.5):
        if ok:
            boxes[i], lms[i], source[i] = b, m, DETECTOR_CODES["verified"]
        else:
            chain_too.append(i)
    for i in sorted(chain_too):
        chain_on(i)
    refine_haar(chain_too)
    return boxes, lms, source


# ---------------------------------------------------------------- geometry

def interpolate_track(indices: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray, found: np.ndarray,
                      window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fill missed frames from detected neighbours (frame `indices`): interpolated (mask True) between two
    detections at most `window` frames apart, else the nearest detection held with mask False."""
    boxes, landmarks = boxes.copy(), landmarks.copy()
    mask, interp = found.copy(), np.zeros(len(found), bool)
    det = np.flatnonzero(found)
    if len(det) == 0:
        return boxes, landmarks, mask, interp
    for i in np.flatnonzero(~found):
        k = np.searchsorted(det, i)
        prev, nxt = (det[k - 1] if k > 0 else None), (det[k] if k < len(det) else None)
        if prev is not None and nxt is not None and indices[nxt] - indices[prev] <= window:
            a = (indices[i] - indices[prev]) / (indices[nxt] - indices[prev])
            boxes[i] = (1 - a) * boxes[prev] + a * boxes[nxt]
            landmarks[i] = (1 - a) * landmarks[prev] + a * landmarks[nxt]  # NaN if either side has none
            mask[i] = interp[i] = True
        else:
            use_prev = nxt is None or (prev is not None and indices[i] - indices[prev] <= indices[nxt] - indices[i])
            near = prev if use_prev else nxt
            boxes[i], landmarks[i] = boxes[near], landmarks[near]
    return boxes, landmarks, mask, interp


def crop_transform(box: np.ndarray, landmarks: np.ndarray | None, size: int, margin: float) -> np.ndarray:
    """2x3 similarity transform from frame pixels to a size x size crop: fitted to the ArcFace template
    with landmarks, else the box centred with its larger side the crop minus the margin."""
    import cv2
    if landmarks is not None and np.isfinite(landmarks).all():
        dst = (_TEMPLATE_112 - 56.0) * (size / 112.0) / (1.0 + margin) + size / 2.0
        m, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), dst.astype(np.float32),
                                           method=cv2.LMEDS)
        if m is not None:
            return m.astype(np.float32)
    side = max(box[2] - box[0], box[3] - box[1], 1.0)
    s = size / (side * (1.0 + margin))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float32)


def head_pose(landmarks: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(yaw, pitch, roll) in degrees from 5 landmarks (pixels) with cv2.solvePnP on a generic 3-D face.
    NaN where the landmarks are unknown or the fit fails."""
    import cv2
    if not np.isfinite(landmarks).all():
        return np.full(3, np.nan, np.float32)
    model = np.array([[-30, -35, -20], [30, -35, -20], [0, 0, 0], [-25, 35, -20], [25, 35, -20]], np.float64)
    w, h = frame_size
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
    ok, rvec, _ = cv2.solvePnP(model, landmarks.astype(np.float64), cam, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        return np.full(3, np.nan, np.float32)
    rot, _ = cv2.Rodrigues(rvec)
    pitch, yaw, roll = cv2.RQDecomp3x3(rot)[0]
    pitch = (pitch + 180) % 360 - 180
    pitch = pitch - 180 if pitch > 90 else pitch + 180 if pitch < -90 else pitch
    return np.array([yaw, pitch, roll], np.float32)


# ---------------------------------------------------------------- pipeline

def read_aligned(folder: Path | None, fps: float | None,
                 p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops (N, S, S, 3) RGB at the crop size, times (N,), indices (N,)) of the sampled frames of an
    aligned-crops folder `<k:05d>.jpg` (k 1-based, frame k at (k - 1) / fps)."""
    import cv2
    from competition.features.video import sample_times
    if folder is None or not Path(folder).is_dir():
        raise FeatureError(f"{folder}: no aligned face crops for this clip (detectors: aligned)")
    ks = np.array(sorted(int(f.stem) for f in Path(folder).glob("*.jpg") if f.stem.isdigit()), np.int64)
    if len(ks) == 0:
        raise FeatureError(f"{folder}: no <k:05d>.jpg crops")
    times = (ks - 1) / float(fps or 30.0)
    chosen = sample_times(times, p["scheme"], step=p["step"], n=p["n"], every=p["every"])
    size = int(p["size"])
    crops = np.empty((len(chosen), size, size, 3), np.uint8)
    for i, j in enumerate(chosen):
        img = cv2.imread(str(Path(folder) / f"{ks[j]:05d}.jpg"), cv2.IMREAD_COLOR)
        if img is None:
            raise FeatureError(f"{Path(folder) / f'{ks[j]:05d}.jpg'}: unreadable image")
        crops[i] = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
    return crops, times[chosen].astype(np.float32), ks[chosen] - 1


def aligned_track(folder: Path | None, fps: float | None, p: dict[str, Any]) -> FaceTrack:
    crops, times, _ = read_aligned(folder, fps, p)
    n, size = len(crops), crops.shape[1]
    return FaceTrack(crops=crops, times=times, boxes=np.tile(np.array([0, 0, 1, 1], np.float32), (n, 1)),
                     landmarks=np.full((n, 5, 2), np.nan, np.float32),
                     source=np.full(n, DETECTOR_CODES["aligned"], np.int8), mask=np.ones(n, bool),
                     frame_size=(size, size), info={"frames": n, "detection_rate": 1.0, "source": "aligned"})


def run_face_pipeline(video: Path | str, params: dict[str, Any] | None = None, clip: ClipMedia | None = None
                      ) -> FaceTrack:
    """Decode the sampled frames of one video once and return crops and geometry (with the `aligned`
    detector: read the clip's aligned crops instead)."""
    import cv2
    from competition.features.video import read_sampled
    p = {**FACE_DEFAULTS, **(params or {})}
    chain = [d.strip() for d in str(p["detectors"]).split(",") if d.strip()]
    if "aligned" in chain:
        if chain != ["aligned"]:
            raise ValueError(f"detectors {p['detectors']!r}: 'aligned' replaces detection, it is used alone")
        return aligned_track(clip.frames_dir if clip else None, clip.fps if clip else None, p)
    vf = read_sampled(video, p["scheme"], step=p["step"], n=p["n"], every=p["every"], max_side=p["max_side"])
    t_count, (h, w) = len(vf.frames), vf.frames.shape[1:3]
    boxes, lms, source = detect_frames(vf.frames, chain, int(p["detect_every"]), vf.indices, int(p["idle_every"]))
    found = source > 0
    boxes, lms, mask, interp = interpolate_track(vf.indices, boxes, lms, found, int(p["interp_frames"]))
    source[interp] = DETECTOR_CODES["interpolated"]
    size, margin = int(p["size"]), float(p["margin"])
    warnings: list[str] = []
    crops = np.empty((t_count, size, size, 3), np.uint8)
    if found.any():
        for i, frame in enumerate(vf.frames):
            m = crop_transform(boxes[i], lms[i], size, margin)
            crops[i] = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_AREA,
                                      borderMode=cv2.BORDER_REPLICATE)
    else:
        warnings.append("no face detected in any sampled frame: whole frames used as crops")
        for i, frame in enumerate(vf.frames):
            crops[i] = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
        boxes[:] = [0, 0, w, h]
    if vf.truncated:
        warnings.append(f"video truncated: {len(vf.frames)} sampled frame(s) decoded")
    counts = {name: int((source == code).sum()) for name, code in DETECTOR_CODES.items()}
    info = {"frames": t_count, "detection_rate": round(float(found.mean()), 4),
            "interpolated": int(interp.sum()), "detectors": counts,
            "fallback": "" if found.any() else "full_frame", "warnings": warnings}
    scale = np.array([w, h, w, h], np.float32)
    return FaceTrack(crops=crops, times=vf.times.astype(np.float32), boxes=boxes / scale,
                     landmarks=lms / np.array([w, h], np.float32), source=source, mask=mask,
                     frame_size=(int(w), int(h)), info=info)


def _track_path(crops_path: Path) -> Path:
    return crops_path.with_name(crops_path.name.replace(".npz", ".track.npz"))


def _save_track(path: Path, track: FaceTrack) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, boxes=track.boxes, landmarks=track.landmarks, source=track.source,
                     frame_size=np.array(track.frame_size, np.int32))


def _faces_store(params: dict[str, Any] | None):
    from competition.features.store import FeatureStore, current_root
    root = current_root()
    return None if root is None else FeatureStore(root, get_extractor("faces"), _face_params(params))


def _face_params(params: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if k in FACE_DEFAULTS}


def face_track(clip: ClipMedia, params: dict[str, Any] | None = None) -> FaceTrack:
    """Crops and geometry of one clip: from the `faces` cache of the store being extracted into when
    it has them for these media, else computed now (and cached there for the next extractor)."""
    params = _face_params(params)
    store = _faces_store(params)
    if store is not None and store.has(clip.clip_id, clip.media) and _track_path(store.path(clip.clip_id)).exists():
        size = store.params["size"]
        with np.load(store.path(clip.clip_id), allow_pickle=False) as z:
            crops, t, mask = z["x"].reshape(-1, size, size, 3), z["t"], z["mask"]
        with np.load(_track_path(store.path(clip.clip_id)), allow_pickle=False) as z:
            return FaceTrack(crops=crops, times=t, boxes=z["boxes"], landmarks=z["landmarks"], source=z["source"],
                             mask=mask, frame_size=tuple(int(v) for v in z["frame_size"]), info={"cached": True})
    track = run_face_pipeline(clip.mp4, params, clip)
    if store is not None:
        store.dir.mkdir(parents=True, exist_ok=True)
        _save_track(_track_path(store.path(clip.clip_id)), track)
        store.save(clip.clip_id, _faces_output(track), clip.media)
    return track


def _faces_output(track: FaceTrack) -> FeatureOutput:
    return FeatureOutput(x=track.crops.reshape(len(track.crops), -1), t=track.times, mask=track.mask,
                         info=track.info)


@register_extractor("faces", kind="sequence", defaults=FACE_DEFAULTS, dtype="uint8", modality="face")
def faces(clip: ClipMedia, **params: Any) -> FeatureOutput:
    """Face crops (T, size*size*3) uint8 of the sampled frames; geometry in <clip>.track.npz."""
    track = run_face_pipeline(clip.mp4, params, clip)
    store = _faces_store(params)
    if store is not None:  # geometry first: the crops file is what marks the clip as done
        _save_track(_track_path(store.path(clip.clip_id)), track)
    return _faces_output(track)


def pose_matrix(track: FaceTrack) -> np.ndarray:
    """Per frame: box centre x/y, width, height (fractions of the frame), their change per second,
    yaw/pitch/roll (degrees; interpolated over frames without landmarks, 0 if none has any) and
    flags (detected, has landmarks)."""
    b = track.boxes
    geo = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    t = track.times.astype(np.float64)
    if len(t) > 1:
        dt = np.maximum(np.gradient(t), 1e-3)[:, None]
        motion = np.gradient(geo, axis=0) / dt
    else:
        motion = np.zeros_like(geo)
    w, h = track.frame_size
    px = track.landmarks * np.array([w, h], np.float32)
    angles = np.stack([head_pose(lm, track.frame_size) for lm in px]) if len(px) else np.zeros((0, 3))
    has_lm = np.isfinite(angles).all(1)
    for j in range(3):
        col = angles[:, j]
        col[:] = np.interp(t, t[has_lm], col[has_lm]) if has_lm.any() else 0.0
    detected = np.isin(track.source, [*DETECTED_CODES, DETECTOR_CODES["aligned"]])
    return np.concatenate([geo, motion, angles, detected[:, None], has_lm[:, None]], 1).astype(np.float32)


POSE_COLUMNS: tuple[str, ...] = ("cx", "cy", "w", "h", "dcx", "dcy", "dw", "dh", "yaw", "pitch", "roll",
                                 "detected", "has_landmarks")


@register_extractor("pose", kind="sequence", defaults=FACE_DEFAULTS, modality="face")
def pose(clip: ClipMedia, **params: Any) -> FeatureOutput:
    """Face-box position, size and motion plus head pose per sampled frame (13 columns, POSE_COLUMNS)."""
    track = face_track(clip, params)
    return FeatureOutput(x=pose_matrix(track), t=track.times, mask=track.mask,
                         info={"detection_rate": round(float(np.isin(track.source, DETECTED_CODES).mean()), 4)})
