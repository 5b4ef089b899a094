"""A small synthetic dataset in the Aff-Wild2 layout with a known generative model (docs/AFFWILD2.md,
"Synthetic Aff-Wild2-like data"): ERI's subjects, cameras and voices driven by expression episodes."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pandas as pd

from competition.data.affwild2 import CHALLENGE_DIR, EXPR_CLASSES, VA_TARGETS
from competition.data.contract import HUME_EMOTIONS
from competition.data.synth import (
    FPS_RANGE, MAX_CLIPS, RESOLUTIONS, ClipPlan, ClipSpec, _make_subject, _rng, _smooth, _video_codec,
    plan_clip, render_frames, write_audio, write_video,
)
from competition.data.synth_audio import SR, plan_events, render_audio
from competition.data.synth_faces import EMOTION_TO_AU
from competition.core.io import atomic_files, read_json, write_csv, write_json, write_text
from competition.core.log import command, parse_and_log
from competition.core.metrics import ccc_per_column

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
TRUTH_CSV, TRUTH_JSON = "synth_affwild2_truth.csv", "synth_affwild2_truth.json"
SPLITS: tuple[str, ...] = ("Train_Set", "Validation_Set", "Test_Set")
LABELLED: tuple[str, ...] = ("Train_Set", "Validation_Set")
VA_INVALID, EXPR_INVALID = -5, -1
CROP_SIZE = 112  # side of the cropped_aligned jpgs, as in Aff-Wild2
AW2_KEY = 1002   # first random key of everything drawn here; synth.py's keys are 0..6 and 100

# ---- knobs (all recorded in the truth JSON) ----
SPLIT_FRACTIONS = {"Train_Set": 0.6, "Validation_Set": 0.2, "Test_Set": 0.2}
# Episodes: which expression each is built to show (probabilities), its peak strength and timing (s).
EPISODE_PROB = {"Happiness": 0.28, "Surprise": 0.13, "Fear": 0.14, "Disgust": 0.12, "Sadness": 0.14,
                "Anger": 0.11, "Other": 0.08}
EPISODE_AMP = (0.45, 1.0)
FIRST_ONSET = (0.0, 2.0)
RISE, HOLD, FALL = (0.4, 1.2), (0.8, 3.5), (0.6, 1.5)
GAP = (-0.5, 3.5)           # next onset - end of this hold: negative overlaps, positive leaves a neutral pause
JITTER = 0.03               # sd of the smooth per-emotion intensity wobble
# valence / arousal = offset + intensities @ weights, clipped to [-1, 1].
VALENCE_W = {"Adoration": 0.6, "Amusement": 0.8, "Anxiety": -0.5, "Disgust": -0.6, "Empathic-Pain": -0.6,
             "Fear": -0.6, "Surprise": 0.1}
AROUSAL_W = {"Adoration": -0.2, "Amusement": 0.4, "Anxiety": 0.4, "Disgust": 0.2, "Empathic-Pain": -0.3,
             "Fear": 0.6, "Surprise": 0.7}
VA_OFFSET = (0.0, 0.1)
VA_NOISE = (0.3, 0.15)       # sd of the smooth annotator noise on valence, arousal
VA_NOISE_TAU = 2.0           # its time scale, s
# Expression rules on the intensities.
NEUTRAL_BELOW = 0.25         # strongest intensity below this: Neutral
ANGER_RATIO = 0.5            # min(Disgust, Anxiety) >= this x strongest: Anger
MIXED_RATIO = 0.5            # min(positive, negative) >= this x strongest: Other
# Annotator confusions: runs of frames where class c is written as one of CONFUSIONS[c].
CONFUSIONS = {"Neutral": ("Happiness", "Sadness"), "Anger": ("Disgust", "Other"), "Disgust": ("Anger", "Sadness"),
              "Fear": ("Surprise", "Sadness"), "Happiness": ("Neutral", "Surprise"),
              "Sadness": ("Neutral", "Fear"), "Surprise": ("Fear", "Happiness"),
              "Other": ("Neutral", "Happiness", "Sadness")}
CONFUSION_RATE = 1 / 6.0     # runs per second of video
CONFUSION_LEN = (0.4, 1.6)   # s
INVALID_RUNS = 0.6           # expected random invalid runs per video (besides hidden faces)
INVALID_LEN = (0.3, 1.5)     # s

_E = {e: i for i, e in enumerate(HUME_EMOTIONS)}
_C = {c: i for i, c in enumerate(EXPR_CLASSES)}


@dataclass(frozen=True)
class Episode:
    kind: str            # the expression class it is built to show
    onset: float         # s
    rise: float
    hold: float
    fall: float
    amp: np.ndarray      # (7,) peak intensity of each emotion

    @property
    def peak(self) -> float:
        return self.onset + self.rise + self.hold / 2


@dataclass
class VideoPlan:
    clip: ClipPlan          # times at the exact frame rate; act, angle, centre, box, events from the episodes
    episodes: list[Episode]
    valid: np.ndarray       # (n,) bool: the frame has annotations
    expected: np.ndarray    # (n, 2) noise-free valence, arousal
    expr_true: np.ndarray   # (n,) noise-free class
    va: np.ndarray          # (n, 2) labels (3 decimals; -5 on invalid frames)
    expr: np.ndarray        # (n,) labels (-1 on invalid frames)


def _video_index(spec: ClipSpec) -> int:
    return spec.index - MAX_CLIPS


# ---------------------------------------------------------------- design

def design_affwild2(n_videos: int, seed: int, duration: tuple[float, float] = (12.0, 20.0)) -> list[ClipSpec]:
    """One ClipSpec per video (one subject each): name, split, subject, resolution, fps and duration.
    `index` is MAX_CLIPS + i so that plan_clip's random streams never coincide with an ERI clip's."""
    if n_videos < 1:
        raise ValueError(f"n_videos must be >= 1, got {n_videos}")
    rng = _rng(seed, AW2_KEY, 0)
    n_small = round(SPLIT_FRACTIONS["Validation_Set"] * n_videos)
    if n_videos >= 3:
        n_small = max(1, n_small)
    n_test = min(n_small, max(0, n_videos - 1 - n_small))
    split_of = rng.permutation(["Train_Set"] * (n_videos - n_small - n_test) + ["Validation_Set"] * n_small
                               + ["Test_Set"] * n_test)
    digits = max(3, len(str(n_videos)))
    specs = []
    for i in range(n_videos):
        crng = _rng(seed, AW2_KEY, 3, i)
        w, h = RESOLUTIONS[int(crng.integers(len(RESOLUTIONS)))]
        fps = float(crng.uniform(*FPS_RANGE))
        n = max(8, int(round(crng.uniform(*duration) * fps)))
        name = f"video{i + 1:0{digits}d}"
        subject = _make_subject(_rng(seed, AW2_KEY, 1, i), name, str(split_of[i]), bg_seed=MAX_CLIPS + i)
        specs.append(ClipSpec(index=MAX_CLIPS + i, clip_id=name, subject=subject,
                              latents=np.zeros(len(HUME_EMOTIONS)), duration=n / fps, fps=fps,
                              width=w, height=h, seed=seed))
    return specs


# ---------------------------------------------------------------- emotions and labels

def _episode_amp(rng: np.random.Generator, kind: str) -> np.ndarray:
    """Peak intensities of an episode of `kind`: a main emotion and co-occurring ones."""
    a = rng.uniform(*EPISODE_AMP)
    amp = np.zeros(len(HUME_EMOTIONS))

    def put(emotion: str, v: float) -> None:
        amp[_E[emotion]] = v

    if kind == "Happiness":
        if rng.random() < 0.65:
            put("Amusement", a), put("Adoration", rng.uniform(0.0, 0.4) * a)
        else:
            put("Adoration", a), put("Amusement", rng.uniform(0.1, 0.5) * a)
    elif kind == "Surprise":
        put("Surprise", a), put("Fear", rng.uniform(0.0, 0.3) * a)
    elif kind == "Fear":
        main, co = ("Fear", "Anxiety") if rng.random() < 0.6 else ("Anxiety", "Fear")
        put(main, a), put(co, rng.uniform(0.2, 0.6) * a), put("Surprise", rng.uniform(0.0, 0.3) * a)
    elif kind == "Disgust":
        put("Disgust", a), put("Empathic-Pain", rng.uniform(0.0, 0.3) * a)
    elif kind == "Sadness":
        put("Empathic-Pain", a), put("Anxiety", rng.uniform(0.0, 0.3) * a)
    elif kind == "Anger":  # disgust and anxiety together: lip raise + frown + worried, knitted brows
        put("Disgust", a), put("Anxiety", rng.uniform(0.6, 1.0) * a)
    elif kind == "Other":  # bittersweet: amused and pained at once
        put("Amusement", a), put("Empathic-Pain", rng.uniform(0.7, 1.0) * a)
    else:
        raise ValueError(f"unknown episode kind {kind!r}")
    return amp


def plan_episodes(rng: np.random.Generator, duration: float) -> list[Episode]:
    """Successive episodes from FIRST_ONSET to the end of the video, some overlapping, some apart."""
    kinds, probs = list(EPISODE_PROB), np.array(list(EPISODE_PROB.values()))
    out: list[Episode] = []
    onset = rng.uniform(*FIRST_ONSET)
    while onset < duration - 0.5:
        kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
        rise, hold, fall = rng.uniform(*RISE), rng.uniform(*HOLD), rng.uniform(*FALL)
        out.append(Episode(kind, float(onset), float(rise), float(hold), float(fall), _episode_amp(rng, kind)))
        onset += rise + hold + rng.uniform(*GAP)
    return out


def episode_intensity(episodes: list[Episode], t: np.ndarray) -> np.ndarray:
    """(n, 7) sum of the episodes' envelopes (smooth rise, hold, smooth fall to 0) x their amplitudes."""
    out = np.zeros((len(t), len(HUME_EMOTIONS)))
    for ep in episodes:
        up = np.clip((t - ep.onset) / ep.rise, 0, 1)
        down = np.clip((t - ep.onset - ep.rise - ep.hold) / ep.fall, 0, 1)
        env = up * up * (3 - 2 * up) * (1 - down * down * (3 - 2 * down))
        out += env[:, None] * ep.amp[None]
    return out


