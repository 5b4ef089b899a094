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
import soundfile as sf
from fixtures_media import write_video, write_wav

from competition.data.contract import HUME_EMOTIONS, load_dataset, media_path
from competition.submission import make as blend_main
from competition.folds import make_folds, write_folds
from competition.core.paths import Workdir
from competition.pipeline.predict import clip_ids, main
from competition.pipeline.run_fold import run_fold

FRAMES, FPS, SIZE = 12, 8.0, (160, 120)
REAL_VIDEOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real_videos"


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
    return train(tmp_path_factory.mktemp("predict"),
                 {"ridge_mfcc": ["mfcc_stats"], "ridge_mfcc13": [{"name": "mfcc_stats", "params": {"n_mfcc": 13}}]})


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
        assert list(got.columns) == ["video", *HUME_EMOTIONS, "face_rate", "audio_s", "status"]
        if which == "trained":   # audio-only members: no face read
            assert (got.status == "ok").all() and got.face_rate.isna().all()
        else:                    # every 4th clip of the dataset is faceless
            assert list(got.status) == ["no_face" if r < 0.2 else "ok" for r in got.face_rate]
            assert list(got.face_rate < 0.2) == [int(Path(v).stem) % 4 == 3 for v in videos]
        assert np.allclose(got.audio_s, [sf.info(str(Path(v).with_suffix(".wav"))).duration for v in videos])
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
    assert f"{silent}: no audio" in err and f"{with_track}: no" not in err
    assert list(got.status) == ["ok", "no_audio"] and got.audio_s[0] > 1.0 and got.audio_s[1] == 0
    # every member here is audio-only and no video has audio: the models impute every feature
    assert predict(wd, silent, "--blend", "mean", "--out", out) == 0
    alone = pd.read_csv(out)[list(HUME_EMOTIONS)].to_numpy()
    assert np.allclose(alone, vals[1:], atol=1e-6)
    assert capsys.readouterr().err.count("WARNING") == 1   # the missing wav is reported once, not per feature


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
    assert f"{faceless}: no face (found in 0% of sampled frames); no audio" in err
    assert f"{face_track}: " not in err        # its face is found and its audio track is used
    assert [r["status"] for r in rows] == ["ok", "no_face+no_audio"]
    assert rows[0]["face_rate"] >= 0.9 and rows[1]["face_rate"] == 0


@pytest.mark.slow
def test_real_video_without_a_face(trained_face, tmp_path, capsys):
    """no_face.mp4 of ../shared/data (real footage, no face at all) is predicted with a warning and
    status no_face, not silently."""
    video = REAL_VIDEOS / "no_face.mp4"
    if not video.exists():
        pytest.skip(f"{video} is not here (../shared is absent)")
    ds, wd = trained_face
    out = tmp_path / "pred.csv"
    assert predict(wd, video, "--blend", "mean", "--out", out) == 0
    got = pd.read_csv(out)
    assert got.status[0].startswith("no_face") and got.face_rate[0] < 0.2
    assert np.isfinite(got[list(HUME_EMOTIONS)].to_numpy()).all()
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and f"{video}: no face (found in" in err


def test_astronaut_photo_clip_to_stdout(trained, tmp_path, capsys):
    """skimage.data.astronaut() (a real face photo) animated into a short clip, default (newest) card."""
    ds, wd = trained
    video = write_video(tmp_path / "astronaut.mp4", n_frames=FRAMES, fps=FPS, size=SIZE)
    write_wav(tmp_path / "astronaut.wav", seconds=1.0)
    assert predict(wd, video) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].split() == ["video", *HUME_EMOTIONS, "face_rate", "audio_s", "status"] and len(lines) == 2
    assert lines[1].split()[-2:] == ["1.0000", "ok"]   # 1 s of audio, no face read by these members
    vals = np.array(lines[1].split()[1:8], float)
    assert len(vals) == 7 and (vals >= 0).all() and (vals <= 1).all()
    assert "WARNING" not in captured.err


def test_bad_inputs_are_reported(trained, tmp_path, capsys):
    ds, wd = trained
    assert predict(wd, tmp_path / "missing.mp4", "--blend", "mean") == 2
    assert "no such video file" in capsys.readouterr().err
    video = write_video(tmp_path / "a.mp4", n_frames=FRAMES, fps=FPS, size=SIZE)
    assert predict(wd, video, "--blend", "nope") == 2
    assert "no blend card" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict(wd, video, "--out", tmp_path / "x.txt")


def test_bad_media_get_one_warning_each_and_no_numbers(trained, tmp_path, capsys):
    """An empty file, a truncated video and a text file named .mp4, predicted together with a normal
    video of the dataset: one warning line per bad file, status media_error and no values for them;
    the normal video is predicted as usual."""
    ds, wd = trained
    good = Path(shutil.copy(ds.media(ds.test_ids[0], "mp4"), tmp_path / "good.mp4"))
    shutil.copy(ds.media(ds.test_ids[0], "wav"), tmp_path / "good.wav")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    out = tmp_path / "pred.csv"
    assert predict(wd, good, empty, truncated, text, "--blend", "mean", "--out", out) == 0
    got = pd.read_csv(out)
    values = got[list(HUME_EMOTIONS)].to_numpy()
    assert got.status[0] == "ok" and np.isfinite(values[0]).all() and got.audio_s[0] > 0
    assert all(s.startswith("media_error: ") for s in got.status[1:]), list(got.status)
    assert np.isnan(values[1:]).all()
    err = capsys.readouterr().err
    assert err.count("WARNING") == 3, err
    for bad in (empty, truncated, text):
        assert err.count(f"{bad}: media error (") == 1


class Foreign:
    """A type no toolkit checkpoint holds (as an attacker's file could name one)."""

    def predict(self, x):
        return x


def test_an_untrusted_checkpoint_fails_before_any_extraction(trained, tmp_path, capsys, monkeypatch):
    import skops.io

    import competition.pipeline.predict as predict_module
    ds, wd = trained
    work = Path(shutil.copytree(wd.root, tmp_path / "work", ignore=shutil.ignore_patterns("features")))
    skops.io.dump({"model": Foreign()}, work / "oof" / "ridge_mfcc13" / "fold_1" / "model.skops")
    monkeypatch.setattr(predict_module, "extract", lambda *a, **k: pytest.fail("features extracted"))
    video = write_video(tmp_path / "a.mp4", n_frames=FRAMES, fps=FPS, size=SIZE)
    assert main([str(video), "--blend", "mean", "--workdir", str(work)]) == 2
    err = capsys.readouterr().err
    assert "ridge_mfcc13/fold_1: the fold model cannot be loaded" in err and "test_predict.Foreign" in err


def test_frame_tasks_are_refused(trained, tmp_path):
    ds, wd = trained
    with pytest.raises(SystemExit):
        predict(wd, tmp_path / "a.mp4", "--task", "va")


def test_clip_ids_are_plain_and_unique():
    assert clip_ids([Path("a/my clip.mp4"), Path("b/my clip.mp4"), Path("c/é.mov")]) == \
        ["my_clip", "my_clip_2", "_"]
