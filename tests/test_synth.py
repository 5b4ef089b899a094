"""The embedded synthetic dataset: Hume layout, determinism, resumability, and that face and voice carry the
latent emotions in a form real detectors and features can find."""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy import stats

from competition.data.contract import HUME_EMOTIONS, load_dataset, media_path, normalise_id
from competition.data import synth
from competition.data.synth_faces import COMPONENTS, EMOTION_TO_AU

N, SEED, DURATION = 48, 7, (2.0, 3.0)
HUME_HEADER = "File_ID,Split,Adoration,Amusement,Anxiety,Disgust,Empathic-Pain,Fear,Surprise,Age,Country"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("synth") / "d", n=N, seed=SEED, jobs=2, duration=DURATION)


@pytest.fixture(scope="module")
def truth(data) -> pd.DataFrame:
    return pd.read_csv(data / synth.TRUTH_CSV)


@pytest.fixture(scope="module")
def frames(data) -> pd.DataFrame:
    return pd.read_csv(data / synth.FRAMES_CSV)


def _decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    import av
    with av.open(str(path)) as box:
        out = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in box.decode(video=0)]
    return [o[0] for o in out], [o[1] for o in out]


# ---------------------------------------------------------------- layout and labels

def test_layout_and_contract(data):
    assert (data / "data_info.csv").read_text().splitlines()[0] == HUME_HEADER
    ds = load_dataset(data)  # checks every clip's mp4 and wav exist
    assert ds.emotions == list(HUME_EMOTIONS)
    raw = pd.read_csv(data / "data_info.csv", dtype=str, keep_default_na=False)
    assert len(raw) == N and raw.File_ID.str.fullmatch(r"\[\d{5}\]").all()
    for cid in ds.ids:
        assert re.fullmatch(r"\d{5}", cid)
        assert media_path(data, ds.split_of(cid), cid, "mp4").stat().st_size > 0
        assert media_path(data, ds.split_of(cid), cid, "wav").stat().st_size > 0
    test = raw[raw.Split == "Test"]
    assert len(test) > 0 and (test[list(HUME_EMOTIONS)] == "").all().all()
    lab = raw[raw.Split != "Test"]
    vals = lab[list(HUME_EMOTIONS)]
    assert vals.apply(lambda c: c.str.fullmatch(r"[01]\.\d{4}")).all().all()
    y = vals.astype(float).to_numpy()
    assert ((y >= 0) & (y <= 1)).all()
    assert ((y == 1.0).sum(1) == 1).all()
    assert set(raw.Country) <= {"United States", "South Africa"}
    raw.Age.astype(float)


def test_subjects_are_disjoint_across_splits_and_split_sizes(data, truth):
    assert truth.groupby("Subject").Split.nunique().max() == 1
    big = synth.design(2000, seed=1)
    frac = pd.Series([s.split for s in big]).value_counts(normalize=True)
    for split, want in synth.SPLIT_FRACTIONS.items():
        assert abs(frac[split] - want) < 0.03
    assert 5 <= pd.Series([s.subject.name for s in big]).value_counts().mean() <= 7


def test_truth_files(data, truth, frames):
    cols = ["File_ID", "Subject", "Split", *[f"latent_{e}" for e in HUME_EMOTIONS],
            *[f"expected_{e}" for e in HUME_EMOTIONS], "expressivity", "fps", "n_frames", "width", "height",
            "duration_s", "face_visible_frac", "n_audio_events"]
    assert list(truth.columns) == cols
    assert list(frames.columns) == ["File_ID", "frame", "t", "face_visible", "face_x", "face_y", "face_w", "face_h"]
    info = pd.read_csv(data / "data_info.csv", dtype=str)
    assert list(truth.File_ID) == list(info.File_ID)
    assert (frames.groupby("File_ID").size().loc[truth.File_ID].to_numpy() == truth.n_frames).all()
    vis = frames.groupby("File_ID").face_visible.mean().loc[truth.File_ID].to_numpy()
    assert np.allclose(vis, truth.face_visible_frac, atol=1e-6)
    ev = pd.read_csv(data / synth.EVENTS_CSV)
    counts = ev.groupby("File_ID").size().reindex(truth.File_ID, fill_value=0).to_numpy()
    assert (counts == truth.n_audio_events).all()