def va_expected(intensity: np.ndarray) -> np.ndarray:
    """(n, 2) noise-free valence and arousal: fixed linear maps of the intensities, clipped to [-1, 1]."""
    w = np.array([[VALENCE_W[e], AROUSAL_W[e]] for e in HUME_EMOTIONS])
    return np.clip(np.asarray(VA_OFFSET)[None] + intensity @ w, -1.0, 1.0)


def expr_class(intensity: np.ndarray) -> np.ndarray:
    """(n,) noise-free expression class (index into EXPR_CLASSES) from the intensities."""
    i = intensity
    pos = np.maximum(i[:, _E["Adoration"]], i[:, _E["Amusement"]])
    neg = i[:, [_E["Anxiety"], _E["Disgust"], _E["Empathic-Pain"], _E["Fear"]]].max(1)
    top = i.max(1)
    candidates = ("Disgust", "Fear", "Happiness", "Sadness", "Surprise")
    scores = np.stack([i[:, _E["Disgust"]], np.maximum(i[:, _E["Fear"]], i[:, _E["Anxiety"]]), pos,
                       i[:, _E["Empathic-Pain"]], i[:, _E["Surprise"]]], 1)
    cls = np.array([_C[c] for c in candidates])[scores.argmax(1)]
    cls[np.minimum(i[:, _E["Disgust"]], i[:, _E["Anxiety"]]) >= ANGER_RATIO * top] = _C["Anger"]
    cls[np.minimum(pos, neg) >= MIXED_RATIO * top] = _C["Other"]
    cls[top < NEUTRAL_BELOW] = _C["Neutral"]
    return cls


