"""The synthetic Aff-Wild2-like dataset: the layout of docs/AFFWILD2.md, one label line per video frame,
invalid marks exactly where the truth says, the ceilings, resume and determinism."""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.metrics import f1_score

from competition.data import synth_affwild2 as aw
from competition.data.contract import HUME_EMOTIONS
from competition.core.metrics import ccc_per_column

N, SEED, DURATION = 4, 2, (2.0, 3.0)  # seed 2: the labelled videos have hidden faces and random invalid runs
VA_HEADER = "valence,arousal"
EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return aw.generate_affwild2(tmp_path_factory.mktemp("aw2") / "d", n_videos=N, seed=SEED, jobs=1,
                                duration=DURATION, crops=True)


@pytest.fixture(scope="module")
def meta(data) -> dict:
    return json.loads((data / aw.TRUTH_JSON).read_text())


@pytest.fixture(scope="module")
def truth(data) -> pd.DataFrame:
    return pd.read_csv(data / aw.TRUTH_CSV)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _decode_times(path: Path) -> list[float]:
    with av.open(str(path)) as box:
        return [float(f.time) for f in box.decode(video=0)]


def _annotation(data: Path, challenge: str, split: str, name: str) -> Path:
    return data / "annotations" / challenge / split / f"{name}.txt"


# ---------------------------------------------------------------- layout

def test_layout_files_and_headers(data, meta):
    splits = meta["splits"]
    assert sorted(splits) == sorted(aw.SPLITS)
    names = [n for v in splits.values() for n in v]
    assert sorted(names) == [f"video{i:03d}" for i in range(1, N + 1)]
    assert all(len(splits[s]) >= 1 for s in aw.SPLITS)
    for name in names:
        assert (data / "videos" / f"{name}.mp4").stat().st_size > 0
        assert (data / "audio" / f"{name}.wav").stat().st_size > 0
    for challenge, header in (("VA_Estimation_Challenge", VA_HEADER), ("EXPR_Recognition_Challenge", EXPR_HEADER)):
        for split in ("Train_Set", "Validation_Set"):
            files = sorted(p.stem for p in (data / "annotations" / challenge / split).glob("*.txt"))
            assert files == sorted(splits[split])
            for name in files:
                assert _lines(_annotation(data, challenge, split, name))[0] == header
        assert not list((data / "annotations" / challenge).glob("Test*"))
    test = sorted(splits["Test_Set"])
    assert sorted(_lines(data / "test_set" / "VA_Estimation_Challenge_test_set.txt")) == test
    assert sorted(_lines(data / "test_set" / "EXPR_Recognition_Challenge_test_set.txt")) == test


def test_the_reader_accepts_it(data, truth):
    from competition.data.affwild2 import load_frame_dataset

    lab = truth[truth.split != "Test_Set"]
    for task in ("va", "expr"):
        ds = load_frame_dataset(data, task)
        assert not ds.warnings
        assert len(ds.labelled_ids) == int(lab.valid.sum())
        assert len(ds.test_ids) == int((truth.split == "Test_Set").sum())


def test_one_label_line_per_frame_at_a_constant_frame_rate(data, meta, truth):
    for v in meta["videos"]:
        times = _decode_times(data / "videos" / f"{v['name']}.mp4")
        rows = truth[truth.name == v["name"]]
        assert len(times) == v["n_frames"] == len(rows)
        assert (rows.frame.to_numpy() == np.arange(1, len(times) + 1)).all()
        assert np.allclose(times, np.arange(len(times)) / v["fps"], atol=0.0006)  # pts in whole ms
        assert np.allclose(rows.t, np.arange(len(times)) / v["fps"], atol=1e-6)
        if v["split"] != "Test_Set":
            for challenge in ("VA_Estimation_Challenge", "EXPR_Recognition_Challenge"):
                assert len(_lines(_annotation(data, challenge, v["split"], v["name"]))) == len(times) + 1
        y, sr = sf.read(data / "audio" / f"{v['name']}.wav", dtype="float32")
        assert sr == aw.SR and y.ndim == 1
        assert abs(len(y) / sr - v["n_frames"] / v["fps"]) < 0.01


# ---------------------------------------------------------------- labels

def test_invalid_marks_exactly_where_the_truth_says(data, truth):
    lab = truth[truth.split != "Test_Set"]
    assert ((lab.face_visible == 0) & (lab.valid == 0)).sum() > 0  # hidden faces ...
    assert ((lab.face_visible == 1) & (lab.valid == 0)).sum() > 0  # ... and random annotation gaps
    assert not ((truth.face_visible == 0) & (truth.valid == 1)).any()
    for name, rows in lab.groupby("name"):
        split = rows.split.iloc[0]
        va = _lines(_annotation(data, "VA_Estimation_Challenge", split, name))[1:]
        ex = _lines(_annotation(data, "EXPR_Recognition_Challenge", split, name))[1:]
        invalid = rows.valid.to_numpy() == 0
        assert [ln == "-5,-5" for ln in va] == list(invalid)
        assert [ln == "-1" for ln in ex] == list(invalid)