def test_oracle_ceiling(data, truth):
    meta = json.loads((data / synth.TRUTH_JSON).read_text())
    assert meta["seed"] == SEED and meta["n"] == N and meta["generator_version"]
    c = meta["oracle_ceiling"]
    assert 0.4 < c["mean_pcc"] < 0.95
    assert set(c["pcc"]) == set(HUME_EMOTIONS)
    # recompute it from the files with the official metric
    info = pd.read_csv(data / "data_info.csv")
    lab = info.Split != "Test"
    y = info.loc[lab, list(HUME_EMOTIONS)].to_numpy()
    ex = truth.loc[lab.to_numpy(), [f"expected_{e}" for e in HUME_EMOTIONS]].to_numpy()
    r = [stats.pearsonr(ex[:, j], y[:, j])[0] for j in range(len(HUME_EMOTIONS))]
    assert np.mean(r) == pytest.approx(c["mean_pcc"], abs=1e-4)
    assert meta["oracle_ceiling_with_subject_bias"]["mean_pcc"] > c["mean_pcc"]


# ---------------------------------------------------------------- determinism and resume

def test_same_seed_same_files_other_seed_differs(tmp_path):
    names = ["data_info.csv", synth.TRUTH_CSV, synth.FRAMES_CSV, synth.EVENTS_CSV, synth.TRUTH_JSON]
    a = synth.generate(tmp_path / "a", n=12, seed=3, jobs=2, duration=(1.0, 1.5))
    b = synth.generate(tmp_path / "b", n=12, seed=3, jobs=1, duration=(1.0, 1.5))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c = synth.generate(tmp_path / "c", n=12, seed=4, jobs=1, duration=(1.0, 1.5))
    assert (a / "data_info.csv").read_bytes() != (c / "data_info.csv").read_bytes()


def test_resume_renders_only_missing_clips(tmp_path):
    out = synth.generate(tmp_path / "d", n=8, seed=5, jobs=1, duration=(1.0, 1.5))
    ds = load_dataset(out)
    first, second = ds.ids[0], ds.ids[1]
    gone = ds.media(first, "mp4")
    gone.unlink()
    kept = ds.media(second, "mp4")
    os.utime(kept, (1, 1))
    before = (out / "data_info.csv").read_bytes()
    synth.generate(out, n=8, seed=5, jobs=1, duration=(1.0, 1.5))
    assert gone.exists() and kept.stat().st_mtime == 1
    assert (out / "data_info.csv").read_bytes() == before
    assert not list(out.rglob("*.tmp"))


def test_labels_are_max_normalised_reports():
    rng = np.random.default_rng(0)
    lat = rng.uniform(0, 1, (500, 7))
    y = synth.report(lat, np.zeros_like(lat), rng.normal(0, 0.1, lat.shape))
    assert np.allclose(y.max(1), 1.0)
    rows = synth.format_labels(np.array([[0.99996, 1.0, 0.2], [0.5, 0.5, 0.1]]))
    assert rows == [["0.9999", "1.0000", "0.2000"], ["1.0000", "0.5000", "0.1000"]]


# ---------------------------------------------------------------- video

def test_video_decodes_with_container_timestamps(data, truth, frames):
    for _, row in truth.head(6).iterrows():
        cid = normalise_id(row.File_ID)
        imgs, times = _decode(media_path(data, row.Split, cid, "mp4"))
        f = frames[frames.File_ID == row.File_ID]
        assert len(imgs) == len(f) == row.n_frames
        assert imgs[0].shape == (row.height, row.width, 3)
        assert np.allclose(times, f.t.to_numpy(), atol=1e-3)
        gaps = np.diff(times)
        assert (gaps > 0).all()
        assert gaps.std() > 0.05 * gaps.mean()  # variable frame timing: frame index / fps is wrong


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_haar_cascade_finds_the_faces(data, truth, frames):
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    hits = total = 0
    ious = []
    for _, row in truth.iloc[::6].iterrows():  # 8 clips
        imgs, _ = _decode(media_path(data, row.Split, normalise_id(row.File_ID), "mp4"))
        f = frames[frames.File_ID == row.File_ID].reset_index(drop=True)
        for k in np.flatnonzero(f.face_visible.to_numpy()):
            gray = cv2.cvtColor(imgs[k], cv2.COLOR_RGB2GRAY)
            found = cascade.detectMultiScale(gray, 1.1, 4, minSize=(24, 24))
            total += 1
            if len(found):
                true_box = f.loc[k, ["face_x", "face_y", "face_w", "face_h"]].to_numpy(float)
                best = max(_iou(true_box, box) for box in found)
                ious.append(best)
                hits += best > 0.3
    assert total > 120
    assert hits / total >= 0.9, f"Haar found {hits}/{total} visible faces"
    assert np.median(ious) > 0.5


