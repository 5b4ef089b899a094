"""The importer on face corpora: photos (a real face photo and a 48x48 grey face crop), folders of frames,
videos with and without sound; categorical and rated labels; people from a regular expression, a CSV
column or the folder; every bad input named at once, --skip-bad, resumed reruns."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from skimage import data

from competition.core.io import read_json
from competition.data.contract import load_dataset
from competition.data.import_media import CLIP_FPS, MIN_SIDE, STILL_SECONDS
from competition.data.importer import CorpusError, main
from competition.features.faces import run_face_pipeline
from competition.features.presence import audio_presence
from competition.features.video import frame_times, read_sampled
from tests.fixtures_media import write_video

FACE_BOX = (181, 62, 268, 172)  # the astronaut's face in skimage's photo (x0, y0, x1, y1)


def run(*args: object) -> dict:
    argv = [*map(str, args), "--jobs", "1"]
    main.__wrapped__(argv)  # errors raise (the command prints them as one line)
    return read_json(Path(argv[argv.index("--out") + 1]) / "import.json")


def photo(path: Path, shift: int = 0) -> Path:
    """The astronaut photo (a real face, 512x512 colour), shifted a little per person."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.roll(data.astronaut(), shift, axis=1)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path


def face_crop(path: Path, margin: float = 0.2) -> Path:
    """A 48x48 grey crop of the face with `margin` around it, CK+48 / FER style."""
    x0, y0, x1, y1 = FACE_BOX
    w, h = x1 - x0, y1 - y0
    crop = data.astronaut()[int(y0 - margin * h):int(y1 + margin * h), int(x0 - margin * w):int(x1 + margin * w)]
    grey = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grey)
    return path


