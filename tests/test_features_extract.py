"""End-to-end extraction through the CLI on a dataset with every kind of bad input, and resuming
after a kill."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from competition.features.extract import build_specs, main, parse_sets
from competition.features.registry import get_extractor
from competition.features.store import FeatureStore
from fixtures_media import good_clip, write_data_info, write_video, write_wav

BAD = {
    "corrupt": "truncated/corrupt mp4",
    "emptywav": "0-byte wav",
    "noface": "no detectable face",
    "short": "clip under 1 s",
    "stereo48": "48 kHz stereo wav",
    "missing": "listed mp4 missing",
    "noaudio": "no audio track and no wav",
}


@pytest.fixture(scope="module")
def bad_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad") / "data"
    ids = ["good1", "good2", *BAD]
    write_data_info(root, ids)
    for cid in ("good1", "good2", "emptywav", "stereo48"):
        good_clip(root, cid, n_frames=30)
    full = write_video(root / "train/mp4/corrupt_src.mp4", n_frames=30)
    (root / "train/mp4/corrupt.mp4").write_bytes(full.read_bytes()[:1500])
    full.unlink()
    write_wav(root / "train/wav/corrupt.wav", 2.0)
    (root / "train/wav/emptywav.wav").write_bytes(b"")
    write_wav(root / "train/wav/stereo48.wav", 2.0, sr=48000, channels=2)
    write_video(root / "train/mp4/noface.mp4", n_frames=30, face=False)
    write_wav(root / "train/wav/noface.wav", 2.0)
    write_video(root / "train/mp4/short.mp4", n_frames=10)
    write_wav(root / "train/wav/short.wav", 0.6)
    write_wav(root / "train/wav/missing.wav", 2.0)
    write_video(root / "train/mp4/noaudio.mp4", n_frames=30)  # no audio stream, and no wav at all
    return root


def _failures(work: Path, name: str, params: dict | None = None) -> dict[str, str]:
    store = FeatureStore(work / "features", get_extractor(name), params)
    f = store.failures()
    return dict(zip(f["clip"], f["reason"]))


def test_bad_inputs_become_failure_rows_or_documented_fallbacks(bad_dataset: Path, tmp_path: Path):
    rc = main(["--data", str(bad_dataset), "--extractors", "logmel", "faces", "--set", "faces.detectors=haar",
               "--jobs", "1", "--workdir", str(tmp_path), "--no-progress"])
    assert rc == 0
    faces_fail = _failures(tmp_path, "faces", {"detectors": "haar"})
    assert set(faces_fail) == {"corrupt", "missing"}
    assert "corrupt.mp4" in faces_fail["corrupt"] and "missing" in faces_fail["missing"]
    audio_fail = _failures(tmp_path, "logmel")
    assert set(audio_fail) == {"emptywav", "noaudio"}
    assert "0 bytes" in audio_fail["emptywav"] and "no audio track" in audio_fail["noaudio"]

    faces = FeatureStore(tmp_path / "features", get_extractor("faces"), {"detectors": "haar"})
    info = {r.clip: json.loads(r.info) for r in faces.manifest().itertuples()}
    assert info["noface"]["fallback"] == "full_frame" and info["noface"]["warnings"]
    assert info["good1"]["detection_rate"] >= 0.9
    short = faces.load("short")
    assert short.x.shape == (4, 112 * 112 * 3) and short.mask.all()  # 0.67 s at 0.2 s steps
    logmel = FeatureStore(tmp_path / "features", get_extractor("logmel"), None)
    assert abs(len(logmel.load("stereo48").x) - 201) <= 1  # 2 s at 10 ms, resampled from 48 kHz
    assert abs(len(logmel.load("short").x) - 61) <= 1
    assert not list((tmp_path / "features").rglob("*.tmp"))


def test_cli_options_are_validated():
    assert parse_sets(["visual.model=resnet18", "faces.size=224", "visual.faces={size: 224}"]) == \
        {"visual": {"model": "resnet18", "faces": {"size": 224}}, "faces": {"size": 224}}
    assert build_specs(["visual", "faces"], {"faces": {"size": 224}}) == \
        [{"name": "faces", "params": {"size": 224}}, "visual"]
    with pytest.raises(ValueError, match="unknown extractor"):
        build_specs(["nope"], {})
    with pytest.raises(ValueError, match="EXTRACTOR.PARAM"):
        parse_sets(["size=3"])


@pytest.mark.slow
def test_killed_extraction_resumes_without_redoing_clips(tmp_path: Path):
    root = tmp_path / "data"
    ids = [f"c{i}" for i in range(5)]
    write_data_info(root, ids)
    for cid in ids:
        good_clip(root, cid, n_frames=30)
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "competition.features.extract", "--data", str(root), "--extractors", "faces",
           "--set", "faces.detectors=haar", "--set", "faces.step=0.1", "--jobs", "1", "--workdir", str(work),
           "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    store = FeatureStore(work / "features", get_extractor("faces"), {"detectors": "haar", "step": 0.1})
    deadline = time.time() + 120
    while time.time() < deadline and len(list(store.dir.glob("c*[0-9].npz"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {p.name: p.stat().st_mtime_ns for p in store.dir.glob("c*[0-9].npz")}
    assert 2 <= len(first) < len(ids)
    rc = main(cmd[3:])
    assert rc == 0
    done = {p.name: p.stat().st_mtime_ns for p in store.dir.glob("c*[0-9].npz")}
    assert len(done) == len(ids)
    assert all(done[k] == v for k, v in first.items())  # finished clips were not redone
    for cid in ids:  # every stored clip is complete and loadable, with its geometry beside it
        out = store.load(cid)
        assert out.x.shape == (20, 112 * 112 * 3)  # 2 s every 0.1 s and (store.dir / f"{cid}.track.npz").exists()
    assert not list(store.dir.glob("*.tmp"))
    assert set(pd.read_csv(store.dir / "manifest.csv", dtype=str)["clip"]) >= set(ids) - set(k[:-4] for k in first)


def test_params_json_records_the_machines_that_computed_clips(tmp_path: Path):
    from competition.core.io import read_json, write_json
    from competition.core.provenance import machine_info
    root, work = tmp_path / "data", tmp_path / "work"
    write_data_info(root, ["c0", "c1"])
    for cid in ("c0", "c1"):
        good_clip(root, cid, n_frames=30)
    args = ["--data", str(root), "--extractors", "mfcc", "--jobs", "1", "--workdir", str(work), "--no-progress"]
    assert main(args) == 0
    params = FeatureStore(work / "features", get_extractor("mfcc")).dir / "params.json"
    here = machine_info()
    assert here["cpu"] and here["isa"] != ""
    assert read_json(params)["computed_on"] == [here]
    other = {"cpu": "other", "isa": "avx512f", "arch": "x86_64"}
    write_json(params, {**read_json(params), "computed_on": [other]})
    assert main(args) == 0  # nothing to compute: the record is kept, this machine not added
    assert read_json(params)["computed_on"] == [other]
    (params.parent / "c1.npz").unlink()
    assert main(args) == 0  # c1 recomputed here
    assert read_json(params)["computed_on"] == [other, here]
