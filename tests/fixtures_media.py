"""Small real media for the feature tests: clips of skimage's astronaut photo (a real face) moving
slowly, faceless noise clips, wavs at any rate, and Hume-layout datasets built from them."""
from __future__ import annotations

import fractions
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from competition.data.contract import HUME_EMOTIONS


def astronaut_frame(i: int, size: tuple[int, int] = (192, 144), roll: float = 5.0) -> np.ndarray:
    """Frame i of a slowly moving, slightly rotating astronaut face, RGB uint8 (height, width, 3)."""
    import cv2
    from skimage import data
    img = data.astronaut()
    m = cv2.getRotationMatrix2D((256, 200), roll * np.sin(i / 10), 0.5)
    m[:, 2] += [-160 + 4 * np.sin(i / 7), -100 + 2 * np.cos(i / 9)]
    return cv2.warpAffine(img, m, size, borderMode=cv2.BORDER_REFLECT)


def aligned_face(img: np.ndarray, size: int = 112, margin: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(crop, the detector's 5 landmarks in crop pixels) of the largest face of an RGB photo, made as the
    face pipeline makes its crops (detector chain, then alignment to the template)."""
    import cv2
    from competition.features.faces import crop_transform, detect_frames
    boxes, lms, source = detect_frames(img[None], ["haar", "mtcnn"])
    assert source[0] and np.isfinite(lms).all(), "no face with landmarks found"
    m = crop_transform(boxes[0], lms[0], size, margin)
    crop = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return crop, lms[0] @ m[:, :2].T + m[:, 2]


def noise_frame(i: int, size: tuple[int, int] = (192, 144)) -> np.ndarray:
    rng = np.random.default_rng(i)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def write_video(path: Path, n_frames: int = 45, fps: float = 15.0, face: bool | Callable[[int], bool] = True,
                times: np.ndarray | None = None, audio: bool = False, size: tuple[int, int] = (192, 144)) -> Path:
    """H.264 mp4. `times` (s) sets each frame's presentation time (variable frame rate); `face` may say
    per frame index whether it shows the face (else noise)."""
    import av
    path.parent.mkdir(parents=True, exist_ok=True)
    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = tb
        stream.codec_context.time_base = tb
        astream = out.add_stream("aac", rate=16000) if audio else None
        for i in range(n_frames):
            img = astronaut_frame(i, size) if (face(i) if callable(face) else face) else noise_frame(i, size)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = int(round((times[i] if times is not None else i / fps) * 1000))
            frame.time_base = tb
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
        if astream is not None:
            samples = (0.1 * np.sin(np.arange(int(16000 * n_frames / fps)) / 5)).astype(np.float32)
            for s in range(0, len(samples), 1024):
                af = av.AudioFrame.from_ndarray(samples[None, s:s + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, s
                for p in astream.encode(af):
                    out.mux(p)
            for p in astream.encode():
                out.mux(p)
    return path


def write_wav(path: Path, seconds: float = 3.0, sr: int = 16000, channels: int = 1) -> Path:
    import soundfile as sf
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
    y = np.stack([tone * (1 - 0.3 * c) for c in range(channels)], 1)
    sf.write(str(path), y, sr)
    return path


def write_data_info(root: Path, ids: list[str], split: str = "Train") -> Path:
    rng = np.random.default_rng(0)
    info = pd.DataFrame({"File_ID": [f"[{i}]" for i in ids], "Split": split})
    for e in HUME_EMOTIONS:
        info[e] = rng.uniform(0, 1, len(ids)).round(3)
    info["Age"], info["Country"] = 30.0, "United States"
    root.mkdir(parents=True, exist_ok=True)
    info.to_csv(root / "data_info.csv", index=False)
    return root


def good_clip(root: Path, clip_id: str, split: str = "train", **video_kw) -> None:
    write_video(root / split / "mp4" / f"{clip_id}.mp4", **video_kw)
    write_wav(root / split / "wav" / f"{clip_id}.wav", seconds=video_kw.get("n_frames", 45) / 15.0)
