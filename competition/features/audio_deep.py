"""Deep audio embeddings (docs/FEATURES.md, "Audio"): `deepspectrum` (seed 003: mel-spectrogram images
embedded by a timm CNN) and `audio_encoder` with its aliases (hidden states of a transformers speech
encoder from a local `save_pretrained` folder, or a hub id when online)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from competition.features.audio import SAMPLE_RATE, load_clip_audio, logmel_matrix
from competition.features.registry import ClipMedia, FeatureError, FeatureOutput, register_extractor


# ---------------------------------------------------------------- DeepSpectrum

def spectrogram_images(y: np.ndarray, window: float, hop: float, n_mels: int = 128, size: int = 224
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 3) uint8 viridis mel images of the windows and their centre times (s)."""
    import cv2
    from matplotlib import colormaps
    win, step = int(window * SAMPLE_RATE), int(hop * SAMPLE_RATE)
    if len(y) < win:
        y = np.pad(y, (0, win - len(y)))
    starts = np.arange(0, len(y) - win + 1, step)
    cmap = colormaps["viridis"]
    images = []
    for s in starts:
        m = logmel_matrix(y[s:s + win], n_mels=n_mels, hop_length=max(1, win // size)).T  # (mels, frames)
        lo, hi = m.min(), m.max()
        m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        rgb = (cmap(m[::-1])[..., :3] * 255).astype(np.uint8)  # low frequencies at the bottom
        images.append(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR))
    return np.stack(images), ((starts + win / 2) / SAMPLE_RATE).astype(np.float32)


DEEPSPECTRUM_DEFAULTS: dict[str, Any] = {"model": "densenet121", "weights": "", "random_init": False,
                                         "window": 1.0, "hop": 0.5, "n_mels": 128, "size": 224,
                                         "batch_size": 32}


@register_extractor("deepspectrum", kind="sequence", defaults=DEEPSPECTRUM_DEFAULTS, dtype="float16",
                    modality="audio")
def deepspectrum(clip: ClipMedia, model: str, weights: str, random_init: bool, window: float, hop: float,
                 n_mels: int, size: int, batch_size: int) -> FeatureOutput:
    """CNN embeddings (T, D) of mel-spectrogram images, one per `window` s every `hop` s."""
    from competition.features.visual import embed_images, load_timm
    y, warns = load_clip_audio(clip)
    images, t = spectrogram_images(y, window, hop, n_mels, size)
    x = embed_images(load_timm(model, weights, random_init), images, 0, batch_size)
    return FeatureOutput(x=x, t=t, info={"model": model, "warnings": warns} if warns else {"model": model})


# ---------------------------------------------------------------- transformers speech encoders

@functools.lru_cache(maxsize=2)
def load_speech_encoder(model: str):
    """(processor, encoder module, is_whisper) from a local folder or a hub id."""
    import torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel
    local = Path(model).expanduser()
    source = str(local) if local.exists() else model
    try:
        config = AutoConfig.from_pretrained(source)
        net = AutoModel.from_pretrained(source)
    except Exception as exc:
        raise FeatureError(f"cannot load speech encoder {model!r} ({type(exc).__name__}: {exc}); offline, "
                           "pass a folder written by save_pretrained") from exc
    whisper = config.model_type == "whisper"
    try:
        processor = AutoFeatureExtractor.from_pretrained(source)
    except Exception:  # a folder with the model only: build the feature extractor from its config
        if whisper:
            from transformers import WhisperFeatureExtractor
            processor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
        else:
            from transformers import Wav2Vec2FeatureExtractor
            processor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    if whisper:
        net = net.get_encoder()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return processor, net.eval().to(device), whisper


def encoder_hidden_states(y: np.ndarray, model: str, layer: int = -1, chunk_s: float = 30.0) -> np.ndarray:
    """(frames, hidden) states of `layer` for 16 kHz mono audio, in chunks of `chunk_s` seconds."""
    import torch
    processor, net, whisper = load_speech_encoder(model)
    device = next(net.parameters()).device
    chunk = int(min(chunk_s, 30.0 if whisper else chunk_s) * SAMPLE_RATE)
    y = y if len(y) >= SAMPLE_RATE // 10 else np.pad(y, (0, SAMPLE_RATE // 10 - len(y)))
    rows = []
    with torch.inference_mode():
        for s in range(0, len(y), chunk):
            part = y[s:s + chunk]
            if len(part) < SAMPLE_RATE // 10 and rows:
                break
            if whisper:  # Whisper's encoder always sees 30 s; keep the frames that cover real audio
                feats = processor(part, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features.to(device)
                out = net(feats, output_hidden_states=True).hidden_states[layer][0]
                n_frames = int(np.ceil(len(part) / SAMPLE_RATE * 50))
                out = out[:max(1, n_frames)]
            else:
                inputs = processor(part, sampling_rate=SAMPLE_RATE, return_tensors="pt")
                out = net(inputs.input_values.to(device), output_hidden_states=True).hidden_states[layer][0]
            rows.append(out.float().cpu().numpy())
    return np.concatenate(rows)


ENCODER_DEFAULTS: dict[str, Any] = {"model": "", "layer": -1, "chunk_s": 30.0}
_HUB_DEFAULTS = {"wav2vec2": "facebook/wav2vec2-base-960h", "wavlm": "microsoft/wavlm-base-plus",
                 "hubert": "facebook/hubert-base-ls960", "whisper": "openai/whisper-base"}


def _encoder_output(clip: ClipMedia, model: str, layer: int, chunk_s: float) -> FeatureOutput:
    if not model:
        raise FeatureError("audio_encoder needs model= a save_pretrained folder or a hub id")
    y, warns = load_clip_audio(clip)
    x = encoder_hidden_states(y, model, layer, chunk_s)
    t = (np.arange(len(x)) + 0.5) * 0.02  # every supported encoder emits one frame per 20 ms
    info: dict[str, Any] = {"model": Path(model).name, "dim": int(x.shape[1])}
    if warns:
        info["warnings"] = warns
    return FeatureOutput(x=x, t=t.astype(np.float32), info=info)


@register_extractor("audio_encoder", kind="sequence", defaults=ENCODER_DEFAULTS, dtype="float16",
                    modality="audio")
def audio_encoder(clip: ClipMedia, model: str, layer: int, chunk_s: float) -> FeatureOutput:
    """Hidden states (T, H) of a wav2vec2 / WavLM / HuBERT / Whisper encoder, 20 ms per row."""
    return _encoder_output(clip, model, layer, chunk_s)


def _alias(name: str) -> None:
    def fn(clip: ClipMedia, model: str, layer: int, chunk_s: float) -> FeatureOutput:
        return _encoder_output(clip, model, layer, chunk_s)
    fn.__doc__ = f"Hidden states of a {name} encoder (default model {_HUB_DEFAULTS[name]}; local folder offline)."
    fn.__name__ = fn.__qualname__ = name
    register_extractor(name, kind="sequence", defaults={**ENCODER_DEFAULTS, "model": _HUB_DEFAULTS[name]},
                       dtype="float16", modality="audio")(fn)


for _name in _HUB_DEFAULTS:
    _alias(_name)
