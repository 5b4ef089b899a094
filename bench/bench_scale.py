"""Feature-level simulation of the whole pipeline at a chosen scale: cached per-frame features ->
folds -> two sequence models (every fold) -> blend -> submission. Prints one JSON line of figures.

    python bench/bench_scale.py [--clips 25067] [--frames 32] [--dim 64] [--epochs 1]
                                [--models lstm_head,muse_lstm] [--out DIR] [--keep] [--ray CPUS]

--clips 25067 uses the Hume split sizes (Train 15,806, Val 4,657, Test 4,604); other sizes keep those
proportions. Features come from a registered `bench_frames` extractor that makes (frames, dim) rows from
each clip's labels plus noise, so the feature store, models and blend do their real work on them;
"extraction" here is therefore the store's own overhead (the floor under any real extractor).
Scratch data goes to a temporary directory outside the repo (removed unless --keep).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from competition.data.contract import HUME_EMOTIONS, bracket_id, load_dataset  # noqa: E402
from competition.submission import make as blend_main  # noqa: E402
from competition.features.registry import ClipMedia, FeatureOutput, register_extractor  # noqa: E402
from competition.features.store import extract  # noqa: E402
from competition.folds import make_folds, write_folds  # noqa: E402
from competition.core.paths import Workdir  # noqa: E402
from competition.pipeline.launch import launch  # noqa: E402
from competition.pipeline.run_fold import run_fold  # noqa: E402

HUME_SPLITS = {"Train": 15_806, "Val": 4_657, "Test": 4_604}
_LABELS: dict[str, np.ndarray] = {}  # clip -> latent intensities, read by the extractor below


def bench_frames(clip: ClipMedia, frames: int, dim: int) -> FeatureOutput:
    """Per-frame rows = a fixed projection of the clip's latents (rising and falling) + noise."""
    rng = np.random.default_rng(int(clip.clip_id))
    proj = np.random.default_rng(0).normal(0, 1, (len(HUME_EMOTIONS), dim))
    env = np.sin(np.linspace(0, np.pi, frames))[:, None]
    x = env * (_LABELS[clip.clip_id] @ proj)[None] + rng.normal(0, 1.5, (frames, dim))
    return FeatureOutput(x=x.astype(np.float32), t=np.arange(frames, dtype=np.float32) * 0.2)


def register_bench_frames() -> None:
    """Also run in every Ray worker (--ray), which does not import this script."""
    register_extractor("bench_frames", kind="sequence", defaults={"frames": 32, "dim": 64},
                       dtype="float16")(bench_frames)


register_bench_frames()


def split_sizes(n: int) -> dict[str, int]:
    total = sum(HUME_SPLITS.values())
    sizes = {s: int(round(n * v / total)) for s, v in HUME_SPLITS.items()}
    sizes["Test"] = n - sizes["Train"] - sizes["Val"]
    return sizes


def write_data_info(root: Path, n: int, seed: int = 0) -> Path:
    """data_info.csv only (no media: the features are simulated)."""
    rng = np.random.default_rng(seed)
    latent = rng.beta(1.2, 2.5, (n, len(HUME_EMOTIONS)))
    y = np.clip(latent + rng.normal(0, 0.15, latent.shape), 0, 1) + 1e-3
    y = y / y.max(1, keepdims=True)
    splits = np.concatenate([[s] * k for s, k in split_sizes(n).items()])
    ids = [f"{i:05d}" for i in range(n)]
    df = pd.DataFrame(np.round(y, 4), columns=list(HUME_EMOTIONS))
    df = df.astype(str)
    df.loc[splits == "Test", list(HUME_EMOTIONS)] = ""
    df.insert(0, "Split", splits)
    df.insert(0, "File_ID", [bracket_id(i) for i in ids])
    df["Age"], df["Country"] = "30.0", np.where(rng.random(n) < 0.6, "United States", "South Africa")
    root.mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "data_info.csv", index=False)
    _LABELS.update(zip(ids, latent))
    return root


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(n: int, frames: int, dim: int, epochs: int, models: list[str], out: Path,
          ray_cpus: int | None = None) -> dict:
    t_start = time.perf_counter()
    figures: dict = {"clips": n, "splits": split_sizes(n), "frames": frames, "dim": dim, "epochs": epochs}
    data = write_data_info(out / "data", n)
    ds = load_dataset(data, check_media=False)
    wd = Workdir(out / "work")
    spec = {"name": "bench_frames", "params": {"frames": frames, "dim": dim}}

    t0 = time.perf_counter()
    extract(ds, [spec], wd.features, jobs=1, progress=False)
    figures["store_write_s"] = round(time.perf_counter() - t0, 2)
    figures["store_clips_per_s"] = round(n / figures["store_write_s"], 1)

    t0 = time.perf_counter()
    write_folds(ds, make_folds(ds, 5, 42), wd.folds, {"n_folds": 5, "seed": 42})
    figures["folds_s"] = round(time.perf_counter() - t0, 2)

    figures["models"] = {}
    cfgs = [{"name": f"{name}_bench", "model": name, "features": [spec], "seed": 42, "task": "eri",
             "params": {"epochs": epochs, "batch_size": 64, "device": "cpu", "amp": False, "progress": False,
                        "max_len": frames, "patience": epochs}} for name in models]
    if ray_cpus:  # every (model, fold) as a Ray task, through the launcher
        t0 = time.perf_counter()
        jobs = launch(cfgs, data=data, workdir=wd.root, cpus=ray_cpus, no_wandb=True,
                      worker_setup=register_bench_frames)
        figures["ray"] = {"cpus": ray_cpus, "grid_wall_s": round(time.perf_counter() - t0, 1),
                          "tasks_ok": sum(j.status == "ok" for j in jobs), "tasks": len(jobs)}
    for name, cfg in zip(models, cfgs):
        t0 = time.perf_counter()
        if not ray_cpus:
            for k in range(5):
                run_fold(cfg, k, ds, wd, jobs=1, progress=False, no_wandb=True)
        metrics = json.loads((wd.experiment(cfg["name"]) / "metrics.json").read_text())
        fit_s = sum(f["seconds"]["fit"] for f in metrics["folds"].values())
        n_train = sum(f["n_train"] for f in metrics["folds"].values())
        figures["models"][name] = {"wall_s": round(time.perf_counter() - t0, 1), "fit_s": round(fit_s, 1),
                                   "train_clips_per_s": round(n_train * epochs / fit_s, 1),
                                   "oof_mean_pcc": round(metrics["oof_mean_pcc"], 4)}

    t0 = time.perf_counter()
    rc = blend_main(["--blend", "best", "--data", str(data), "--workdir", str(wd.root), "--name", "bench"])
    figures["blend_s"] = round(time.perf_counter() - t0, 2)
    figures["submission_ok"] = rc == 0
    figures["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
    figures["disk_mb"] = {p.name: round(disk_bytes(p) / 2**20, 1) for p in (data, wd.features, wd.oof,
                                                                            wd.submissions)}
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=sum(HUME_SPLITS.values()))
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--models", default="lstm_head,muse_lstm")
    ap.add_argument("--out", type=Path, default=None, help="scratch directory (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--ray", type=int, default=None, metavar="CPUS",
                    help="train the folds as tasks of a local Ray instance with CPUS CPUs (the launcher)")
    a = ap.parse_args(argv)
    out = a.out or Path(tempfile.mkdtemp(prefix="eri-bench-"))
    try:
        figures = bench(a.clips, a.frames, a.dim, a.epochs, a.models.split(","), out, a.ray)
    finally:
        if not a.keep:
            shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(figures))
    return 0 if figures["submission_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
