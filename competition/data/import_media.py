"""The wav and mp4 the importer writes for one source clip: audio, a photo, a folder of frames or a video
(docs/IMPORT.md, "What a clip can be")."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from competition.core.io import atomic_path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".gif", ".webp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".flv", ".mpg", ".mpeg", ".wmv")
COPIED_VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")
CLIP_FPS = 5.0           # frame rate of placeholder and still clips: the face features sample every 0.2 s
STILL_SECONDS = 1.0      # a still image becomes CLIP_FPS * STILL_SECONDS identical frames
MIN_SIDE, MAX_SIDE = 112, 640
GREY_SIZE, GREY_LEVEL = 64, 128
SILENCE_RATE = 16_000


def kind_of(path: Path) -> str | None:
    """'audio', 'image', 'video' or 'frames' (a folder of images), from the suffix; None if unknown."""
    if path.is_dir():
        return "frames"
    suffix = path.suffix.lower()
    for kind, suffixes in (("audio", AUDIO_SUFFIXES), ("image", IMAGE_SUFFIXES), ("video", VIDEO_SUFFIXES)):
        if suffix in suffixes:
            return kind
    return None


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) of any image OpenCV reads (grey and 16-bit too; EXIF orientation applied);
    ValueError saying what is wrong otherwise."""
    import cv2
    if not path.is_file():
        raise ValueError("image file not found")
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    img = cv2.imdecode(np.fromfile(str(path), np.uint8), flags) if path.stat().st_size else None
    if img is None:
        raise ValueError("unreadable image" if path.stat().st_size else "image file is empty (0 bytes)")
    if min(img.shape[:2]) < 2:
        raise ValueError(f"image has no pixels to speak of ({img.shape[1]}x{img.shape[0]})")
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def clip_size(width: int, height: int) -> tuple[int, int]:
    """Video size for an image: shorter side >= MIN_SIDE, longer side <= MAX_SIDE (that wins), even."""
    s = min(max(1.0, MIN_SIDE / min(width, height)), MAX_SIDE / max(width, height))
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def write_images_video(path: Path, images: list[Path], fps: float, repeat: int = 1) -> None:
    """mp4 of `images` in order (each `repeat` times) at `fps`, all at the first one's clip_size."""
    import cv2
    from competition.data.synth import write_video
    h, w = read_image(images[0]).shape[:2]
    size = clip_size(w, h)

    def frames():
        for p in images:
            img = read_image(p)
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if img.shape[1] > size[0] else cv2.INTER_CUBIC)
            for _ in range(repeat):
                yield img

    n = len(images) * repeat
    write_video(path, frames(), np.round(np.arange(n) * 1000.0 / fps).astype(np.int64), size[0], size[1], fps)


def write_grey_video(path: Path, duration: float) -> None:
    """A cheap valid placeholder video: uniform grey, GREY_SIZE square, CLIP_FPS, `duration` long."""
    from competition.data.synth import write_video

    n = max(1, int(round(duration * CLIP_FPS)))
    frame = np.full((GREY_SIZE, GREY_SIZE, 3), GREY_LEVEL, np.uint8)
    pts = np.round(np.arange(n) * 1000.0 / CLIP_FPS).astype(np.int64)
    write_video(path, (frame for _ in range(n)), pts, GREY_SIZE, GREY_SIZE, CLIP_FPS)


def write_silence(path: Path, duration: float) -> None:
    import soundfile as sf
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.zeros(max(1, int(round(duration * SILENCE_RATE))), np.int16), SILENCE_RATE,
                 subtype="PCM_16", format="WAV")


def write_wav(src: Path, dest: Path) -> None:
    import soundfile as sf

    with atomic_path(dest) as tmp:
        if src.suffix.lower() == ".wav":
            shutil.copyfile(src, tmp)
        else:
            y, sr = sf.read(str(src), always_2d=True)
            sf.write(str(tmp), y, sr, subtype="PCM_16", format="WAV")


def _frame_times(path: Path) -> np.ndarray:
    """Sorted presentation timestamps of the video packets, in seconds from the first."""
    import av
    with av.open(str(path)) as box:
        if not box.streams.video:
            raise ValueError("no video stream")
        stream = box.streams.video[0]
        pts = sorted(p.pts for p in box.demux(stream) if p.pts is not None and p.size)
        base = float(stream.time_base)
    if not pts:
        raise ValueError("video stream has no frames")
    return (np.array(pts) - pts[0]) * base


def video_duration(path: Path) -> float:
    """Seconds from the first frame to one frame past the last, from the packet timestamps."""
    t = _frame_times(path)
    return float(t[-1] + (np.median(np.diff(t)) if len(t) > 1 else 1.0 / CLIP_FPS))


def copy_video(src: Path, dest: Path) -> None:
    """mp4/mov copied unchanged; other containers re-encoded frame by frame with the same timestamps."""
    import av
    from competition.data.synth import write_video
    if src.suffix.lower() in COPIED_VIDEO_SUFFIXES:
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        return
    t = _frame_times(src)
    with av.open(str(src)) as box:
        stream = box.streams.video[0]
        w, h = stream.codec_context.width // 2 * 2, stream.codec_context.height // 2 * 2
        frames = (f.to_ndarray(format="rgb24", width=w, height=h) for f in box.decode(stream) if f.pts is not None)
        write_video(dest, frames, np.round(t * 1000).astype(np.int64), w, h, float(stream.average_rate or 25))


def write_sound_track(src: Path, dest: Path, duration: float) -> None:
    """The video's first audio track as 16-bit mono wav at its own rate, or silence when it has none."""
    import av
    import soundfile as sf
    with av.open(str(src)) as box:
        if not box.streams.audio:
            write_silence(dest, duration)
            return
        stream = box.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.rate)
        chunks = [r.to_ndarray().reshape(-1) for f in box.decode(stream) for r in resampler.resample(f)]
        chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
    y = np.concatenate(chunks) if chunks else np.zeros(1, np.int16)
    with atomic_path(dest) as tmp:
        sf.write(str(tmp), y, stream.rate, subtype="PCM_16", format="WAV")


def write_clip(kind: str, src: Path, frames: list[Path] | None, duration: float, wav: Path, mp4: Path,
               fps: float = CLIP_FPS) -> int:
    """Write what is missing of one clip's wav and mp4 (docs/IMPORT.md); return how many files."""
    todo = [p for p in (mp4, wav) if not p.exists()]
    if kind == "audio":
        if not wav.exists():
            write_wav(src, wav)
        if not mp4.exists():
            write_grey_video(mp4, duration)
    elif kind == "video":
        if not mp4.exists():
            copy_video(src, mp4)
        if not wav.exists():
            write_sound_track(src, wav, duration)
    else:
        still = kind == "image"
        images = [src] if still else list(frames or [])
        rate = CLIP_FPS if still else fps
        if not mp4.exists():
            write_images_video(mp4, images, rate, repeat=round(STILL_SECONDS * CLIP_FPS) if still else 1)
        if not wav.exists():
            write_silence(wav, STILL_SECONDS if still else len(images) / rate)
    return len(todo)
