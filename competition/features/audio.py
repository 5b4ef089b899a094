"""Audio loading and the hand-crafted audio extractors (librosa, opensmile)."""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from competition.features.registry import ClipMedia, FeatureError, FeatureOutput, get_extractor, register_extractor

SAMPLE_RATE = 16_000


def load_audio(path: Path | str, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Any rate / channel count -> float32 mono at `sr` (read-only). Raises FeatureError naming the file.
    The audio extractors of one clip run one after another in a worker, so the last clip's decoded and
    resampled signal is kept: eGeMAPS, MFCC and MFCC statistics read and resample each wav once."""
    path = Path(path)
    if not path.exists():
        raise FeatureError(f"{path}: audio file missing")
    st = path.stat()
    if st.st_size == 0:
        raise FeatureError(f"{path}: audio file is empty (0 bytes)")
    return _load_audio(str(path.resolve()), sr, st.st_mtime_ns, st.st_size)  # a rewritten file is a new key


@functools.lru_cache(maxsize=2)
def _load_audio(path_str: str, sr: int, mtime_ns: int, size: int) -> np.ndarray:
    path = Path(path_str)
    try:
        y, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise FeatureError(f"{path}: unreadable audio ({exc})") from exc
    y = y.mean(axis=1)
    if rate != sr and len(y):
        import soxr
        y = soxr.resample(y, rate, sr).astype(np.float32)
    y.setflags(write=False)  # shared by the extractors of the clip
    return y


def _min_length(y: np.ndarray, n: int) -> np.ndarray:
    """Pad very short clips (or row matrices) so frame-based features still have a frame."""
    return y if len(y) >= n else np.pad(y, [(0, n - len(y))] + [(0, 0)] * (y.ndim - 1))


@functools.lru_cache(maxsize=4)
def _smile(feature_set: str):
    import opensmile
    return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set))


def opensmile_levels(y: np.ndarray, feature_set: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(functionals (D,), low-level descriptors (T, L), their start times (T,)) of a 16 kHz signal from one
    openSMILE run: the values opensmile.Smile.process_signal gives for each level."""
    from opensmile.core.config import config
    from opensmile.core.lib import OpenSMILE
    smile = _smile(feature_set)
    shared = Path(smile.default_config_root) / "shared"
    options = {**smile.options, "source": str(shared.parent / config.EXTERNAL_INPUT_CONFIG),
               "sink": str(shared.parent / config.EXTERNAL_OUTPUT_MULTI_CONFIG), "sinkLevelLLD": "lld",
               "sinkLevelFunc": "func", "bufferModeRbConf": str(shared / "BufferModeRb.conf.inc"),
               "frameModeFunctionalsConf": str(shared / "FrameModeFunctionals.conf.inc"),
               "sampleRate": SAMPLE_RATE, "nBits": 16}
    func: list[np.ndarray] = []
    lld: list[np.ndarray] = []
    starts: list[float] = []
    engine = OpenSMILE()
    engine.initialize(config_file=smile.config_path, options=options, loglevel=smile.loglevel,
                      log_file=smile.logfile, debug=smile.verbose)
    try:
        engine.external_sink_set_callback_ex("extsinkfunc", lambda x, meta: func.append(x.copy()))
        engine.external_sink_set_callback_ex("extsinklld",
                                             lambda x, meta: (lld.append(x.copy()), starts.append(meta.time)))
        engine.external_audio_source_write_data("extsource", bytes((y * 32768).astype(np.int16)))
        engine.external_audio_source_set_eoi("extsource")
        engine.run()
    finally:
        engine.free()
    if not func or not lld:
        raise FeatureError(f"openSMILE gave no {feature_set} output for {len(y) / SAMPLE_RATE:.2f} s of audio")
    return np.vstack(func)[0].astype(np.float32), np.vstack(lld).astype(np.float32), np.array(starts, np.float32)


@register_extractor("egemaps", kind="vector", defaults={"feature_set": "eGeMAPSv02"}, modality="audio")
def egemaps(clip: ClipMedia, feature_set: str) -> np.ndarray:
    """eGeMAPS (or ComParE_2016) functionals of the whole clip via opensmile."""
    return opensmile_levels(_min_length(load_audio(clip.wav), SAMPLE_RATE // 2), feature_set)[0]


def mfcc_matrix(y: np.ndarray, n_mfcc: int, hop_length: int = 160, n_fft: int = 400) -> np.ndarray:
    """(frames, n_mfcc). n_mels is kept >= n_mfcc: librosa silently returns fewer rows otherwise."""
    import librosa
    y = _min_length(y, n_fft)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = librosa.feature.mfcc(y=y, sr=SAMPLE_RATE, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length,
                                 n_mels=max(128, n_mfcc))
    return m.T.astype(np.float32)


@register_extractor("mfcc_stats", kind="vector", defaults={"n_mfcc": 40}, modality="audio")
def mfcc_stats(clip: ClipMedia, n_mfcc: int) -> np.ndarray:
    """Clip statistics of MFCCs and their deltas (mean, std, max) and frame-energy percentiles."""
    import librosa
    y = _min_length(load_audio(clip.wav), 400)
    m = mfcc_matrix(y, n_mfcc)
    d = librosa.feature.delta(m.T, width=3, mode="nearest").T if len(m) >= 3 else np.zeros_like(m)
    frames = y[: len(y) // 160 * 160].reshape(-1, 160)
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    energy = np.percentile(db, [50, 90, 99])
    return np.concatenate([m.mean(0), m.std(0), m.max(0), d.std(0), energy]).astype(np.float32)


@register_extractor("mfcc", kind="sequence", defaults={"n_mfcc": 128, "stack": 8, "hop_length": 160},
                    modality="audio")
def mfcc_sequence(clip: ClipMedia, n_mfcc: int, stack: int, hop_length: int) -> FeatureOutput:
    """MFCC frames with `stack` adjacent frames concatenated (seed 001: 128 x 8 = 1024-D)."""
    m = mfcc_matrix(load_audio(clip.wav), n_mfcc, hop_length=hop_length)
    n = max(1, len(m) // stack)
    m = _min_length(m, n * stack)[: n * stack].reshape(n, stack * n_mfcc)
    t = (np.arange(n) * stack + stack / 2) * hop_length / SAMPLE_RATE
    return FeatureOutput(x=m, t=t.astype(np.float32))


# ---------------------------------------------------------------- additions: log-mel, LLDs, ComParE

def load_clip_audio(clip: ClipMedia, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, list[str]]:
    """The clip's wav as 16 kHz mono; when the wav is missing, the mp4's audio track (with a warning
    in the returned list). FeatureError when neither has audio."""
    if clip.wav.exists():
        return load_audio(clip.wav, sr), []
    y = audio_from_video(clip.mp4, sr)
    return y, [f"{clip.wav} missing: audio decoded from {clip.mp4.name}"]


def audio_from_video(path: Path | str, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a video's first audio stream to float32 mono at `sr` with PyAV."""
    import av
    path = Path(path)
    if not path.exists():
        raise FeatureError(f"{path}: file missing (and no wav beside it)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise FeatureError(f"{path}: no audio track and no wav file")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
            chunks = [r.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                      for r in resampler.resample(frame)]
            chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
    except FeatureError:
        raise
    except Exception as exc:
        raise FeatureError(f"{path}: audio track unreadable ({type(exc).__name__}: {exc})") from exc
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def logmel_matrix(y: np.ndarray, n_mels: int = 64, hop_length: int = 160, n_fft: int = 400) -> np.ndarray:
    """(frames, n_mels) log-mel power in dB (ref 1.0, floor -100 dB)."""
    import librosa
    y = _min_length(y, n_fft)
    m = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    return librosa.power_to_db(m, ref=1.0, amin=1e-10, top_db=None).T.clip(-100.0).astype(np.float32)


@register_extractor("logmel", kind="sequence", defaults={"n_mels": 64, "hop_length": 160, "n_fft": 400},
                    modality="audio")
def logmel(clip: ClipMedia, n_mels: int, hop_length: int, n_fft: int) -> FeatureOutput:
    """Log-mel spectrogram frames (T, n_mels), 10 ms hop by default."""
    y, warns = load_clip_audio(clip)
    m = logmel_matrix(y, n_mels, hop_length, n_fft)
    t = np.arange(len(m)) * hop_length / SAMPLE_RATE
    return FeatureOutput(x=m, t=t.astype(np.float32), info={"warnings": warns} if warns else {})


@register_extractor("egemaps_lld", kind="sequence", defaults={"feature_set": "eGeMAPSv02"}, modality="audio")
def egemaps_lld(clip: ClipMedia, feature_set: str) -> FeatureOutput:
    """eGeMAPS low-level descriptors per 10 ms frame (T, 25) via opensmile."""
    y, warns = load_clip_audio(clip)
    functionals, x, t = opensmile_levels(_min_length(y, SAMPLE_RATE // 2), feature_set)
    if not warns:  # the wav's, as `egemaps` reads it
        _keep_functionals(clip, feature_set, functionals)
    return FeatureOutput(x=np.nan_to_num(x), t=t, info={"warnings": warns} if warns else {})


def _keep_functionals(clip: ClipMedia, feature_set: str, x: np.ndarray) -> None:
    """Store the functionals that came with the LLDs as the clip's `egemaps` output (docs/FEATURES.md, "Audio")."""
    from competition.features.store import FeatureStore, current_root
    if current_root() is None or not np.isfinite(x).all():  # a non-finite one fails when `egemaps` runs
        return
    store = FeatureStore(current_root(), get_extractor("egemaps"), {"feature_set": feature_set})
    if not store.has(clip.clip_id, clip.media):  # tied to the same media as the LLDs
        store.dir.mkdir(parents=True, exist_ok=True)
        store.save(clip.clip_id, FeatureOutput(x=x), clip.media)


@register_extractor("compare", kind="vector", defaults={"feature_set": "ComParE_2016"}, modality="audio")
def compare(clip: ClipMedia, feature_set: str) -> np.ndarray:
    """ComParE 2016 functionals of the whole clip (6373-D) via opensmile."""
    y, _ = load_clip_audio(clip)
    return np.nan_to_num(opensmile_levels(_min_length(y, SAMPLE_RATE // 2), feature_set)[0])