def test_labels_in_range_and_equal_to_the_truth(data, truth):
    lab = truth[truth.split != "Test_Set"]
    seen = set()
    for name, rows in lab.groupby("name"):
        split = rows.split.iloc[0]
        va = _lines(_annotation(data, "VA_Estimation_Challenge", split, name))[1:]
        ex = _lines(_annotation(data, "EXPR_Recognition_Challenge", split, name))[1:]
        for line, ok in zip(va, rows.valid):
            if ok:
                assert re.fullmatch(r"-?[01]\.\d{3},-?[01]\.\d{3}", line), line
        vals = np.array([[float(x) for x in ln.split(",")] for ln in va])
        assert np.allclose(vals, rows[["valence", "arousal"]].to_numpy(), atol=1e-9)
        ok = rows.valid.to_numpy() == 1
        assert (np.abs(vals[ok]) <= 1).all()
        cls = np.array([int(x) for x in ex])
        assert (cls == rows.expr.to_numpy()).all()
        assert ((cls[ok] >= 0) & (cls[ok] <= 7)).all()
        seen |= set(cls[ok])
    assert len(seen) >= 3
    valid = truth[truth.valid == 1]
    assert valid[["expected_valence", "expected_arousal"]].abs().max().max() <= 1
    assert valid.expr_true.between(0, 7).all()
    intens = truth[[f"intensity_{e}" for e in HUME_EMOTIONS]].to_numpy()
    assert ((intens >= 0) & (intens <= 1)).all() and intens.max() > 0.4


def test_ceilings_recompute_from_the_truth_csv(meta, truth):
    lab = truth[(truth.valid == 1) & (truth.split != "Test_Set")]
    ccc = ccc_per_column(lab[["expected_valence", "expected_arousal"]].to_numpy(),
                         lab[["valence", "arousal"]].to_numpy())
    assert ccc.mean() == pytest.approx(meta["va_ccc_ceiling"], abs=1e-5)
    assert ccc[0] == pytest.approx(meta["va_ccc_ceiling_per_target"]["valence"], abs=1e-5)
    f1 = f1_score(lab.expr, lab.expr_true, average="macro", labels=range(8), zero_division=0)
    assert f1 == pytest.approx(meta["expr_f1_ceiling"], abs=1e-5)
    assert meta["ceiling_n_frames"] == len(lab)
    counts = lab.expr.value_counts()
    assert meta["class_counts"]["written"] == {c: int(counts.get(k, 0)) for k, c in enumerate(aw.EXPR_CLASSES)}
    assert 0.3 < meta["va_ccc_ceiling"] < 1.0 and 0.3 < meta["expr_f1_ceiling"] <= 1.0


def test_crops_only_for_visible_frames(data, truth):
    import cv2

    for name, rows in truth.groupby("name"):
        got = sorted(int(p.stem) for p in (data / "cropped_aligned" / name).glob("*.jpg"))
        assert got == list(rows.frame[rows.face_visible == 1])
        if got:
            img = cv2.imread(str(data / "cropped_aligned" / name / f"{got[0]:05d}.jpg"))
            assert img.shape == (aw.CROP_SIZE, aw.CROP_SIZE, 3)


def test_expression_rules_and_va_maps():
    def row(**kw: float) -> np.ndarray:
        x = np.zeros(len(HUME_EMOTIONS))
        for k, v in kw.items():
            x[HUME_EMOTIONS.index(k.replace("_", "-"))] = v
        return x

    cases = {
        "Neutral": row(Amusement=0.2, Fear=0.1), "Happiness": row(Amusement=0.8, Adoration=0.3),
        "Anger": row(Disgust=0.8, Anxiety=0.6), "Disgust": row(Disgust=0.8, Empathic_Pain=0.2),
        "Fear": row(Fear=0.7, Anxiety=0.3), "Sadness": row(Empathic_Pain=0.6, Anxiety=0.1),
        "Surprise": row(Surprise=0.9, Fear=0.2), "Other": row(Amusement=0.8, Empathic_Pain=0.7),
    }
    got = aw.expr_class(np.stack(list(cases.values())))
    assert [aw.EXPR_CLASSES[c] for c in got] == list(cases)
    va = aw.va_expected(np.stack([row(Amusement=1), row(Fear=1), row(Surprise=1), row(Empathic_Pain=1)]))
    assert va[0, 0] > 0.5 and va[1, 0] < -0.3 and va[3, 0] < -0.3
    assert va[1, 1] > va[3, 1] and va[2, 1] > va[3, 1]


