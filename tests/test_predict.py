"""`python -m competition.pipeline.predict` on real short videos: a tiny Hume-layout dataset of astronaut-face and
faceless clips, ridge experiments trained with run_fold (fast suite: an audio one; slow suite: plus a
face-pose one), blend cards from make_submission, then predictions for new videos and for the dataset's
own Test clips."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_media import write_video, write_wav

from competition.data.contract import HUME_EMOTIONS, load_dataset, media_path
from competition.submission import make as blend_main
from competition.folds import make_folds, write_folds
from competition.core.paths import Workdir
from competition.pipeline.predict import clip_ids, main
from competition.pipeline.run_fold import run_fold

FRAMES, FPS, SIZE = 12, 8.0, (160, 120)


def train(root: Path, experiments: dict[str, list[str]]):
    data, wd = root / "data", Workdir.of(root / "work")
    rng = np.random.default_rng(0)
    rows = []
    for i, split in enumerate(["Train"] * 12 + ["Val"] * 3 + ["Test"] * 3):
        cid = f"{i:05d}"
        y = rng.beta(1.2, 2.5, 7)
        rows.append({"File_ID": f"[{cid}]", "Split": split,
                     **{e: ("" if split == "Test" else round(v / y.max(), 4)) for e, v in zip(HUME_EMOTIONS, y)}})
        write_video(media_path(data, split, cid, "mp4"), n_frames=FRAMES, fps=FPS, face=i % 4 != 3, size=SIZE)
        write_wav(media_path(data, split, cid, "wav"), seconds=FRAMES / FPS * (1 + i % 3) / 3)
    pd.DataFrame(rows).to_csv(data / "data_info.csv", index=False)
    ds = load_dataset(data)
    write_folds(ds, make_folds(ds, 3, 0), wd.folds, {"scheme": "kfold", "n_folds": 3, "seed": 0})
    for name, feats in experiments.items():
        cfg = {"name": name, "model": "ridge", "features": feats, "params": {"alpha": 10.0}, "seed": 42,
               "task": "eri"}
        for k in range(3):
            run_fold(cfg, k, ds, wd, jobs=1, progress=False, no_wandb=True)
    for method in ("mean", "rank_mean"):
        assert blend_main(["--blend", method, "--name", method, "--data", str(data), "--workdir", str(wd.root)]) == 0
    return ds, wd


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train(tmp_path_factory.mktemp("predict"), {"ridge_mfcc": ["mfcc_stats"],
                                                             "ridge_mfcc13": [{"name": "mfcc_stats", "params": {"n_mfcc": 13}}]})


@pytest.fixture(scope="module")
def trained_face(tmp_path_factory):
    return train(tmp_path_factory.mktemp("predict_face"), {"ridge_mfcc": ["mfcc_stats"], "ridge_pose": ["pose"]})


def predict(wd, *args) -> int:
    return main([*map(str, args), "--workdir", str(wd.root)])


@pytest.mark.parametrize("which", ["trained", pytest.param("trained_face", marks=pytest.mark.slow)])
def test_predicts_the_test_clips_as_the_submission_does(which, request, tmp_path):
    """The dataset's own Test videos, run through predict, give the submission's values: same features,
    same fold models, same weights."""
    ds, wd = request.getfixturevalue(which)
    videos = []
    for cid in ds.test_ids:
        videos.append(shutil.copy(ds.media(cid, "mp4"), tmp_path / f"{cid}.mp4"))
        shutil.copy(ds.media(cid, "wav"), tmp_path / f"{cid}.wav")       # the sibling wav is used
    for card in ("mean", "rank_mean"):
        out = tmp_path / f"{card}.csv"
        assert predict(wd, *videos, "--blend", card, "--out", out) == 0
        got = pd.read_csv(out)
        sub = pd.read_csv(wd.submissions / f"{card}.csv", dtype={"File_ID": str}).set_index("File_ID")
        want = sub.loc[[f"[{Path(v).stem}]" for v in videos], list(HUME_EMOTIONS)].to_numpy()
        assert list(got.columns) == ["video", *HUME_EMOTIONS]
        assert np.allclose(got[list(HUME_EMOTIONS)].to_numpy(), want, atol=1e-4), card


def test_generated_clip_without_audio_track(trained, tmp_path, capsys):
    ds, wd = trained
    with_track = write_video(tmp_path / "with track.mp4", n_frames=FRAMES, fps=FPS, audio=True, size=SIZE)
    silent = write_video(tmp_path / "silent.mp4", n_frames=FRAMES, fps=FPS, face=False, size=SIZE)
    out = tmp_path / "pred.csv"
    assert predict(wd, with_track, silent, "--blend", "mean", "--out", out) == 0
    got = pd.read_csv(out)
    assert list(got.video) == [str(with_track), str(silent)]
    vals = got[list(HUME_EMOTIONS)].to_numpy()
    assert vals.shape == (2, 7) and np.isfinite(vals).all() and (vals >= 0).all() and (vals <= 1).all()
    err = capsys.readouterr().err
    assert f"{silent}: no usable audio" in err and f"{with_track}: no" not in err
    # every member here is audio-only and no video has audio: the models impute every feature
    assert predict(wd, silent, "--blend", "mean", "--out", out) == 0
    alone = pd.read_csv(out)[list(HUME_EMOTIONS)].to_numpy()
    assert np.allclose(alone, vals[1:], atol=1e-6)
    assert "failed" not in capsys.readouterr().err    # the missing wav is reported once, not per feature


@pytest.mark.slow
def test_generated_clips_with_and_without_face_or_audio(trained_face, tmp_path, capsys):
    ds, wd = trained_face
    face_track = write_video(tmp_path / "face with track.mp4", n_frames=FRAMES, fps=FPS, audio=True, size=SIZE)
    faceless = write_video(tmp_path / "faceless.mp4", n_frames=FRAMES, fps=FPS, face=False, size=SIZE)
    out = tmp_path / "pred.json"
    assert predict(wd, face_track, faceless, "--blend", "mean", "--out", out) == 0
    rows = json.loads(out.read_text())
    assert [r["video"] for r in rows] == [str(face_track), str(faceless)]
    for r in rows:
        vals = np.array([r[e] for e in HUME_EMOTIONS])
        assert vals.shape == (7,) and np.isfinite(vals).all() and (vals >= 0).all() and (vals <= 1).all()
    err = capsys.readouterr().err
    assert f"{faceless}: no usable audio" in err
    assert f"{faceless}: no face detected" in err
    assert f"{face_track}: no" not in err        # its face is found and its audio track is used


def test_astronaut_photo_clip_to_stdout(trained, tmp_path, capsys):
    """skimage.data.astronaut() (a real face photo) animated into a short clip, default (newest) card."""
    ds, wd = trained
    video = write_video(tmp_path / "astronaut.mp4", n_frames=FRAMES, fps=FPS, size=SIZE)
    write_wav(tmp_path / "astronaut.wav", seconds=1.0)
    assert predict(wd, video) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].split() == ["video", *HUME_EMOTIONS] and len(lines) == 2
    vals = np.array(lines[1].split()[1:], float)
    assert len(vals) == 7 and (vals >= 0).all() and (vals <= 1).all()
    assert "warning" not in captured.err


def test_bad_inputs_are_reported(trained, tmp_path, capsys):
    ds, wd = trained
    assert predict(wd, tmp_path / "missing.mp4", "--blend", "mean") == 2
    assert "no such video file" in capsys.readouterr().err
    video = write_video(tmp_path / "a.mp4", n_frames=FRAMES, fps=FPS, size=SIZE)
    assert predict(wd, video, "--blend", "nope") == 2
    assert "no blend card" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict(wd, video, "--out", tmp_path / "x.txt")


def test_clip_ids_are_plain_and_unique():
    assert clip_ids([Path("a/my clip.mp4"), Path("b/my clip.mp4"), Path("c/é.mov")]) == \
        ["my_clip", "my_clip_2", "_"]
