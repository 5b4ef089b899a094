"""A dataset whose videos are blank (a speech corpus imported with placeholder videos): the run says
that no clip has a face and skips the face-only experiment before training, records that in its
experiment.json, trains the audio and face+audio experiments, and the blend, its modality table and the
submission still work. Plus the audio side (silent wavs) and a speech-encoder config without a model."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from competition import submission
from competition.core.paths import Workdir
from competition.data.contract import load_dataset, media_path
from competition.features.presence import audio_presence, modality_label
from competition.folds import make_folds, write_folds
from competition.pipeline import run_fold
from competition.pipeline.config import load_config
from competition.pipeline.experiment import skipped_experiments
from tests.tiny_data import REPO, write_audio_dataset, write_config


def black_video(path, n_frames: int = 8, fps: float = 8.0):
    import av
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = 96, 72, "yuv420p"
        black = av.VideoFrame.from_ndarray(np.zeros((72, 96, 3), np.uint8), format="rgb24")
        for _ in range(n_frames):
            out.mux(stream.encode(black))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def faceless(tmp_path_factory):
    """A tiny audio dataset whose every video is the same black 1 s clip, with 2 folds."""
    root = tmp_path_factory.mktemp("faceless")
    data = write_audio_dataset(root / "data", n_train=16, n_val=6, n_test=6, seconds=1.0)
    black = black_video(root / "black.mp4")
    ds = load_dataset(data)
    for cid in ds.ids:
        shutil.copy(black, media_path(data, ds.split_of(cid), cid, "mp4"))
    wd = Workdir.of(root / "work")
    write_folds(ds, make_folds(ds, n_folds=2, seed=0), wd.folds, {"n_folds": 2})
    cfgs = {"face_only": write_config(root / "cfg" / "face_only.yaml", "face_only", features=("pose",)),
            "audio_only": write_config(root / "cfg" / "audio_only.yaml", "audio_only", alpha=10.0),
            "both": write_config(root / "cfg" / "both.yaml", "both", features=("pose", "mfcc_stats"), alpha=10.0)}
    return data, wd, cfgs


def test_faceless_dataset_skips_face_only_and_still_submits(faceless, capsys):
    data, wd, cfgs = faceless
    argv = ["--all-folds", "--exp", *map(str, cfgs.values()), "--data", str(data), "--workdir", str(wd.root),
            "--jobs", "1", "--no-wandb"]
    assert run_fold.main(argv) == 2  # face_only was named with --exp: an error, once the others have run
    err = capsys.readouterr().err
    assert "[face_only] skipped" in err and "no face in any clip" in err
    assert "error: named with --exp but cannot run on this dataset: face_only: reads only face" in err
    assert "[audio_only] skipped" not in err and "[both] skipped" not in err

    ds = load_dataset(data)
    face = wd.experiment("face_only")
    card = json.loads((face / "experiment.json").read_text())
    assert card["skipped"]["modalities"] == ["face"]
    assert "0 of 28 clip(s) have a face" in card["skipped"]["reason"]
    assert not (face / "metrics.json").exists() and not list(face.glob("fold_*"))  # nothing trained
    assert skipped_experiments(wd.oof, ds.fingerprint).keys() == {"face_only"}
    for name in ("audio_only", "both"):
        assert json.loads((wd.experiment(name) / "metrics.json").read_text())["oof_mean_pcc"] > 0.0  # learned

    # blend: the skipped experiment is named, every member's modality is shown, the submission checks
    assert submission.main(["--blend", "best", "--data", str(data), "--workdir", str(wd.root), "--no-wandb"]) == 0
    out = capsys.readouterr().out
    assert "face_only was skipped" in out
    assert "audio_only [audio]" in out and "both [face+audio]" in out
    assert "by modality" in out
    cards = [json.loads(p.read_text()) for p in wd.submissions.glob("*.json")]
    assert len(cards) == 1
    card = cards[0]
    assert card["member_modality"] == {"audio_only": "audio", "both": "face+audio"}
    assert "face_only" in card["skipped_experiments"]
    assert {r["modality"] for r in card["by_modality"]} == {"audio", "face+audio"}
    assert sum(r["weight"] for r in card["by_modality"]) == pytest.approx(1.0)
    assert submission.main(["check", str(wd.submissions / card["submission"]), "--data", str(data)]) == 0
    checker = REPO.parent / "shared" / "tools" / "check_artifacts.py"
    if checker.exists():  # the independent checker, where the repo sits beside ../shared (CI, the dev machine)
        res = subprocess.run([sys.executable, str(checker), str(wd.root), "--data", str(data)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr

    # a rerun skips again (from the cached face store) and leaves the finished experiments alone
    assert run_fold.main(argv) == 2
    again = capsys.readouterr()
    assert "[face_only] skipped" in again.err and "[audio_only] fold 0 already done" in again.err


def test_silent_audio_is_absent(tmp_path):
    data = write_audio_dataset(tmp_path / "data", n_train=6, n_val=2, n_test=2, seconds=0.5)
    ds = load_dataset(data)
    assert audio_presence(ds).present
    for cid in ds.ids:
        sf.write(media_path(data, ds.split_of(cid), cid, "wav"), np.zeros(8000, np.float32), 16000)
    absent = audio_presence(ds)
    assert not absent.present and "none of 10 clip(s) has audible sound" in absent.evidence


def test_modality_labels():
    assert modality_label(["pose", "expression"]) == "face"
    assert modality_label(["egemaps", {"name": "logmel", "params": {"n_mels": 32}}]) == "audio"
    assert modality_label(["mfcc", "expression"]) == "face+audio"


def test_speech_encoder_config_without_a_model_folder_is_skipped(monkeypatch, tmp_path):
    monkeypatch.delenv("ERI_SPEECH_MODEL", raising=False)
    cfg = load_config("te_wav2vec2")
    assert cfg["features"][0]["params"]["model"] == ""
    data = write_audio_dataset(tmp_path / "data", n_train=6, n_val=2, n_test=2, seconds=0.5)
    ds = load_dataset(data)
    why = run_fold.skip_reason(cfg, ds, tmp_path / "features")
    assert why is not None and "ERI_SPEECH_MODEL" in why[0]
    monkeypatch.setenv("ERI_SPEECH_MODEL", str(tmp_path / "my-wavlm"))
    assert load_config("te_wav2vec2")["features"][0]["params"]["model"] == str(tmp_path / "my-wavlm")
