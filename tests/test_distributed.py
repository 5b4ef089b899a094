"""torchrun with 2 CPU processes (gloo, DistributedDataParallel) trains the same fold as one process,
and only rank 0 writes the fold directory."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from competition.data.contract import load_dataset
from competition.features.store import extract
from competition.folds import make_folds, write_folds
from competition.core.paths import Workdir
from competition.pipeline.run_fold import main as run_fold_main
from tiny_data import write_audio_dataset

REPO = Path(__file__).resolve().parents[1]
FEATURES = [{"name": "mfcc", "params": {"n_mfcc": 20, "stack": 4}}]


def run(args, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def test_two_processes_train_the_same_fold_as_one(tmp_path):
    data = write_audio_dataset(tmp_path / "data", n_train=18, n_val=6, n_test=4)
    ds = load_dataset(data)
    dirs = {}
    for kind in ("one", "ddp"):
        wd = Workdir.of(tmp_path / kind)
        write_folds(ds, make_folds(ds, n_folds=3, seed=0), wd.folds, {"n_folds": 3})
        dirs[kind] = wd
    extract(ds, FEATURES, dirs["one"].features, progress=False)
    extract(ds, FEATURES, dirs["ddp"].features, progress=False)
    # per-sample loss and no dropout: the two shards' mean gradient is the whole batch's
    cfg = {"name": "te_ddp", "model": "te", "features": FEATURES, "seed": 3,
           "params": {"hidden": 8, "heads": 2, "layers": 1, "epochs": 2, "batch_size": 8, "dropout": 0.0,
                      "loss": "mse", "progress": False}}
    config = tmp_path / "te_ddp.yaml"
    config.write_text(yaml.safe_dump(cfg))
    fold = ["--fold", "0", "--exp", str(config), "--data", str(data), "--no-wandb", "--jobs", "1"]
    run_fold_main([*fold, "--workdir", str(tmp_path / "one")])  # one process: this one
    out = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "competition.pipeline.run_fold", *fold, "--workdir", str(tmp_path / "ddp")], tmp_path)
    assert (out.stdout + out.stderr).count("fold 0: val") == 1  # rank 0 logs it, rank 1 is silent
    one, ddp = (dirs[k].oof / "te_ddp" / "fold_0" for k in ("one", "ddp"))
    assert sorted(p.name for p in ddp.parent.iterdir()) == sorted(p.name for p in one.parent.iterdir())
    for name in ("val.csv", "test.csv"):
        a, b = pd.read_csv(one / name), pd.read_csv(ddp / name)
        assert list(a.iloc[:, 0]) == list(b.iloc[:, 0])
        np.testing.assert_allclose(a.iloc[:, 1:].to_numpy(), b.iloc[:, 1:].to_numpy(), atol=1e-4)
    cards = [json.loads((d / "fold.json").read_text()) for d in (one, ddp)]
    assert [c["processes"] for c in cards] == [1, 2]
    # rank 0 saw half of every batch: its training loss differs, the trained model does not
    losses = [[h["train_loss"] for h in c["history"]] for c in cards]
    assert not np.allclose(losses[0], losses[1], atol=1e-6)
