"""The Aff-Wild2 layout reader on hand-written layouts: samples are the valid frames, every frame of a
Test video is one, `_left`/`_right` names share their video, and every broken file is reported with
its path and line, all at once."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from competition.data.affwild2 import (EXPR_CLASSES, FrameDataset, frame_id, load_frame_dataset, parse_frame_id,
                                       video_stem)
from competition.data.contract import DataError
from competition.folds import make_folds, read_folds, write_folds

VA_DIR, EXPR_DIR = "VA_Estimation_Challenge", "EXPR_Recognition_Challenge"


def _video(path: Path, n: int, fps: float = 10.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (32, 32))
    for i in range(n):
        out.write(np.full((32, 32, 3), i * 5 % 255, np.uint8))
    out.release()


def _layout(root: Path, va: dict[str, tuple[str, list[str]]], test: list[str], n_video: int = 12) -> Path:
    """va: name -> (Train_Set | Validation_Set, annotation lines after the header)."""
    for name, (split, lines) in va.items():
        p = root / "annotations" / VA_DIR / split / f"{name}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("valence,arousal\n" + "\n".join(lines) + "\n")
    for sub in ("Train_Set", "Validation_Set"):
        (root / "annotations" / VA_DIR / sub).mkdir(parents=True, exist_ok=True)
    (root / "test_set").mkdir(parents=True, exist_ok=True)
    (root / "test_set" / "VA_Estimation_Challenge_test_set.txt").write_text("\n".join(test) + "\n")
    for name in {video_stem(n) for n in [*va, *test]}:
        _video(root / "videos" / f"{name}.mp4", n_video)
    return root


def _va_lines(n: int, invalid: tuple[int, ...] = ()) -> list[str]:
    return ["-5,-5" if i in invalid else f"{0.1 * (i % 5) - 0.2:.2f},{0.05 * i - 0.3:.2f}" for i in range(n)]


def test_valid_frames_are_samples_and_test_videos_have_every_frame(tmp_path):
    root = _layout(tmp_path, {"a_left": ("Train_Set", _va_lines(12, (3, 4))), "a_right": ("Train_Set", _va_lines(12)),
                              "b": ("Validation_Set", _va_lines(12, (0,)))}, ["c"])
    ds = load_frame_dataset(root, "va")
    assert isinstance(ds, FrameDataset) and ds.targets == ["valence", "arousal"]
    assert len(ds.labelled_ids) == 12 * 3 - 3
    assert frame_id("a_left", 4) not in ds.labelled_ids and frame_id("a_left", 6) in ds.labelled_ids
    assert ds.test_ids == [frame_id("c", k) for k in range(1, 13)]  # every frame, from the video
    assert ds.units.table.loc[["a_left", "a_right"], "video"].tolist() == ["a", "a"]
    assert ds.units.media("a_right", "mp4") == root / "videos" / "a.mp4"
    units, t = ds.times([frame_id("b", 2), frame_id("b", 11)])
    assert units == ["b", "b"] and np.allclose(t, [0.1, 1.0])  # (k - 1) / fps
    assert ds.labels([frame_id("a_left", 2)]).tolist() == [[-0.1, -0.25]]
    assert ds.split_of(frame_id("b", 2)) == "Val"


def test_folds_group_the_two_people_of_one_video(tmp_path):
    va = {f"v{i}_{side}": ("Train_Set", _va_lines(12)) for i in range(6) for side in ("left", "right")}
    ds = load_frame_dataset(_layout(tmp_path, va, ["t"]), "va")
    folds = make_folds(ds.units, n_folds=3, seed=0, groups=ds.units.table["video"])
    path = tmp_path / "folds.csv"
    write_folds(ds.units, folds, path, {})
    fold = read_folds(path, ds)
    assert list(fold.index) == ds.ids  # one fold per frame
    by_video = fold[fold >= 0].groupby([parse_frame_id(f)[0].rsplit("_", 1)[0] for f in fold.index[fold >= 0]])
    assert (by_video.nunique() == 1).all()  # left and right of a video never on both sides


def test_every_broken_annotation_is_reported_with_file_and_line(tmp_path):
    root = _layout(tmp_path, {"a": ("Train_Set", ["0.1,0.2", "0.1", "1.5,0.0", "x,y"]),
                              "b": ("Validation_Set", ["0.0,0.0"]), "c": ("Train_Set", [])}, ["b", "bad name"])
    (root / "annotations" / VA_DIR / "Train_Set" / "d.txt").write_text("arousal,valence\n0,0\n")
    _video(root / "videos" / "d.mp4", 3)
    with pytest.raises(DataError) as err:
        load_frame_dataset(root, "va")
    msg = str(err.value)
    a = root / "annotations" / VA_DIR / "Train_Set" / "a.txt"
    for expected in (f"{a}:3: '0.1' is not two numbers", f"{a}:4: '1.5,0.0' outside [-1, 1]",
                     f"{a}:5: 'x,y' is not two numbers", "c.txt: no frame lines after the header",
                     "d.txt:1: header 'arousal,valence' is not valence,arousal",
                     "'b' is listed for Test but has Val labels", "Test name 'bad name' is not a plain token"):
        assert expected in msg


def test_expr_classes_one_hot_and_bad_classes(tmp_path):
    d = tmp_path / "annotations" / EXPR_DIR
    for sub in ("Train_Set", "Validation_Set"):
        (d / sub).mkdir(parents=True)
    header = ",".join(EXPR_CLASSES)
    (d / "Train_Set" / "a.txt").write_text(header + "\n0\n4\n-1\n7\n")
    (d / "Validation_Set" / "b.txt").write_text(header + "\n2\n")
    (tmp_path / "expr_test_set.txt").write_text("c\n")
    for name in "abc":
        _video(tmp_path / "videos" / f"{name}.mp4", 4)
    ds = load_frame_dataset(tmp_path, "expr")
    assert ds.labelled_ids == [frame_id("a", k) for k in (1, 2, 4)] + [frame_id("b", 1)]
    assert ds.labels().argmax(1).tolist() == [0, 4, 7, 2] and ds.labels().sum(1).tolist() == [1, 1, 1, 1]
    (d / "Train_Set" / "a.txt").write_text(header + "\n0\n9\nhappy\n")
    with pytest.raises(DataError, match=r"a.txt:3: class 9 is not in 0..7.*\n.*a.txt:4: 'happy' is not an integer"):
        load_frame_dataset(tmp_path, "expr")


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(DataError, match="no VA_Estimation_Challenge/ folder"):
        load_frame_dataset(tmp_path, "va")
    root = _layout(tmp_path, {"a": ("Train_Set", _va_lines(4))}, ["t"])
    (root / "videos" / "t.mp4").unlink()
    with pytest.raises(DataError, match=r"no video t.mp4/.avi \(nor cropped_aligned/t/\) for Test name 't'"):
        load_frame_dataset(root, "va")


def test_frame_ids_round_trip_and_reject_paths():
    assert parse_frame_id(frame_id("10-60-1280x720_right", 7)) == ("10-60-1280x720_right", 7)
    for bad in ("../x/00001", "a/1", "a", "a/00000"):
        with pytest.raises(ValueError):
            parse_frame_id(bad)


def test_aligned_crops_stand_in_for_face_detection_and_for_missing_videos(tmp_path):
    """`detectors: aligned` reads cropped_aligned/<name>/<k:05d>.jpg as the faces (sampled like video
    frames); a dataset with crops but no videos still loads, and its audio fails clip by clip."""
    import shutil
    from competition.data.synth_affwild2 import generate_affwild2
    from competition.features.store import FeatureStore, clip_media, extract
    root = generate_affwild2(tmp_path / "d", n_videos=3, seed=4, jobs=1, duration=(2.0, 2.5), crops=True)
    ds = load_frame_dataset(root, "va")
    name = ds.units.ids[0]
    folder, fps = ds.units.aligned_frames(name)
    assert folder == root / "cropped_aligned" / name and fps == pytest.approx(ds.units.table.at[name, "fps"])
    spec = {"name": "faces", "params": {"detectors": "aligned", "size": 64}}
    shutil.rmtree(root / "videos")
    shutil.rmtree(root / "audio")
    ds = load_frame_dataset(root, "va")  # crops alone are enough (at an assumed frame rate)
    assert any("no video" in w for w in ds.warnings)
    _, fps = ds.units.aligned_frames(name)
    reports = extract(ds.units, [spec, "mfcc"], tmp_path / "features", progress=False)
    assert reports[0].failed == 0 and reports[1].failed == len(ds.units.ids)  # no audio without videos
    out = FeatureStore.for_spec(tmp_path / "features", spec).load(name)
    ks = sorted(int(p.stem) for p in folder.glob("*.jpg"))
    assert out.mask.all() and len(out.x) <= len(ks) and np.all(np.diff(out.t) >= 0.2 - 1.0 / fps)
    k = int(round(float(out.t[1]) * fps)) + 1  # the second sampled crop is frame k's jpg
    jpg = cv2.cvtColor(cv2.imread(str(folder / f"{k:05d}.jpg")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(out.x[1].reshape(64, 64, 3), cv2.resize(jpg, (64, 64), interpolation=cv2.INTER_AREA))
    assert clip_media(ds.units, name).frames_dir == folder
