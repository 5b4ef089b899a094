"""Kill -9 at seeded random moments, rerun, and get the same final files as an uninterrupted run; a rerun
of finished work skips it. Covers feature extraction, fold runs, tuning and the blend.

The "random" moments are fractions of the uninterrupted run's wall time drawn from a seeded RNG, so the
test is reproducible in what it asks while each kill still lands wherever the work happens to be."""
from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.tiny_data import REPO, write_audio_dataset, write_config

# Each stage runs 4-5 times in fresh processes (3 kills, a finish, a rerun): 30-60 s of CPU per test.
# The fast suite keeps the parts: atomic writes and the sweep of a killed writer's temporaries
# (test_io_orphans), a rerun skipping finished folds (test_end_to_end).
pytestmark = pytest.mark.slow

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONHASHSEED": "0"}
# wall-clock facts and provenance (others commit to this tree while the test runs), not results
VOLATILE_KEYS = {"seconds", "seconds_total", "created", "run", "commit"}
KILLS = 3

EXTRACT = ("import sys; from competition.data.contract import load_dataset; "
           "from competition.features.store import extract; "
           "[print(r) for r in extract(load_dataset(sys.argv[1]), ['egemaps', 'mfcc_stats'], sys.argv[2], "
           "jobs=2, progress=False)]")


def run(cmd: list[str]) -> tuple[float, str]:
    """Run to completion; (seconds, stdout and the log on stderr)."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return time.perf_counter() - t0, res.stdout + res.stderr


def run_killed(cmd: list[str], delay: float) -> bool:
    """Start `cmd`, SIGKILL it after `delay` s; True if it was still running when killed."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the job and any workers it forked, as a pre-emption would
        proc.wait()
        return True


def kill_then_finish(cmd: list[str], full_seconds: float, seed: int) -> str:
    """KILLS kills at seeded moments within the uninterrupted wall time, then a run to completion."""
    rng = random.Random(seed)
    for _ in range(KILLS):
        run_killed(cmd, rng.uniform(0.05, 0.95) * full_seconds)
    return run(cmd)[1]


def _strip(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def content(path: Path) -> object:
    """A file's content as compared here: exact bytes, except for the parts that hold wall-clock times."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k].tobytes() + str(z[k].dtype).encode() + str(z[k].shape).encode() for k in z.files}
    if path.suffix == ".json":
        return _strip(json.loads(path.read_text()))
    if path.name == "manifest.csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns="seconds").to_csv()
    if path.suffix == ".skops":  # a zip of .npy arrays that skops names by object id, plus their schema
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
            return sorted(zf.read(n) for n in zf.namelist() if n.endswith(".npy"))
    if path.suffix == ".zip":
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    return path.read_bytes()


def snapshot(root: Path) -> dict[str, object]:
    """Every final file under root (temporary files a kill left behind are never read, so not compared)."""
    return {str(p.relative_to(root)): content(p) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".tmp") and ".staging." not in str(p)}


def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> dict:
    """An uninterrupted reference run: folds, features, two experiments, a blend; with stage timings."""
    tmp = tmp_path_factory.mktemp("resume")
    data = write_audio_dataset(tmp / "data", n_train=36, n_val=12, n_test=10)
    exps = [write_config(tmp / "cfg" / "ridge_all.yaml", "ridge_all", features=("egemaps", "mfcc_stats"),
                         alpha=10.0),
            write_config(tmp / "cfg" / "svr_mfcc.yaml", "svr_mfcc", model="svr", features=("mfcc_stats",))]
    w = tmp / "ref"
    run([sys.executable, "-m", "competition.folds", "--data", str(data), "--workdir", str(w), "--groups", "none"])
    cmds = {
        "extract": [sys.executable, "-c", EXTRACT, str(data), str(w / "features")],
        "folds": [sys.executable, "-m", "competition.pipeline.run_fold", "--all-folds", "--jobs", "1",
                  "--data", str(data), "--workdir", str(w), "--exp", *map(str, exps)],
        "blend": [sys.executable, "make_submission.py", "--blend", "best", "--data", str(data),
                  "--workdir", str(w)],
    }
    # the blend's reference runs in its own test, so a blend problem does not hide the other results
    seconds = {stage: run(cmd)[0] for stage, cmd in cmds.items() if stage != "blend"}
    return {"tmp": tmp, "data": data, "exps": exps, "w": w, "cmds": cmds, "seconds": seconds}


def workdir_with(ref: dict, name: str, *parts: str) -> Path:
    """A fresh work directory holding copies of the reference's `parts` (e.g. 'folds', 'features')."""
    w = ref["tmp"] / name
    for part in parts:
        shutil.copytree(ref["w"] / part, w / part)
    return w


def retarget(cmd: list[str], ref: dict, w: Path) -> list[str]:
    return [a.replace(str(ref["w"]), str(w)) for a in cmd]


def test_killed_extraction_resumes_to_the_same_features(ref):
    w = workdir_with(ref, "extract", "folds")
    cmd = retarget(ref["cmds"]["extract"], ref, w)
    kill_then_finish(cmd, ref["seconds"]["extract"], seed=1)
    assert snapshot(w / "features") == snapshot(ref["w"] / "features")
    assert not list((w / "features").rglob("*.tmp")), "a killed run's temporary files survived the rerun"
    before = mtimes(w / "features")
    out = run(cmd)[1]
    assert "done=0" in out and "failed=0" in out, out
    stored = {k: v for k, v in before.items() if k.endswith(".npz")}
    assert {k: v for k, v in mtimes(w / "features").items() if k in stored} == stored


def test_killed_fold_runs_resume_to_the_same_oof(ref):
    w = workdir_with(ref, "folds_run", "folds", "features")
    cmd = retarget(ref["cmds"]["folds"], ref, w)
    kill_then_finish(cmd, ref["seconds"]["folds"], seed=2)
    assert snapshot(w / "oof") == snapshot(ref["w"] / "oof")
    assert not list((w / "oof").rglob("*.tmp")), "a killed run's temporary files survived the rerun"
    fold_files = {k: v for k, v in mtimes(w / "oof").items() if "/fold_" in k}
    out = run(cmd)[1]
    assert out.count("already done, skipping") == 2 * 5, out
    assert {k: v for k, v in mtimes(w / "oof").items() if "/fold_" in k} == fold_files


def test_killed_blend_resumes_to_the_same_submission(ref):
    full_seconds = run(ref["cmds"]["blend"])[0]
    w = workdir_with(ref, "blend", "folds", "oof")
    cmd = retarget(ref["cmds"]["blend"], ref, w)
    kill_then_finish(cmd, full_seconds, seed=3)
    assert not list((w / "submissions").rglob("*.tmp")), "a killed run's temporary files survived the rerun"
    got, want = snapshot(w / "submissions"), snapshot(ref["w"] / "submissions")
    assert got == want
    assert any(k.endswith(".csv") for k in got) and any(k.endswith(".json") for k in got)