def test_default_design_has_every_class_and_the_face_shows_it():
    """Plans only (no pixels): the 30 default videos hold all 8 classes in Train and Val labels, and the
    face components alone separate the noise-free classes of unseen videos."""
    from sklearn.linear_model import LogisticRegression

    specs = aw.design_affwild2(30, seed=0)
    assert [sum(s.split == sp for s in specs) for sp in aw.SPLITS] == [18, 6, 6]
    act, expr, expr_true, split = [], [], [], []
    for s in specs:
        vp = aw.plan_video(s)
        ok = vp.valid
        act.append(vp.clip.act[ok]), expr.append(vp.expr[ok]), expr_true.append(vp.expr_true[ok])
        split += [s.split] * int(ok.sum())
    act, expr, expr_true = map(np.concatenate, (act, expr, expr_true))
    split = np.array(split)
    for sp in ("Train_Set", "Validation_Set"):
        assert set(expr[split == sp]) == set(range(8)), sp
    train = split == "Train_Set"
    clf = LogisticRegression(max_iter=2000).fit(act[train], expr_true[train])
    held = split != "Train_Set"
    f1 = f1_score(expr_true[held], clf.predict(act[held]), average="macro", labels=range(8), zero_division=0)
    assert f1 > 0.6, f1


def test_invalid_and_confused_labels_from_make_labels():
    rng = np.random.default_rng(0)
    n, fps = 300, 10.0
    t = np.arange(n) / fps
    intensity = np.zeros((n, len(HUME_EMOTIONS)))
    intensity[100:200, HUME_EMOTIONS.index("Amusement")] = 0.9
    visible = np.ones(n, bool)
    visible[20:30] = False
    valid, expected, expr_true, va, expr = aw.make_labels(rng, intensity, t, fps, visible)
    assert not valid[20:30].any() and (va[20:30] == -5).all() and (expr[20:30] == -1).all()
    assert (va[valid] >= -1).all() and (va[valid] <= 1).all()
    assert (expr_true[100:200] == aw.EXPR_CLASSES.index("Happiness")).all()
    assert (expr_true[:100] == 0).all()
    assert expected[150, 0] > 0.5 and abs(expected[50, 0]) < 1e-9
    assert 0 < (expr[valid] != expr_true[valid]).mean() < 0.5  # some annotator confusion, not much


# ---------------------------------------------------------------- resume and determinism

def _snapshot(root: Path) -> dict[str, tuple[float, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_rerun_resumes_without_rendering_and_gives_identical_files(data):
    media = [p for p in data.rglob("*") if p.suffix in {".mp4", ".wav", ".jpg"}]
    for p in media:
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(data)
    aw.generate_affwild2(data, n_videos=N, seed=SEED, jobs=1, duration=DURATION, crops=True)
    after = _snapshot(data)
    assert sorted(after) == sorted(before)
    for rel, (mtime, content) in after.items():
        assert content == before[rel][1], rel
        if rel.endswith((".mp4", ".wav", ".jpg")):
            assert mtime == 1_000_000_000, rel
    # a missing video is rendered again, and only it
    gone = data / "videos" / "video001.mp4"
    gone.unlink()
    aw.generate_affwild2(data, n_videos=N, seed=SEED, jobs=1, duration=DURATION, crops=True)
    assert gone.read_bytes() == before["videos/video001.mp4"][1]
    assert (data / "videos" / "video002.mp4").stat().st_mtime_ns == 1_000_000_000
    assert not list(data.rglob("*.tmp"))


def _differing(sa: dict, sb: dict) -> list[str]:
    """Files of two snapshots (same names required) whose contents differ."""
    assert sorted(sa) == sorted(sb)
    return [rel for rel in sb if sb[rel][1] != sa[rel][1]]


def test_same_seed_same_files_whatever_jobs_other_seed_differs(data, tmp_path):
    other = aw.generate_affwild2(tmp_path / "b", n_videos=N, seed=SEED, jobs=2, duration=DURATION, crops=True)
    b = _snapshot(other)
    differing = _differing(_snapshot(data), b)
    assert not [rel for rel in differing if not rel.endswith(".mp4")]
    if differing:
        # Rarely (once in CI, and 5 of 240 clips in one of eight demo-set generations), one mp4's encoded bytes
        # differ from a band of one frame onwards; no cause found yet (docs/BENCHMARKS.md, Embedded demo).
        # A systematic difference (seeds or order depending on jobs) shows again in a fresh pair.
        warnings.warn(f"mp4 bytes differed between jobs=1 and jobs=2 ({differing}); comparing a fresh pair")
        a2 = aw.generate_affwild2(tmp_path / "a2", n_videos=N, seed=SEED, jobs=1, duration=DURATION, crops=True)
        b2 = aw.generate_affwild2(tmp_path / "b2", n_videos=N, seed=SEED, jobs=2, duration=DURATION, crops=True)
        assert _differing(_snapshot(a2), _snapshot(b2)) == []
    assert any(r.endswith(".mp4") for r in b) and any(r.startswith("annotations/") for r in b)
    p1 = aw.plan_video(aw.design_affwild2(N, SEED + 1, DURATION)[0])
    p0 = aw.plan_video(aw.design_affwild2(N, SEED, DURATION)[0])
    assert len(p0.va) != len(p1.va) or not np.array_equal(p0.va, p1.va)