def _runs(rng: np.random.Generator, n: int, fps: float, count: int, length: tuple[float, float]
          ) -> list[slice]:
    out = []
    for _ in range(count):
        m = max(1, int(round(rng.uniform(*length) * fps)))
        s = int(rng.integers(0, max(1, n - m + 1)))
        out.append(slice(s, s + m))
    return out


def make_labels(rng: np.random.Generator, intensity: np.ndarray, t: np.ndarray, fps: float,
                visible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(valid, expected VA, noise-free class, written VA, written class) of one video."""
    n = len(t)
    expected = np.round(va_expected(intensity), 6)
    noise = np.stack([sd * _smooth(rng, t, VA_NOISE_TAU) for sd in VA_NOISE], 1)
    va = np.round(np.clip(expected + noise, -1.0, 1.0), 3) + 0.0  # + 0.0: no "-0.000"

    valid = visible.copy()
    for r in _runs(rng, n, fps, int(rng.poisson(INVALID_RUNS)), INVALID_LEN):
        valid[r] = False

    expr_true = expr_class(intensity)
    expr = expr_true.copy()
    for r in _runs(rng, n, fps, int(rng.poisson(CONFUSION_RATE * n / fps)), CONFUSION_LEN):
        u = int(rng.integers(6))
        for k in range(r.start, min(r.stop, n)):
            alt = CONFUSIONS[EXPR_CLASSES[expr_true[k]]]
            expr[k] = _C[alt[u % len(alt)]]
    va[~valid] = VA_INVALID
    expr[~valid] = EXPR_INVALID
    return valid, expected, expr_true, va, expr


# ---------------------------------------------------------------- plan and render one video

def plan_video(spec: ClipSpec) -> VideoPlan:
    """The ERI plan of the video (camera, pose, light, hands, room) with a constant frame rate and the
    expression, head tilt, fidget and vocal events of this module's episodes."""
    i = _video_index(spec)
    base = plan_clip(spec)  # spec.latents are 0: only the pose/camera/room part of this plan is kept as is
    n, subj = len(base.times), spec.subject
    t = np.arange(n) / spec.fps
    pts = np.round(t * 1000).astype(np.int64)
    rng = _rng(spec.seed, AW2_KEY, 100, i, 0)
    episodes = plan_episodes(rng, spec.duration)
    jitter = np.stack([_smooth(rng, t, 0.5) for _ in HUME_EMOTIONS], 1) * JITTER
    intensity = np.clip(episode_intensity(episodes, t) + jitter, 0.0, 1.0)
    act = np.clip(subj.expressivity * intensity @ EMOTION_TO_AU.T + subj.resting[None], 0.0, 1.2)

    # As in plan_clip: adoration tilts the head, anxiety and fear make it fidget.
    ad = _E["Adoration"]
    angle = np.clip(base.angle + subj.tilt_sign * 12.0 * subj.expressivity
                    * (intensity[:, ad] - base.intensity[:, ad]), -16, 16)
    fidget = subj.expressivity * (intensity[:, _E["Anxiety"]] + 0.5 * intensity[:, _E["Fear"]])
    w, h = spec.width, spec.height
    bw, bh = base.box[:, 2], base.box[:, 3]
    centre = base.centre + np.stack([0.05 * h * fidget * _smooth(rng, t, 0.3),
                                     0.04 * h * fidget * _smooth(rng, t, 0.3)], 1)
    inside = ((base.box[:, 0] >= 0) & (base.box[:, 1] >= 0)
              & (base.box[:, 0] + bw <= w) & (base.box[:, 1] + bh <= h))
    # Fidget never takes a visible face out of the frame, so visibility stays the base plan's.
    centre[:, 0] = np.where(inside, np.clip(centre[:, 0], bw / 2 + 1, w - bw / 2 - 1), centre[:, 0])
    centre[:, 1] = np.where(inside, np.clip(centre[:, 1], bh / 2 + 1, h - bh / 2 - 1), centre[:, 1])
    box = np.stack([centre[:, 0] - bw / 2, centre[:, 1] - bh / 2, bw, bh], 1)

    arng = _rng(spec.seed, AW2_KEY, 100, i, 2)
    events = sorted((ev for ep in episodes
                     for ev in plan_events(arng, ep.amp, np.full(len(HUME_EMOTIONS), ep.peak),
                                           subj.expressivity, subj.voice_gain, spec.duration)),
                    key=lambda ev: ev.onset)
    clip = dataclasses.replace(base, times=t, pts=pts, act=act.astype(np.float32), angle=angle, centre=centre,
                               box=box, events=events, intensity=intensity)
    valid, expected, expr_true, va, expr = make_labels(_rng(spec.seed, AW2_KEY, 100, i, 4), intensity, t,
                                                       spec.fps, base.visible)
    return VideoPlan(clip=clip, episodes=episodes, valid=valid, expected=expected, expr_true=expr_true,
                     va=va, expr=expr)


def face_crop(frame: np.ndarray, box: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The face box of an RGB frame, resized to size x size."""
    x, y, w, h = box
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(frame.shape[1], int(round(x + w))), min(frame.shape[0], int(round(y + h)))
    return cv2.resize(frame[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def _with_crops(frames: Iterator[np.ndarray], plan: ClipPlan, folder: Path) -> Iterator[np.ndarray]:
    """Pass frames through, writing the face crop of each visible one as folder/{k:05d}.jpg (k 1-based)."""
    for k, frame in enumerate(frames):
        if plan.visible[k]:
            bgr = cv2.cvtColor(face_crop(frame, plan.box[k]), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(folder / f"{k + 1:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        yield frame


def media_paths(out: Path, name: str) -> tuple[Path, Path, Path]:
    """videos/<name>.mp4, audio/<name>.wav and the cropped_aligned/<name> folder."""
    return out / "videos" / f"{name}.mp4", out / "audio" / f"{name}.wav", out / "cropped_aligned" / name


def make_video(out: Path, spec: ClipSpec, crops: bool = False) -> dict:
    """Plan one video, render what is missing of its media; return its truth."""
    cpu0 = time.process_time()
    vp = plan_video(spec)
    plan = vp.clip
    mp4, wav, crop_dir = media_paths(out, spec.clip_id)
    need_media = not (mp4.exists() and wav.exists())
    need_crops = crops and not all((crop_dir / f"{k + 1:05d}.jpg").exists() for k in np.flatnonzero(plan.visible))
    if need_media or need_crops:
        frames = render_frames(spec, plan)
        if need_crops:
            with atomic_files(crop_dir) as stage:
                frames = _with_crops(frames, plan, stage)
                if need_media:
                    write_video(mp4, frames, plan.pts, spec.width, spec.height, spec.fps)
                else:
                    for _ in frames:
                        pass
        else:
            write_video(mp4, frames, plan.pts, spec.width, spec.height, spec.fps)
        if need_media:
            wave = render_audio(_rng(spec.seed, AW2_KEY, 100, _video_index(spec), 3), spec.duration,
                                plan.events, plan.room)
            write_audio(wav, wave)
    return {"index": _video_index(spec), "rendered": bool(need_media or need_crops),
            "cpu_s": time.process_time() - cpu0, "n_episodes": len(vp.episodes),
            "episodes": [ep.kind for ep in vp.episodes], "n_audio_events": len(plan.events),
            "t": plan.times, "visible": plan.visible, "box": plan.box, "intensity": plan.intensity,
            "valid": vp.valid, "expected": vp.expected, "expr_true": vp.expr_true, "va": vp.va, "expr": vp.expr}


# ---------------------------------------------------------------- the dataset

def _va_lines(va: np.ndarray) -> str:
    rows = [f"{VA_INVALID},{VA_INVALID}" if v[0] == VA_INVALID else f"{v[0]:.3f},{v[1]:.3f}" for v in va]
    return "\n".join([",".join(VA_TARGETS), *rows]) + "\n"


def _expr_lines(expr: np.ndarray) -> str:
    return "\n".join([",".join(EXPR_CLASSES), *(str(int(c)) for c in expr)]) + "\n"


def ceilings(expected: np.ndarray, va: np.ndarray, expr_true: np.ndarray, expr: np.ndarray) -> dict:
    """The ceilings of a model that knows the noise-free labels, on the frames given (valid ones)."""
    from sklearn.metrics import f1_score

    ccc = ccc_per_column(expected, va)
    f1 = f1_score(expr, expr_true, average=None, labels=list(range(len(EXPR_CLASSES))), zero_division=0)
    return {"va_ccc_ceiling": round(float(ccc.mean()), 6),
            "va_ccc_ceiling_per_target": {k: round(float(v), 6) for k, v in zip(VA_TARGETS, ccc)},
            "expr_f1_ceiling": round(float(f1.mean()), 6),
            "expr_f1_ceiling_per_class": {c: round(float(v), 6) for c, v in zip(EXPR_CLASSES, f1)},
            "ceiling_n_frames": int(len(va))}


def _class_counts(c: np.ndarray) -> dict[str, int]:
    return {name: int((c == k).sum()) for k, name in enumerate(EXPR_CLASSES)}


def generate_affwild2(out: Path, n_videos: int = 30, seed: int = 0, jobs: int = 2,
                      duration: tuple[float, float] = (12.0, 20.0), crops: bool = False) -> Path:
    """Write the dataset into `out` (resumable: existing media are not rendered again) and return `out`.
    `crops` also writes cropped_aligned/<name>/<k:05d>.jpg for the frames whose face is visible."""
    from joblib import Parallel, delayed

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = design_affwild2(n_videos, seed, duration)
    results = Parallel(n_jobs=jobs, backend="loky")(delayed(make_video)(out, s, crops) for s in specs)
    results.sort(key=lambda r: r["index"])
    n_new = sum(r["rendered"] for r in results)
    log.info("videos: %d rendered, %d already on disk; %.1f CPU s in video workers",
             n_new, n_videos - n_new, sum(r["cpu_s"] for r in results))

    names = [s.clip_id for s in specs]
    for s, r in zip(specs, results):
        if s.split in LABELLED:
            for task, text in (("va", _va_lines(r["va"])), ("expr", _expr_lines(r["expr"]))):
                write_text(out / "annotations" / CHALLENGE_DIR[task] / s.split / f"{s.clip_id}.txt", text)
    test = "".join(f"{s.clip_id}\n" for s in specs if s.split == "Test_Set")
    for task_dir in CHALLENGE_DIR.values():
        write_text(out / "test_set" / f"{task_dir}_test_set.txt", test)

    counts = [len(r["t"]) for r in results]
    truth = pd.DataFrame({
        "name": np.repeat(names, counts), "frame": np.concatenate([np.arange(1, c + 1) for c in counts]),
        "t": np.concatenate([r["t"] for r in results]), "split": np.repeat([s.split for s in specs], counts),
        "valid": np.concatenate([r["valid"] for r in results]).astype(int),
        "face_visible": np.concatenate([r["visible"] for r in results]).astype(int),
    })
    box = np.concatenate([r["box"] for r in results]).round(1)
    for j, c in enumerate(("face_x", "face_y", "face_w", "face_h")):
        truth[c] = box[:, j]
    expected = np.concatenate([r["expected"] for r in results])
    va = np.concatenate([r["va"] for r in results])
    expr_true = np.concatenate([r["expr_true"] for r in results])
    expr = np.concatenate([r["expr"] for r in results])
    truth["expected_valence"], truth["expected_arousal"] = expected[:, 0], expected[:, 1]
    truth["expr_true"] = expr_true
    truth["valence"], truth["arousal"], truth["expr"] = va[:, 0], va[:, 1], expr
    intensity = np.concatenate([r["intensity"] for r in results])
    for j, e in enumerate(HUME_EMOTIONS):
        truth[f"intensity_{e}"] = intensity[:, j]

    valid = truth.valid.to_numpy(bool)
    lab = valid & truth.split.isin(LABELLED).to_numpy()
    meta = {
        "generator_version": GENERATOR_VERSION, "seed": seed, "n_videos": n_videos,
        "n_frames": int(len(truth)), "video_codec": _video_codec(),
        "splits": {sp: [s.clip_id for s in specs if s.split == sp] for sp in SPLITS},
        # computed on the valid Train+Validation frames
        **ceilings(expected[lab], va[lab], expr_true[lab], expr[lab]),
        "class_counts": {"written": _class_counts(expr[lab]), "noise_free": _class_counts(expr_true[lab]),
                         "noise_free_all_splits": _class_counts(expr_true[valid])},
        "valid_frac": round(float(valid.mean()), 6),
        "face_visible_frac": round(float(truth.face_visible.mean()), 6),
        "parameters": {
            "duration_s": list(duration), "fps_range": list(FPS_RANGE),
            "resolutions": [list(r) for r in RESOLUTIONS], "split_fractions": SPLIT_FRACTIONS,
            "episode_prob": EPISODE_PROB, "episode_amp": list(EPISODE_AMP), "first_onset": list(FIRST_ONSET),
            "rise": list(RISE), "hold": list(HOLD), "fall": list(FALL), "gap": list(GAP), "jitter": JITTER,
            "valence_w": VALENCE_W, "arousal_w": AROUSAL_W, "va_offset": list(VA_OFFSET),
            "va_noise_sd": list(VA_NOISE), "va_noise_tau_s": VA_NOISE_TAU, "neutral_below": NEUTRAL_BELOW,
            "anger_ratio": ANGER_RATIO, "mixed_ratio": MIXED_RATIO,
            "confusions": {k: list(v) for k, v in CONFUSIONS.items()}, "confusion_rate_per_s": CONFUSION_RATE,
            "confusion_len_s": list(CONFUSION_LEN), "invalid_runs_per_video": INVALID_RUNS,
            "invalid_len_s": list(INVALID_LEN), "audio_sr": SR, "crops": crops, "crop_size": CROP_SIZE,
        },
        "videos": [{"name": s.clip_id, "split": s.split, "fps": round(s.fps, 6), "n_frames": len(r["t"]),
                    "width": s.width, "height": s.height, "duration_s": round(s.duration, 6),
                    "expressivity": round(s.subject.expressivity, 6), "episodes": r["episodes"],
                    "n_audio_events": r["n_audio_events"],
                    "face_visible_frac": round(float(r["visible"].mean()), 6),
                    "valid_frac": round(float(r["valid"].mean()), 6)} for s, r in zip(specs, results)],
    }
    write_csv(out / TRUTH_CSV, truth, float_format="%.6f")
    write_json(out / TRUTH_JSON, meta)
    return out


@command
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-videos", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--duration", type=float, nargs=2, default=(12.0, 20.0), metavar=("MIN_S", "MAX_S"))
    ap.add_argument("--crops", action="store_true", help="also write cropped_aligned/<name>/<k:05d>.jpg")
    args = parse_and_log(ap, argv)
    t0 = time.perf_counter()
    out = generate_affwild2(args.out, n_videos=args.n_videos, seed=args.seed, jobs=args.jobs,
                            duration=tuple(args.duration), crops=args.crops)
    m = read_json(out / TRUTH_JSON)
    print(f"wrote {m['n_videos']} videos ({m['n_frames']} frames, {100 * m['valid_frac']:.1f} % valid) to {out} "
          f"in {time.perf_counter() - t0:.1f} s")
    print("  " + ", ".join(f"{k} {len(v)}" for k, v in m["splits"].items()))
    print(f"  VA ceiling (mean CCC, valid Train+Val frames): {m['va_ccc_ceiling']:.3f}  "
          + " ".join(f"{k}={v:.3f}" for k, v in m["va_ccc_ceiling_per_target"].items()))
    print(f"  EXPR ceiling (macro-F1): {m['expr_f1_ceiling']:.3f}  "
          + " ".join(f"{k}={v:.2f}" for k, v in m["expr_f1_ceiling_per_class"].items()))
    print("  written classes: " + " ".join(f"{k}={v}" for k, v in m["class_counts"]["written"].items()))


if __name__ == "__main__":
    raise SystemExit(main())
