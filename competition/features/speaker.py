"""Who is speaking: a GE2E speaker-verification encoder rebuilt here with the weights the `resemblyzer` wheel
ships (never imported), its frontend with an energy gate (`voiced`); no usable voice is a FeatureError
(docs/FEATURES.md, "Identity")."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from competition.features.audio import SAMPLE_RATE, load_clip_audio
from competition.features.registry import ClipMedia, FeatureError, FeatureOutput, register_extractor, wheel_file

N_MELS, WIN_MS, HOP_MS = 40, 25, 10
PARTIAL_FRAMES = 160          # 1.6 s per partial utterance
PARTIAL_STEP = PARTIAL_FRAMES // 2
TARGET_DBFS = -30.0
GATE_MS = 30                  # energy-gate window (resemblyzer's VAD window)
MIN_SOUND_S = 0.06            # a clip needs this much sound above its own floor (not steady noise) ...
LOUD_DBFS = -35.0             # ... where windows this loud always count as sound (continuous speech)
GATE_DILATE = 7               # windows of context kept around sound (resemblyzer: max silence 6 + 1)


def shipped_weights() -> Path:
    """Path of resemblyzer's pretrained.pt, located without importing the package."""
    return wheel_file("resemblyzer", "pretrained.pt",
                      install="pip install resemblyzer==0.1.4 --no-deps (scripts/setup.sh does it)")


@functools.lru_cache(maxsize=2)
def load_encoder(weights: str = ""):
    """The GE2E encoder with its weights (default: the file the resemblyzer wheel ships), in eval mode."""
    import torch
    from torch import nn

    class SpeakerEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:  # (B, T, 40) -> (B, 256), unit norm
            _, (hidden, _) = self.lstm(mels)
            e = torch.relu(self.linear(hidden[-1]))
            return e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)

    path = Path(weights) if weights else shipped_weights()
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model_state", state)
    net = SpeakerEncoder()
    # the checkpoint also holds GE2E's similarity scale/bias, used only in training
    net.load_state_dict({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}, strict=True)
    return net.eval()


def voiced(y: np.ndarray, min_dbfs: float, above_floor_db: float, range_db: float = 40.0
           ) -> tuple[np.ndarray, float]:
    """(per-sample bool of the audio to embed, seconds of sound that rises above the clip's floor).

    Level per GATE_MS window. Sound: windows over `min_dbfs` and either `above_floor_db` over the clip's
    floor (10th percentile) or over LOUD_DBFS; a clip of steady, quiet room noise has none. Kept: windows
    within `range_db` of the loudest and over `min_dbfs`, dilated by GATE_DILATE windows (short pauses
    inside speech stay, long silences go, as resemblyzer's VAD trimming); continuous speech is kept whole."""
    from scipy.ndimage import binary_dilation
    win = SAMPLE_RATE * GATE_MS // 1000
    n = len(y) // win
    if n == 0:
        return np.zeros(len(y), bool), 0.0
    db = 10 * np.log10(np.mean(y[: n * win].reshape(n, win).astype(np.float64) ** 2, axis=1) + 1e-12)
    sound = (db > min_dbfs) & ((db > np.percentile(db, 10) + above_floor_db) | (db > LOUD_DBFS))
    on = (db > min_dbfs) & (db > db.max() - range_db)
    on = binary_dilation(on, np.ones(GATE_DILATE, bool)) & (db > min_dbfs) if on.any() else on
    keep = np.repeat(on, win)
    return np.pad(keep, (0, len(y) - len(keep))), float(sound.sum() * win) / SAMPLE_RATE


def mel_frames(y: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram as resemblyzer computes it (not log)."""
    import librosa
    m = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=SAMPLE_RATE * WIN_MS // 1000,
                                       hop_length=SAMPLE_RATE * HOP_MS // 1000, n_mels=N_MELS)
    return m.astype(np.float32).T


def speaker_embedding(y: np.ndarray, min_voiced_s: float = 0.3, min_dbfs: float = -50.0,
                      above_floor_db: float = 15.0, weights: str = "") -> tuple[np.ndarray, float]:
    """(256-D unit embedding, seconds of audio kept) of a 16 kHz mono waveform. FeatureError when nothing
    rises above the clip's floor (silence, steady noise) or less than `min_voiced_s` seconds are kept."""
    import torch
    y = np.asarray(y, np.float32)
    keep, sound = voiced(y, min_dbfs, above_floor_db)
    seconds = float(keep.sum()) / SAMPLE_RATE
    if sound < MIN_SOUND_S or seconds < min_voiced_s:
        raise FeatureError(f"no usable voice: {sound:.2f} s of sound {above_floor_db} dB over the clip's floor "
                           f"(needs {MIN_SOUND_S} s), {seconds:.2f} s over {min_dbfs} dBFS (needs {min_voiced_s} s)")
    y = y[keep]
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    gain_db = TARGET_DBFS - 20 * np.log10(max(rms, 1e-9))
    if gain_db > 0:  # raise quiet clips only, as resemblyzer's normalize_volume(increase_only=True)
        y = y * np.float32(10 ** (gain_db / 20))
    mel = mel_frames(y)
    starts = list(range(0, max(1, len(mel) - PARTIAL_FRAMES + 1), PARTIAL_STEP))
    if len(mel) > PARTIAL_FRAMES and (len(mel) - PARTIAL_FRAMES) % PARTIAL_STEP:
        starts.append(len(mel) - PARTIAL_FRAMES)  # the tail, so every frame is seen
    if len(mel) < PARTIAL_FRAMES:  # short clip: one zero-padded partial
        mel = np.pad(mel, ((0, PARTIAL_FRAMES - len(mel)), (0, 0)))
    batch = np.stack([mel[s:s + PARTIAL_FRAMES] for s in starts])
    with torch.no_grad():
        partial = load_encoder(weights)(torch.from_numpy(batch)).numpy()
    e = partial.mean(0)
    return (e / max(float(np.linalg.norm(e)), 1e-12)).astype(np.float32), seconds


@register_extractor("speaker", kind="vector",
                    defaults={"weights": "", "min_voiced_s": 0.3, "min_dbfs": -50.0, "above_floor_db": 15.0},
                    modality="audio")
def speaker(clip: ClipMedia, weights: str, min_voiced_s: float, min_dbfs: float, above_floor_db: float
            ) -> FeatureOutput:
    """GE2E speaker embedding (256-D, unit norm) of the clip's voiced audio; resemblyzer's shipped weights."""
    y, warns = load_clip_audio(clip)
    e, seconds = speaker_embedding(y, float(min_voiced_s), float(min_dbfs), float(above_floor_db), str(weights))
    info = {"voiced_s": round(seconds, 3), **({"warnings": warns} if warns else {})}
    return FeatureOutput(x=e, info=info)