def _mouth(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Mouth region of the true face box, resampled to 48x24 so frames of different pose line up."""
    x, y, w, h = box
    src = np.float32([[x + 0.15 * w, y + 0.62 * h], [x + 0.85 * w, y + 0.62 * h], [x + 0.15 * w, y + 0.92 * h]])
    m = cv2.getAffineTransform(src, np.float32([[0, 0], [48, 0], [0, 24]]))
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.warpAffine(gray, m, (48, 24), flags=cv2.INTER_LINEAR)


def test_expression_changes_the_mouth_more_than_frame_to_frame_noise():
    spec = next(s for s in synth.design(40, seed=11) if s.width >= 192)
    plan = synth.plan_clip(spec)
    n = len(plan.times)
    resting = np.tile(spec.subject.resting, (n, 1)).astype(np.float32)
    amused = np.zeros(len(HUME_EMOTIONS), np.float32)
    amused[HUME_EMOTIONS.index("Amusement")] = 1.0
    smile = np.clip(resting + EMOTION_TO_AU @ amused, 0, 1.2)
    assert smile[0, COMPONENTS.index("smile")] > 0.8
    neutral = list(synth.render_frames(spec, dataclasses.replace(plan, act=resting, hands=[None] * n)))
    happy = list(synth.render_frames(spec, dataclasses.replace(plan, act=smile, hands=[None] * n)))
    nuisance, signal = [], []
    for k in range(0, n - 1, 3):
        if not (plan.visible[k] and plan.visible[k + 1]):
            continue
        a = _mouth(neutral[k], plan.box[k])
        b = _mouth(neutral[k + 1], plan.box[k + 1])  # the next frame: new pose, light and noise
        c = _mouth(happy[k + 1], plan.box[k + 1])    # the same, smiling
        nuisance.append(np.abs(a - b).mean())
        signal.append(np.abs(a - c).mean())
    assert len(signal) >= 5
    assert np.mean(signal) > 2.0 * np.mean(nuisance), (np.mean(signal), np.mean(nuisance))


# ---------------------------------------------------------------- audio

def _event_energy(y: np.ndarray) -> float:
    """Energy of the 25 ms frames that stand well above the clip's own noise floor."""
    fr = y[: len(y) // 400 * 400].reshape(-1, 400)
    rms = np.sqrt((fr ** 2).mean(1))
    loud = rms > 4 * np.median(rms)
    return float(np.log10(1e-8 + (fr[loud] ** 2).sum()))


def test_audio_is_quiet_16k_mono_with_events_that_follow_the_latents(data, truth):
    energy, loud_frac = [], []
    for _, row in truth.iterrows():
        y, sr = sf.read(media_path(data, row.Split, normalise_id(row.File_ID), "wav"), dtype="float32")
        info = sf.info(media_path(data, row.Split, normalise_id(row.File_ID), "wav"))
        assert sr == 16000 and y.ndim == 1 and info.subtype == "PCM_16"
        assert abs(len(y) / sr - row.duration_s) < 0.01
        fr = y[: len(y) // 400 * 400].reshape(-1, 400)
        rms = np.sqrt((fr ** 2).mean(1))
        loud_frac.append(float((rms > 0.02).mean()))
        energy.append(_event_energy(y))
    loud_frac, energy = np.array(loud_frac), np.array(energy)
    silent = truth.n_audio_events.to_numpy() == 0
    assert 0.2 < silent.mean() < 0.8  # many clips have no vocal event at all
    assert np.median(loud_frac) < 0.2  # mostly near-silence
    assert loud_frac[silent].max() < 0.05
    assert energy[~silent].mean() > energy[silent].mean() + 1.0
    # the expected number of events given the latents predicts the measured event energy
    drive = sum(synth.EVENT_RATE[e] * np.clip((truth[f"latent_{e}"] - synth.EVENT_THRESHOLD[e])
                                              / (1 - synth.EVENT_THRESHOLD[e]), 0, None)
                for e in HUME_EMOTIONS) * truth.expressivity
    assert stats.spearmanr(drive, energy)[0] > 0.4
    assert stats.spearmanr(truth["latent_Amusement"] * truth.expressivity, energy)[0] > 0.15