def frames(folder: Path, levels: dict[str, int]) -> Path:
    """Uniform grey frames named as given (level = brightness), to check the order they play in."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, level in levels.items():
        cv2.imwrite(str(folder / name), np.full((40, 60), level, np.uint8))
    return folder


def test_photos_and_face_crops_with_people_from_a_pattern(tmp_path):
    src = tmp_path / "src"
    for k, person in enumerate(["p1", "p2", "p3", "p4"]):
        photo(src / "happy" / f"{person}_photo.jpg", shift=3 * k)
        face_crop(src / "neutral" / f"{person}_crop.png")
    (src / "happy" / "._p1_photo.jpg").write_bytes(b"\0" * 217)  # a macOS AppleDouble file: not a clip
    out = tmp_path / "out"
    rec = run("--src", src, "--pattern", r"^(?P<label>[^/]+)/(?P<person>p\d)_", "--emotions",
              "happy=Happiness,neutral=Neutral", "--out", out, "--test-people", "1", "--val-people", "1",
              "--workdir", tmp_path / "work")
    ds = load_dataset(out)
    assert ds.emotions == ["Happiness", "Neutral"] and len(ds.ids) == 8
    assert ds.table["Subject"].tolist() == ["p1", "p1", "p2", "p2", "p3", "p3", "p4", "p4"]
    assert (ds.table.groupby("Subject")["Split"].nunique() == 1).all()
    truth = pd.read_csv(out / "import_truth.csv").set_index("File_ID")
    assert truth.loc["[p3_photo]", "Happiness"] == 1 and truth.loc["[p3_crop]", "Neutral"] == 1
    assert rec["media"]["clips"]["image"] == 8 and (tmp_path / "work" / "subjects.csv").exists()
    # a still is STILL_SECONDS of identical frames at CLIP_FPS with a silent wav of the same length
    photo_mp4, crop_mp4 = ds.media("p2_photo", "mp4"), ds.media("p2_crop", "mp4")
    assert len(frame_times(photo_mp4)) == round(STILL_SECONDS * CLIP_FPS)
    wav, sr = sf.read(str(ds.media("p2_photo", "wav")))
    assert len(wav) == round(STILL_SECONDS * sr) and not wav.any()
    assert not audio_presence(ds).present  # audio models are skipped, not trained on zeros
    # the 48x48 grey crop is played at MIN_SIDE, as RGB, where the detector chain finds the face
    vf = read_sampled(crop_mp4)
    assert vf.frames.shape[1:] == (MIN_SIDE, MIN_SIDE, 3)
    for mp4 in (photo_mp4, crop_mp4):
        track = run_face_pipeline(mp4)
        assert track.info["detection_rate"] == 1.0 and not track.info["fallback"]


def test_sequences_and_videos_with_rated_labels_and_people_from_a_column(tmp_path):
    src = tmp_path / "src"
    seq = frames(src / "seq_a", {"f10.png": 200, "f2.png": 100, "f1.png": 50, "f3.png": 150})
    with_sound = write_video(src / "talk.mp4", n_frames=15, fps=15.0, audio=True)
    silent = write_video(src / "still.mkv", n_frames=10, fps=10.0)
    rows = [(seq, 3, 1, "anna"), (with_sound, 5, 2, "bo"), (silent, 1, 5, "cy")]
    rows += [(frames(src / f"seq_{i}", {"1.png": 60 + i, "2.png": 90}), 2, 4, f"d{i}") for i in range(3)]
    csv = src / "ratings.csv"
    pd.DataFrame([{"path": p.name, "joy": j, "fear": f, "person": who} for p, j, f, who in rows]).to_csv(csv,
                                                                                                      index=False)
    out = tmp_path / "out"
    rec = run("--csv", csv, "--scale", "1,5", "--fps", "4", "--out", out, "--test-people", "bo",
              "--val-people", "cy")
    ds = load_dataset(out)
    assert ds.emotions == ["joy", "fear"] and ds.split_of("talk") == "Test"
    truth = pd.read_csv(out / "import_truth.csv").set_index("File_ID")
    assert truth.loc["[seq_a]", ["joy", "fear"]].tolist() == [0.5, 0.0]
    assert truth.loc["[talk]", ["joy", "fear"]].tolist() == [1.0, 0.25]
    assert "ratings" in rec["labels"] and rec["params"]["scale"] == [1.0, 5.0]
    # frames play in natural order (1, 2, 3, 10) at --fps
    vf = read_sampled(ds.media("seq_a", "mp4"), scheme="every", every=1)
    assert np.allclose(vf.times, np.arange(4) / 4.0, atol=1e-3)
    assert np.argsort(vf.frames.mean(axis=(1, 2, 3))).tolist() == [0, 1, 2, 3]
    # an mp4 is kept as it is and its sound becomes the wav; another container is re-encoded, silent
    assert ds.media("talk", "mp4").read_bytes() == with_sound.read_bytes()
    y, sr = sf.read(str(ds.media("talk", "wav")))
    assert abs(len(y) / sr - 1.0) < 0.1 and np.abs(y).max() > 0.05
    assert len(frame_times(ds.media("still", "mp4"))) == 10
    assert not sf.read(str(ds.media("still", "wav")))[0].any()
    assert audio_presence(ds).present
    assert rec["media"]["clips"] == {"video": 2, "frames": 4}


def test_sequence_folders_with_people_from_the_folder(tmp_path):
    src = tmp_path / "src"
    for person in ("ann", "ben", "cat"):
        for label in ("smile", "frown"):
            frames(src / person / f"{label}_1", {"a1.png": 40, "a2.png": 80, "a3.png": 120})
    out = tmp_path / "out"
    rec = run("--src", src, "--sequences", "--person-folder", "--pattern", r"/(?P<label>[a-z]+)_\d+/",
              "--out", out)
    ds = load_dataset(out)
    assert sorted(ds.ids) == ["frown_1", "frown_1-2", "frown_1-3", "smile_1", "smile_1-2", "smile_1-3"]
    assert sorted(ds.table["Subject"]) == ["ann", "ann", "ben", "ben", "cat", "cat"]
    assert ds.emotions == ["frown", "smile"] and rec["media"]["clips"] == {"frames": 6}
    assert len(frame_times(ds.media("smile_1", "mp4"))) == 3


def test_bad_inputs_are_named_at_once_then_skipped_and_reruns_resume(tmp_path):
    src = tmp_path / "src"
    good = [photo(src / f"ok{i}.jpg", shift=i) for i in range(3)]
    broken = src / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    empty = src / "empty.png"
    empty.write_bytes(b"")
    dot = src / "dot.png"
    cv2.imwrite(str(dot), np.zeros((1, 1), np.uint8))
    odd = photo(src / "odd.jpg")
    no_frames = src / "no_frames"
    no_frames.mkdir()
    bad_video = src / "bad.mp4"
    bad_video.write_bytes(b"\x00" * 64)
    rows = [(p.name, "happy", f"p{i}") for i, p in enumerate(good)]
    rows += [(broken.name, "happy", "p0"), (empty.name, "happy", "p1"), (dot.name, "sad", "p2"),
             (odd.name, "bored", "p0"), ("missing.jpg", "sad", "p1"), (no_frames.name, "sad", "p2"),
             (bad_video.name, "sad", "p0")]
    csv = src / "labels.csv"
    pd.DataFrame(rows, columns=["path", "label", "person"]).to_csv(csv, index=False)
    args = ("--csv", csv, "--emotions", "happy,sad", "--out", tmp_path / "out", "--test-people", "1",
            "--val-people", "1")
    with pytest.raises(CorpusError) as err:
        run(*args)
    msg = str(err.value)
    assert "7 problem(s)" in msg and "--skip-bad" in msg
    assert f"{broken}: unreadable image" in msg and f"{empty}: image file is empty" in msg
    assert f"{dot}: image has no pixels" in msg and "unknown label 'bored'" in msg
    assert f"{src / 'missing.jpg'}: file not found" in msg and f"{no_frames}: folder holds no images" in msg
    assert f"{bad_video}: " in msg
    assert not (tmp_path / "out").exists()
    rec = run(*args, "--skip-bad")
    assert rec["n_clips"] == 3 and rec["n_written_files"] == 6
    again = run(*args, "--skip-bad")
    assert again["n_written_files"] == 0 and again["splits"] == rec["splits"]


@pytest.mark.slow  # about 10 s of CPU (90 s wall on a loaded machine): crops and pose of 10 photos, 3 folds
def test_an_imported_photo_corpus_runs_through_the_normal_commands(tmp_path):
    """import photos -> person-grouped folds -> a face model trains, an audio model is skipped (silent
    wavs) -> blend -> official check -> held-out score, with the commands a user runs."""
    from competition.folds import main as folds_main
    from competition.pipeline.experiment import skipped_experiments
    from competition.pipeline.run_fold import main as run_fold_main
    from competition.submission import main as submission_main
    from competition.core.paths import Workdir
    from competition.data.heldout import heldout_score
    from tests.tiny_data import write_config

    src, out, wd = tmp_path / "src", tmp_path / "data", tmp_path / "work"
    for k in range(10):
        photo(src / ("happy" if k % 2 else "neutral") / f"p{k // 2}_{k}.jpg", shift=7 * k)
    run("--src", src, "--pattern", r"^(?P<label>[^/]+)/(?P<person>p\d)_", "--out", out, "--test-people", "1",
        "--val-people", "1", "--workdir", wd)
    folds_main(["--data", str(out), "--workdir", str(wd), "--n-folds", "3"])
    face = write_config(tmp_path / "ridge_pose.yaml", "ridge_pose", features=("pose",), alpha=10.0)
    voice = write_config(tmp_path / "ridge_mfcc.yaml", "ridge_mfcc", features=("mfcc_stats",), alpha=10.0)
    for cfg in (face, voice):
        run_fold_main(["--all-folds", "--exp", str(cfg), "--data", str(out), "--workdir", str(wd), "--jobs", "1",
                       "--no-wandb"])
    ds = load_dataset(out)
    assert skipped_experiments(Workdir.of(wd).oof, ds.fingerprint).keys() == {"ridge_mfcc"}
    assert submission_main(["--blend", "best", "--data", str(out), "--workdir", str(wd), "--no-wandb"]) == 0
    sub = next(Workdir.of(wd).submissions.glob("*.csv"))
    assert submission_main(["check", str(sub), "--data", str(out)]) == 0
    assert heldout_score(sub, out)["n"] == 2
