"""The walking skeleton end to end, through the same scripts a user runs: embedded dataset ->
folds -> every fold of the first model -> blended submission -> independent artifact check."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from competition.data.contract import load_dataset
from competition.data.synth import generate
from competition.core.metrics import mean_pcc
from competition.data.submission_format import check_submission
from competition.pipeline.run_fold import main as run_fold_main

REPO = Path(__file__).resolve().parent.parent
CHECKER = REPO.parent / "shared" / "tools" / "check_artifacts.py"


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "data", n=30, seed=3, jobs=1, duration=(2.0, 3.0))


def test_scripts_end_to_end(tiny_synth, tmp_path, capfd):
    work = tmp_path / "work"
    # FOLD_GROUPS=none: the skeleton, not the subject estimate (tests/test_folds.py has that), on 30 clips;
    # FOLD_JOBS=1: the two-process path costs ~10 s more on CI's 2 workers (the slow test_workdir runs it)
    env = {**os.environ, "DATA": str(tiny_synth), "WORKDIR": str(work), "JOBS": "1", "FOLD_JOBS": "1",
           "WANDB_MODE": "disabled", "FOLD_GROUPS": "none"}

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    out = run("bash", "scripts/run_all.sh", "ridge_audio").stderr    # the log
    assert "all folds done: OOF mean PCC" in out

    ds = load_dataset(tiny_synth)
    folds = pd.read_csv(work / "folds" / "folds.csv", dtype={"File_ID": str})
    assert set(folds.File_ID.str.strip("[]")) == set(ds.ids)
    exp = work / "oof" / "ridge_audio"
    oof = pd.read_csv(exp / "oof.csv", dtype={"File_ID": str}).set_index("File_ID")
    oof.index = oof.index.str.strip("[]")
    assert set(oof.index) == set(ds.labelled_ids)
    metrics = json.loads((exp / "metrics.json").read_text())
    recomputed = mean_pcc(oof.loc[ds.labelled_ids, ds.emotions].to_numpy(), ds.labels())
    assert metrics["oof_mean_pcc"] == pytest.approx(recomputed, abs=1e-9)
    assert metrics["dataset"] == ds.fingerprint and len(metrics["fold_mean_pcc"]) == 5

    # a rerun resumes: every fold is skipped, results are unchanged; a process sharing the folds (run_all.sh
    # with FOLD_JOBS > 1) leaves those another process has claimed
    env["PREPARED"] = "1"  # the folds and DATA were checked by run_all.sh: no second prepare.sh
    claims = tmp_path / "claims"
    claims.mkdir()
    for k in (1, 2, 3, 4):
        (claims / f"ridge_audio-{k}").touch()
    # in this process: run_fold.sh's own wiring of --claim-dir is run_all.sh's, above (one process start less)
    run_fold_main(["--all-folds", "--exp", "ridge_audio", "--claim-dir", str(claims), "--data", str(tiny_synth),
                   "--workdir", str(work), "--jobs", "1", "--no-wandb"])
    again = capfd.readouterr().err
    assert "fold 0 already done" in again and "fold 1 already done" not in again
    assert (claims / "ridge_audio-0").exists()
    assert json.loads((exp / "metrics.json").read_text()) == metrics

    run(sys.executable, "make_submission.py", "--blend", "best", "--data", str(tiny_synth),
        "--workdir", str(work))
    subs = sorted((work / "submissions").glob("*.csv"))
    assert subs and all(check_submission(s, ds) == [] for s in subs)
    card = json.loads(subs[0].with_suffix(".json").read_text())
    assert "ridge_audio" in card["weights"]

    if not CHECKER.exists():
        pytest.skip(f"{CHECKER} is absent (no ../shared beside the repo): the independent artifact check did not run")
    res = subprocess.run([sys.executable, str(CHECKER), str(work), "--data", str(tiny_synth)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    assert res.stdout.strip().splitlines()[-1].startswith("OK")
