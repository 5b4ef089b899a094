"""Video reading with PyAV: container timestamps, the sampling schemes "step", "uniform" and "every"
(`sample_times`), and decoding of only the frames needed (docs/FEATURES.md, "Frames and faces")."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from competition.features.registry import FeatureError

SCHEMES: tuple[str, ...] = ("step", "uniform", "every")
# decoders where skipping non-reference frames saves time; on the real HEVC clips it cost 7 % instead
# (docs/BENCHMARKS.md)
SKIP_NONREF_CODECS: tuple[str, ...] = ("h264",)


@dataclass
class VideoFrames:
    frames: np.ndarray      # (N, H, W, 3) uint8 RGB
    times: np.ndarray       # (N,) seconds from the first frame
    indices: np.ndarray     # (N,) frame index in presentation order
    n_total: int            # frames in the container
    duration: float         # seconds spanned by the frame timestamps
    truncated: bool = False  # decoding stopped early on a damaged stream


def _open(path: Path):
    import av
    if not path.exists():
        raise FeatureError(f"{path}: video file missing")
    if path.stat().st_size == 0:
        raise FeatureError(f"{path}: video file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except Exception as exc:
        raise FeatureError(f"{path}: unreadable video ({type(exc).__name__}: {exc})") from exc
    if not container.streams.video:
        container.close()
        raise FeatureError(f"{path}: no video stream")
    return container


def _packet_pts(path: Path) -> tuple[np.ndarray, float]:
    """Sorted presentation timestamps (stream ticks) of all video packets, and the time base.
    Demuxing reads packet headers only, so this costs a small fraction of decoding."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size > 0:
                    pts.append(int(packet.pts))
        except Exception as exc:  # damaged tail: keep the packets read so far
            warnings.warn(f"{path}: demux stopped early ({exc})", stacklevel=2)
        base = float(stream.time_base) if stream.time_base is not None else 1.0
    finally:
        container.close()
    if not pts:
        raise FeatureError(f"{path}: video stream has no frames")
    return np.unique(np.asarray(pts, np.int64)), base


def frame_times(path: Path | str) -> np.ndarray:
    """Presentation time (s, first frame = 0) of every frame, from the container's timestamps."""
    pts, base = _packet_pts(Path(path))
    return ((pts - pts[0]) * base).astype(np.float64)


def sample_times(timestamps: np.ndarray, scheme: str = "step", step: float = 0.2, n: int = 32,
                 every: int = 30) -> np.ndarray:
    """Indices of the frames to use, chosen from their timestamps (s) by `scheme`: step, uniform or every."""
    ts = np.asarray(timestamps, np.float64)
    if ts.ndim != 1 or len(ts) == 0:
        raise ValueError("timestamps must be a non-empty 1-D array")
    if scheme == "step":
        if step <= 0:
            raise ValueError("step must be > 0")
        ticks = np.arange(0.0, ts[-1] - ts[0] + 1e-9, step) + ts[0]
        right = np.clip(np.searchsorted(ts, ticks), 0, len(ts) - 1)
        left = np.clip(right - 1, 0, len(ts) - 1)
        nearest = np.where(np.abs(ts[left] - ticks) <= np.abs(ts[right] - ticks), left, right)
        return np.unique(nearest)  # on sparse (VFR) stretches two ticks can share a frame
    if scheme == "uniform":
        if n <= 0:
            raise ValueError("n must be > 0")
        return np.round(np.linspace(0, len(ts) - 1, n)).astype(np.int64)
    if scheme == "every":
        if every <= 0:
            raise ValueError("every must be > 0")
        return np.arange(0, len(ts), every, dtype=np.int64)
    raise ValueError(f"unknown sampling scheme {scheme!r}; expected one of {SCHEMES}")


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def _decode_skipping(container, stream, wanted: dict[int, int]):
    """Decoded frames of `stream` in presentation order, the decoder skipping unwanted non-reference frames
    (SKIP_NONREF_CODECS); bit-identical to a full decode, 20-30 % less CPU on H.264 (docs/BENCHMARKS.md)."""
    codec = stream.codec_context
    skipping = codec.name in SKIP_NONREF_CODECS
    for packet in container.demux(stream):
        if packet.size == 0:  # end of stream: drain the decoder
            codec.skip_frame = "DEFAULT"
            frames = codec.decode(None)
        else:
            if skipping:
                codec.skip_frame = "DEFAULT" if packet.pts is None or int(packet.pts) in wanted else "NONREF"
            frames = codec.decode(packet)
        for frame in frames:
            if frame.pts is not None:
                yield frame


def _decode(path: Path, pts: np.ndarray, base: float, indices: np.ndarray,
            max_side: int | None) -> VideoFrames:
    """The frames at `indices` (presentation order; repeats allowed) as RGB uint8; a stream that breaks
    part-way gives the frames so far with `truncated=True`, none at all FeatureError."""
    if len(indices) == 0:
        raise ValueError("no frame indices requested")
    if indices.min() < 0 or indices.max() >= len(pts):
        raise ValueError(f"frame indices outside [0, {len(pts)})")
    uniq = np.unique(indices)
    wanted = {int(pts[i]): k for k, i in enumerate(uniq)}  # pts -> row of `buf`
    last = int(pts[uniq[-1]])
    buf: np.ndarray | None = None  # one array for all wanted frames: no per-frame arrays to stack
    have = np.zeros(len(uniq), bool)
    truncated = False
    container = _open(path)
    try:
        stream = container.streams.video[0]
        size = None
        try:
            for frame in _decode_skipping(container, stream, wanted):
                k = wanted.get(frame.pts)
                if k is not None:
                    if size is None:
                        size = _scaled_size(frame.width, frame.height, max_side)
                        buf = np.empty((len(uniq), size[1], size[0], 3), np.uint8)
                    if size == (frame.width, frame.height):
                        buf[k] = frame.to_ndarray(format="rgb24")
                    else:
                        buf[k] = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                    have[k] = True
                    if frame.pts >= last and have.all():
                        break
        except Exception as exc:  # corrupt packets part-way through
            truncated = True
            if not have.any():
                raise FeatureError(f"{path}: video could not be decoded ({type(exc).__name__}: {exc})") from exc
            warnings.warn(f"{path}: decoding stopped early ({exc}); using {int(have.sum())} frame(s)", stacklevel=2)
    finally:
        container.close()
    if not have.any():
        raise FeatureError(f"{path}: none of the requested frames could be decoded")
    if not have.all():
        truncated = True
    row = np.full(len(pts), -1, np.int64)
    row[uniq[have]] = np.flatnonzero(have)
    keep = indices[row[indices] >= 0]
    rows = row[keep]
    # sorted unique indices (schemes "step" and "every") use the buffer as it is; repeats copy
    frames = buf if len(rows) == len(buf) and np.array_equal(rows, np.arange(len(buf))) else buf[rows]
    times = (pts[keep] - pts[0]) * base
    return VideoFrames(frames=frames, times=times.astype(np.float64),
                       indices=keep, n_total=len(pts), duration=float((pts[-1] - pts[0]) * base),
                       truncated=truncated)


def read_sampled(path: Path | str, scheme: str = "step", step: float = 0.2, n: int = 32, every: int = 30,
                 max_side: int | None = None) -> VideoFrames:
    """Sample frame indices from the container timestamps and decode just those frames."""
    path = Path(path)
    pts, base = _packet_pts(path)
    chosen = sample_times((pts - pts[0]) * base, scheme, step=step, n=n, every=every)
    return _decode(path, pts, base, chosen, max_side)
