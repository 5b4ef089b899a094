"""The same seed gives identical folds, features and OOF on CPU, in this process or another one with a
different hash seed; and every fold result carries its run card (seed, package versions, commit)."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from competition.pipeline.config import load_config
from competition.data.contract import load_dataset
from competition.data.subjects import from_csv, write_subjects
from competition.features.store import FeatureStore, extract
from competition.folds import main as folds_main
from competition.core.io import read_json
from competition.core.paths import Workdir
from competition.pipeline.run_fold import run_fold
from tests.tiny_data import REPO, write_audio_dataset, write_config

FEATURES = ["egemaps", "mfcc_stats", {"name": "mfcc", "params": {"n_mfcc": 20, "stack": 4}}]


def run(args: list[str], hash_seed: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONHASHSEED": hash_seed}
    res = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_audio_dataset(tmp_path_factory.mktemp("det") / "data", n_train=30, n_val=10, n_test=8)


def folds_cmd(data: Path, w: Path, seed: int, *extra: str) -> list[str]:
    return ["-m", "competition.folds", "--data", str(data), "--workdir", str(w), "--seed", str(seed), *extra]


def test_same_seed_same_folds_across_processes(data, tmp_path):
    groups = tmp_path / "groups.csv"
    ds = load_dataset(data)
    ids = ds.ids
    pd.DataFrame({"File_ID": ids, "Subject": [f"s{i % 9}" for i in range(len(ids))]}).to_csv(groups, index=False)
    for grouped in (False, True):
        tag = "g" if grouped else "p"
        if grouped:
            for x in "abc":
                write_subjects(Workdir.of(tmp_path / f"{tag}{x}").subjects, from_csv(groups), "file:groups", ds)
        extra = ["--groups", "subjects" if grouped else "none"]
        folds_main(folds_cmd(data, tmp_path / f"{tag}a", 3, *extra)[2:])  # in this process
        run(folds_cmd(data, tmp_path / f"{tag}b", 3, *extra), hash_seed="12345")  # another, other hash seed
        folds_main(folds_cmd(data, tmp_path / f"{tag}c", 4, *extra)[2:])
        a, b, c = ((tmp_path / f"{tag}{x}" / "folds" / "folds.csv").read_bytes() for x in "abc")
        assert a == b
        assert a != c  # the seed is what decides the split


def test_same_features_twice_and_with_parallel_workers(data, tmp_path):
    ds = load_dataset(data)
    extract(ds, FEATURES, tmp_path / "one", jobs=1, progress=False)
    extract(ds, FEATURES, tmp_path / "two", jobs=2, progress=False)
    for spec in FEATURES:
        one, two = FeatureStore.for_spec(tmp_path / "one", spec), FeatureStore.for_spec(tmp_path / "two", spec)
        assert one.failures().empty
        for clip in ds.ids:
            a, b = one.load(clip), two.load(clip)
            assert a is not None and b is not None, (spec, clip)
            assert np.array_equal(a.x, b.x), (spec, clip)
            assert (a.t is None and b.t is None) or np.array_equal(a.t, b.t)


def test_face_pipeline_is_bit_identical_across_worker_counts_and_clip_order(tmp_path):
    """Face boxes, landmarks and crops do not depend on how clips are spread over workers or the order in
    which one process meets them (torch/OpenCV per-process state must not leak between clips)."""
    from competition.data.synth import generate
    ds = load_dataset(generate(tmp_path / "data", n=8, seed=2, jobs=2, duration=(1.0, 1.5)))
    specs = [{"name": "faces", "params": {"detectors": "haar,mtcnn"}}, "pose"]
    extract(ds, specs, tmp_path / "one", jobs=1, progress=False)
    extract(ds, specs, tmp_path / "two", ids=ds.ids[::-1], jobs=2, progress=False)
    for spec in specs:
        one, two = FeatureStore.for_spec(tmp_path / "one", spec), FeatureStore.for_spec(tmp_path / "two", spec)
        assert one.failures().empty and two.failures().empty
        files = sorted(p.name for p in one.dir.glob("*.npz"))
        assert len(files) >= len(ds.ids) and files == sorted(p.name for p in two.dir.glob("*.npz"))
        for name in files:  # the clip arrays and, for faces, the .track.npz geometry beside them
            with np.load(one.dir / name) as a, np.load(two.dir / name) as b:
                assert a.files == b.files
                for key in a.files:
                    assert np.array_equal(a[key], b[key], equal_nan=a[key].dtype.kind == "f"), (spec, name, key)


def _configs(tmp: Path) -> list[Path]:
    return [write_config(tmp / "ridge.yaml", "ridge_det", features=("egemaps", "mfcc_stats"), alpha=10.0),
            write_config(tmp / "lstm.yaml", "lstm_det", model="lstm_head", features=(FEATURES[2],),
                         epochs=3, hidden=16, batch_size=8, max_len=16, device="cpu", amp=False,
                         progress=False, patience=5)]


def checkpoint(path: Path) -> object:
    """A checkpoint's bytes; for skops (a zip whose .npy entries are named by object id and stamped with
    the time of writing) the bytes of its arrays."""
    if path.suffix != ".skops":
        return path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        return sorted(zf.read(n) for n in zf.namelist() if n.endswith(".npy"))


def test_same_seed_same_oof_in_process_and_in_another_process(data, tmp_path):
    cfgs = _configs(tmp_path)
    ds = load_dataset(data)
    a, b = Workdir(tmp_path / "a"), Workdir(tmp_path / "b")
    folds_main(folds_cmd(data, a.root, 42, "--n-folds", "3")[2:])
    (b.root / "folds").mkdir(parents=True)
    for f in ("folds.csv", "folds.json"):
        (b.root / "folds" / f).write_bytes((a.root / "folds" / f).read_bytes())
    (b.root / "features").symlink_to(a.root / "features")  # features across processes: the test above
    for path in cfgs:
        cfg = load_config(path)
        for k in range(3):
            run_fold(cfg, k, ds, a, jobs=1, progress=False, no_wandb=True)
    run(["-m", "competition.pipeline.run_fold", "--all-folds", "--jobs", "1", "--no-wandb", "--data", str(data),
         "--workdir", str(b.root), "--exp", *map(str, cfgs)], hash_seed="777")
    for name in ("ridge_det", "lstm_det"):
        ea, eb = a.experiment(name), b.experiment(name)
        for f in ("oof.csv", "test.csv", *(f"fold_{k}/train_ids.txt" for k in range(3))):
            assert (ea / f).read_bytes() == (eb / f).read_bytes(), (name, f)
        for k in range(3):  # the checkpoints too (skops for ridge, safetensors for the LSTM)
            ckpts = sorted(p.name for p in (ea / f"fold_{k}").iterdir() if p.suffix in (".skops", ".safetensors"))
            assert ckpts, (name, k)
            for c in ckpts:
                assert checkpoint(ea / f"fold_{k}" / c) == checkpoint(eb / f"fold_{k}" / c), (name, k, c)
        assert read_json(ea / "metrics.json")["oof_mean_pcc"] == read_json(eb / "metrics.json")["oof_mean_pcc"]


def test_run_card_records_seed_versions_and_commit(data, tmp_path):
    w = Workdir(tmp_path)
    folds_main(folds_cmd(data, w.root, 42)[2:])
    cfg = load_config(_configs(tmp_path)[0])
    run_fold(cfg, 1, load_dataset(data), w, jobs=1, progress=False, no_wandb=True)
    card = read_json(w.experiment("ridge_det") / "fold_1" / "fold.json")
    assert card["seed"] == cfg["seed"] + 1
    assert {"numpy", "pandas", "scikit-learn", "torch"} <= set(card["run"]["packages"])
    assert card["run"]["commit"] not in ("", "unknown")
    assert card["run"]["python"] == ".".join(map(str, sys.version_info[:3]))


def test_seed_everything_turns_on_torch_determinism_in_warn_only_mode():
    import torch
    from competition.pipeline.run_fold import seed_everything
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        seed_everything(3)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.initial_seed() == 3
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
