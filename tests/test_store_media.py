"""Stored features belong to the media they were computed from: a second dataset with the same clip ids
in the same work directory gets its own features (issue 24), and a moved copy of a dataset reuses them."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from competition.data.contract import load_dataset
from competition.features.extract import main as extract_main
from competition.features.registry import get_extractor
from competition.features.store import FeatureStore, extract
from fixtures_media import write_data_info, write_video
from tiny_data import write_audio_dataset


def _stored(work: Path, name: str, ids: list[str]) -> np.ndarray:
    store = FeatureStore(work / "features", get_extractor(name))
    return np.stack([store.load(c).x for c in ids])


def test_two_datasets_with_the_same_ids_in_one_workdir_get_their_own_features(tmp_path, capsys):
    a = write_audio_dataset(tmp_path / "a", n_train=4, n_val=1, n_test=1, seed=0)
    b = write_audio_dataset(tmp_path / "b", n_train=4, n_val=1, n_test=1, seed=1)
    ids = load_dataset(a).ids
    assert ids == load_dataset(b).ids
    work, fresh = tmp_path / "w", tmp_path / "fresh"
    for data, wd in ((a, work), (b, fresh)):
        assert extract_main(["--data", str(data), "--extractors", "mfcc_stats", "--workdir", str(wd), "-q"]) == 0
    feats_a = _stored(work, "mfcc_stats", ids)
    capsys.readouterr()
    assert extract_main(["--data", str(b), "--extractors", "mfcc_stats", "--workdir", str(work), "-q"]) == 0
    assert f"{len(ids)} clip(s) re-extracted: their media changed" in capsys.readouterr().err
    feats_b = _stored(work, "mfcc_stats", ids)
    assert np.array_equal(feats_b, _stored(fresh, "mfcc_stats", ids))  # B's own features, as in a fresh workdir
    assert not np.allclose(feats_a, feats_b)

    moved = tmp_path / "moved_b"  # a copy elsewhere with its modification times (cp -a): nothing recomputed
    shutil.copytree(b, moved)
    [report] = extract(load_dataset(moved), ["mfcc_stats"], work / "features", progress=False)
    assert (report.done, report.skipped) == (0, len(ids))
    (moved / "train" / "wav" / f"{ids[0]}.wav").write_bytes((a / "train" / "wav" / f"{ids[0]}.wav").read_bytes())
    # (the same size as B's wav: its new modification time tells it apart)
    [report] = extract(load_dataset(moved), ["mfcc_stats"], work / "features", progress=False)
    assert (report.done, report.skipped) == (1, len(ids) - 1)
    assert np.array_equal(_stored(work, "mfcc_stats", ids[:1]), feats_a[:1])


def test_face_features_never_read_the_crops_of_another_datasets_clip(tmp_path):
    """`pose` reads the `faces` store's cached crops and geometry; a clip cached for other media is
    recomputed, not reused, even when `faces` itself is not re-extracted first."""
    datasets = {}
    for name, face in (("face", True), ("noface", False)):
        root = write_data_info(tmp_path / name, ["c1"])
        write_video(root / "train" / "mp4" / "c1.mp4", n_frames=10, face=face)
        datasets[name] = load_dataset(root, check_media=False)
    spec = {"name": "pose", "params": {"detectors": "haar"}}
    faces_spec = {"name": "faces", "params": {"detectors": "haar"}}
    work = tmp_path / "w" / "features"
    extract(datasets["face"], [faces_spec, spec], work, progress=False)
    extract(datasets["noface"], [spec], work, progress=False)
    extract(datasets["noface"], [spec], tmp_path / "fresh", progress=False)
    stored = FeatureStore.for_spec(work, spec).load("c1")
    expected = FeatureStore.for_spec(tmp_path / "fresh", spec).load("c1")
    assert np.array_equal(stored.x, expected.x) and not stored.mask.any()
