"""The Ray launcher on a local 2-CPU instance: extraction shards and an (experiment, fold) grid end to
end; a fold task killed mid-run is rerun by Ray and the results equal a sequential run; a task that
raises is recorded and the grid goes on."""
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("ray")
# A local Ray instance (5-20 s to start) and a fresh process per task: about a minute on 2 cores.
pytestmark = pytest.mark.slow

from competition.core.paths import Workdir  # noqa: E402
from competition.data.contract import load_dataset  # noqa: E402
from competition.data.synth import generate  # noqa: E402
from competition.folds import main as folds_main  # noqa: E402
from competition.pipeline.config import load_config  # noqa: E402
from competition.pipeline.launch import launch  # noqa: E402
from competition.pipeline.run_fold import run_fold  # noqa: E402


def _kill_first(title: str, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first process whose title (Ray sets ray::<function>) starts with `title`."""
    while not stop.is_set() and not killed:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="ignore")
            except OSError:
                continue
            if cmd.startswith(title):
                time.sleep(0.5)  # let it get into the fold
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.05)


def test_grid_on_local_ray_survives_a_killed_task_and_equals_the_sequential_run(tmp_path):
    data = generate(tmp_path / "data", n=18, seed=5, jobs=1, duration=(2.0, 2.5))
    ray_wd, seq_wd = Workdir.of(tmp_path / "ray"), Workdir.of(tmp_path / "seq")
    folds_main(["--data", str(data), "--workdir", str(ray_wd.root), "--n-folds", "3", "--groups", "none"])
    shutil.copytree(ray_wd.root / "folds", seq_wd.root / "folds")
    broken = tmp_path / "broken.yaml"
    # valid as a config, fails in the task: scikit-learn refuses a negative alpha when fitting
    broken.write_text(yaml.safe_dump({"model": "ridge", "features": ["mfcc_stats"], "params": {"alpha": -1.0}}))

    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first, args=("ray::fold_job", killed, stop), daemon=True)
    killer.start()
    try:
        jobs = launch(["ridge_audio", str(broken)], data=data, workdir=ray_wd.root, folds=[0, 1, 2], cpus=2,
                      shards=2, max_retries=2, no_wandb=True)
    finally:
        stop.set()
    assert killed, "no fold task was running to be killed"
    status = {(j.kind, j.name, j.part): j.status for j in jobs}
    assert status[("extract", "shard", 0)] == status[("extract", "shard", 1)] == "ok"
    assert all(status[("fold", "ridge_audio", k)] == "ok" for k in range(3))
    assert all(status[("fold", "broken", k)] == "failed" for k in range(3))
    card = json.loads((ray_wd.base / "launch.json").read_text())
    assert all("alpha" in j["error"] for j in card["jobs"] if j["name"] == "broken")

    ds = load_dataset(data)
    cfg = load_config("ridge_audio")
    for k in range(3):
        run_fold(cfg, k, ds, seq_wd, jobs=1, progress=False, no_wandb=True)
    ray_oof = pd.read_csv(ray_wd.experiment("ridge_audio") / "oof.csv")
    seq_oof = pd.read_csv(seq_wd.experiment("ridge_audio") / "oof.csv")
    pd.testing.assert_frame_equal(ray_oof, seq_oof)
    ray_metrics = json.loads((ray_wd.experiment("ridge_audio") / "metrics.json").read_text())
    assert ray_metrics["oof_mean_pcc"] == json.loads(
        (seq_wd.experiment("ridge_audio") / "metrics.json").read_text())["oof_mean_pcc"]
