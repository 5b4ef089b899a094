"""The sound of the synthetic dataset: 16 kHz room noise with vocal-like events whose kind and strength follow
the latent emotions. Most clips get no event at all, as most Hume-Reaction clips are nearly silent."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from competition.data.contract import HUME_EMOTIONS

SR = 16_000

# Event kind per emotion, expected events per clip at latent 1 and expressivity 1, and the latent below which
# an emotion makes no sound (lower for the emotions whose latents are skewed low).
EVENT_OF: dict[str, str] = {
    "Adoration": "aww", "Amusement": "laugh", "Anxiety": "tremble", "Disgust": "ugh",
    "Empathic-Pain": "sigh", "Fear": "gasp", "Surprise": "gasp",
}
EVENT_RATE: dict[str, float] = {
    "Adoration": 0.9, "Amusement": 1.3, "Anxiety": 0.8, "Disgust": 1.0,
    "Empathic-Pain": 1.0, "Fear": 0.8, "Surprise": 1.0,
}
EVENT_DURATION: dict[str, tuple[float, float]] = {  # seconds, uniform between the two
    "laugh": (0.5, 1.4), "aww": (0.5, 0.9), "gasp": (0.2, 0.4), "sigh": (0.7, 1.2), "ugh": (0.25, 0.5),
    "tremble": (1.0, 2.0),
}
EVENT_THRESHOLD: dict[str, float] = {
    "Adoration": 0.5, "Amusement": 0.6, "Anxiety": 0.4, "Disgust": 0.3,
    "Empathic-Pain": 0.3, "Fear": 0.4, "Surprise": 0.5,
}


@dataclass(frozen=True)
class AudioEvent:
    kind: str
    emotion: str
    onset: float      # seconds
    duration: float   # seconds
    amplitude: float  # peak amplitude (full scale = 1)


@dataclass(frozen=True)
class RoomSound:
    noise_rms: float   # coloured background noise level
    hum_hz: float      # mains frequency, 0 = no hum
    hum_level: float
    n_clicks: int      # keyboard/mouse clicks: sound that carries no emotion


def plan_events(rng: np.random.Generator, latents: np.ndarray, peaks: np.ndarray, expressivity: float,
                voice_gain: float, duration: float) -> list[AudioEvent]:
    """Events of one clip: Poisson counts growing with each latent above its EVENT_THRESHOLD, placed around the
    time that emotion peaks on the face (`peaks`, seconds), louder with latent x expressivity."""
    events: list[AudioEvent] = []
    for e, emo in enumerate(HUME_EMOTIONS):
        drive = max(0.0, float(latents[e]) - EVENT_THRESHOLD[emo]) / (1.0 - EVENT_THRESHOLD[emo])
        count = int(rng.poisson(EVENT_RATE[emo] * drive * expressivity))
        for j in range(count):
            kind = EVENT_OF[emo]
            dur = min(float(rng.uniform(*EVENT_DURATION[kind])), 0.9 * duration)
            centre = peaks[e] + (rng.normal(0, 0.3) if j == 0 else rng.uniform(-1.0, 2.0))
            onset = float(np.clip(centre - dur / 3, 0.0, duration - dur))
            amp = (0.04 + 0.25 * float(latents[e]) * expressivity) * voice_gain * rng.uniform(0.7, 1.3)
            events.append(AudioEvent(kind, emo, round(onset, 4), round(dur, 4), round(min(amp, 0.7), 5)))
    return sorted(events, key=lambda ev: ev.onset)


def _tukey(n: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    a, r = max(1, int(attack * SR)), max(1, int(release * SR))
    env[:a] = np.sin(0.5 * np.pi * np.linspace(0, 1, a)) ** 2
    env[-r:] = np.minimum(env[-r:], np.cos(0.5 * np.pi * np.linspace(0, 1, r)) ** 2)
    return env


def _voiced(f0: np.ndarray, tilt: float = 1.0) -> np.ndarray:
    """Harmonic source with the given f0 contour (Hz per sample); amplitude falls as 1/h**tilt."""
    phase = 2 * np.pi * np.cumsum(f0) / SR
    n_harm = max(1, int(3800 / f0.max()))
    h = np.arange(1, n_harm + 1)[:, None]
    return (np.sin(h * phase[None]) / h ** tilt).sum(0)


def _formants(x: np.ndarray, formants: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """Parallel resonators: (centre Hz, bandwidth Hz, gain)."""
    out = np.zeros_like(x)
    for f, bw, g in formants:
        b, a = signal.iirpeak(f, f / bw, fs=SR)
        out += g * signal.lfilter(b, a, x)
    return out


def _band(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return signal.sosfilt(signal.butter(2, [lo, hi], btype="band", fs=SR, output="sos"), x)


_VOWEL_A = ((800, 90, 1.0), (1250, 110, 0.6), (2600, 170, 0.25))


def _event_wave(kind: str, dur: float, rng: np.random.Generator) -> np.ndarray:
    n = max(16, int(dur * SR))
    t = np.arange(n) / SR
    if kind == "laugh":  # train of voiced "ha" pulses with a falling f0
        out = np.zeros(n)
        ioi, base = rng.uniform(0.14, 0.22), rng.uniform(200, 300)
        for i, start in enumerate(np.arange(0, dur - 0.08, ioi)):
            m = int(rng.uniform(0.07, 0.12) * SR)
            s = int(start * SR)
            m = min(m, n - s)
            f0 = base * 0.97 ** i * np.linspace(1.03, 0.97, m)
            pulse = _formants(_voiced(f0) + 0.3 * rng.standard_normal(m), _VOWEL_A)
            out[s:s + m] += pulse * np.hanning(m) ** 0.7 * 0.85 ** i
        return out
    if kind == "aww":  # soft sustained vowel with a falling glide
        f0 = np.linspace(rng.uniform(210, 250), rng.uniform(160, 185), n)
        src = _voiced(f0, tilt=1.6) + 0.05 * rng.standard_normal(n)
        return _formants(src, ((650, 90, 1.0), (1000, 110, 0.5), (2500, 170, 0.1))) * _tukey(n, 0.15, 0.25)
    if kind == "gasp":  # broadband inhale whose spectrum rises
        noise = rng.standard_normal(n)
        w = t / dur
        return ((1 - w) * _band(noise, 500, 1200) + w * _band(noise, 1800, 4000)) * _tukey(n, 0.03, 0.06)
    if kind == "sigh":  # exhale that darkens, with a little voice at the start
        noise = rng.standard_normal(n)
        w = t / dur
        dark = signal.sosfilt(signal.butter(2, 500, fs=SR, output="sos"), noise)
        out = ((1 - w) * _band(noise, 900, 2500) + w * 2.0 * dark) * np.exp(-2.0 * w) * _tukey(n, 0.08, 0.1)
        m = min(n, int(0.25 * SR))
        out[:m] += 0.3 * _formants(_voiced(np.linspace(160, 120, m)), _VOWEL_A) * np.hanning(m)
        return out
    if kind == "ugh":  # low, rough voiced grunt
        rough = 1 + 0.05 * signal.sosfilt(signal.butter(1, 60, fs=SR, output="sos"), rng.standard_normal(n)) * 8
        f0 = rng.uniform(105, 135) * rough
        src = _voiced(f0, tilt=0.8)
        return _formants(src, ((600, 90, 1.0), (1150, 110, 0.7), (2400, 160, 0.3))) * _tukey(n, 0.02, 0.12)
    if kind == "tremble":  # shaky breath: band noise, amplitude-modulated at 5-8 Hz
        am = 1 - 0.7 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(5, 8) * t))
        return 0.6 * _band(rng.standard_normal(n), 300, 1500) * am * _tukey(n, 0.2, 0.3)
    raise ValueError(f"unknown event kind {kind!r}")


def render_audio(rng: np.random.Generator, duration: float, events: list[AudioEvent],
                 room: RoomSound) -> np.ndarray:
    """Mono float32 waveform in [-1, 1] at SR."""
    n = int(round(duration * SR))
    white = rng.standard_normal(n)
    brown = signal.lfilter([1.0], [1.0, -0.97], white) * 0.25
    bg = brown + 0.3 * rng.standard_normal(n)
    x = bg * (room.noise_rms / (bg.std() + 1e-12))
    t = np.arange(n) / SR
    if room.hum_hz > 0:
        ph = rng.uniform(0, 2 * np.pi)
        x += room.hum_level * (np.sin(2 * np.pi * room.hum_hz * t + ph)
                               + 0.5 * np.sin(4 * np.pi * room.hum_hz * t + ph)
                               + 0.25 * np.sin(6 * np.pi * room.hum_hz * t + ph))
    for _ in range(room.n_clicks):
        s, m = int(rng.uniform(0, duration - 0.02) * SR), int(0.006 * SR)
        x[s:s + m] += rng.uniform(0.01, 0.05) * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.0015 * SR))
    for ev in events:
        wave = _event_wave(ev.kind, ev.duration, rng)
        s = int(ev.onset * SR)
        wave = wave[: max(0, n - s)]
        x[s:s + len(wave)] += ev.amplitude * wave / (np.abs(wave).max() + 1e-12)
    return np.clip(x, -1.0, 1.0).astype(np.float32)
