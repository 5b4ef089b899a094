"""A short device check for the end-to-end image models: one fold of `dual_branch` (face crops ->
ResNet18 stem, seed 001) and one fold of `expr_te_mobilenetv3` (MobileNetV3 fine-tuned on the face
crops -> Transformer, seed 004, EXPR) with mixed precision on the embedded synthetic sets, printing clips/s,
peak GPU memory and the fold score.

    python bench/gpu_check.py [--workdir W] [--tiny]

On a CUDA machine it runs the configs as written (AMP on) on the full embedded sets (target: under 5
minutes on one modern GPU, data generation included); without a GPU it says so and runs the same at tiny
size on the CPU (fewer clips, smaller crops, one epoch). Needs nothing but the repo's own set-up; the
work directory (default: a temporary one) keeps the generated data, so a rerun skips generation.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
for _k, _v in {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONHASHSEED": "0"}.items():
    os.environ.setdefault(_k, _v)

import torch  # noqa: E402

from competition.pipeline.config import load_config  # noqa: E402
from competition.data.embedded import ensure_embedded  # noqa: E402
from competition.features.store import extract  # noqa: E402
from competition.folds import load_groups, make_folds, read_folds, write_folds  # noqa: E402
from competition.data.task import get_task  # noqa: E402
from competition.pipeline.run_fold import fit_fold  # noqa: E402

TINY = {  # CPU: the same code path at a size that finishes in minutes on 2 cores
    "dual_branch": {"sizes": 40, "set": ["params.epochs=1", "params.image_size=32", "params.grid_len=6"]},
    "expr_te_mobilenetv3": {"sizes": 8, "set": ["params.epochs=1", "train_stride=8", "params.image_size=32"]},
}
CHECKS = [("dual_branch", "eri"), ("expr_te_mobilenetv3", "expr")]


def check(name: str, task_name: str, root: Path, tiny: bool, jobs: int) -> dict:
    task = get_task(task_name)
    t0 = time.perf_counter()
    wd = task.workdir(root)
    ds = task.load(ensure_embedded(task, root, jobs, TINY[name]["sizes"] if tiny else None))
    if not wd.folds.exists():  # by unit: a frame task's videos stay whole
        groups = load_groups(ds.units, task.group_col, None)
        n = 3 if tiny else 5
        write_folds(ds.units, make_folds(ds.units, n, 0, groups), wd.folds, {"n_folds": n, "task": task.name})
    overrides = ["params.amp=true", "params.progress=false"] + (TINY[name]["set"] if tiny else [])
    cfg = load_config(name, overrides)
    fold = read_folds(wd.folds, ds)
    cuda = torch.cuda.is_available()
    extract(ds.units, cfg["features"], wd.features, jobs=jobs, progress=False)
    extract_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    fit = fit_fold(cfg, 0, ds, fold, wd.features, jobs=jobs, progress=False, extract_features=False)
    epochs = len(fit.model.history)
    samples = len(fit.train_ids[::max(1, int(cfg.get("train_stride", 1)))])
    return {"config": name, "device": str(fit.model.device), "samples": samples, "epochs": epochs,
            "train_clips_per_s": samples * epochs / fit.seconds["fit"],
            "predict_clips_per_s": (len(fit.val_ids) + len(fit.test_ids)) / max(fit.seconds["predict"], 1e-9),
            "fit_s": fit.seconds["fit"], "features_s": extract_s,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else float("nan"),
            f"fold0_{task.metric_name}": task.score(fit.val_pred, ds.labels(fit.val_ids))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None, help="keeps the generated data (default: temporary)")
    ap.add_argument("--tiny", action="store_true", help="the CPU size even on a GPU")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    if cuda:
        print(f"GPU: {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})")
    else:
        print(f"no GPU found (torch {torch.__version__}, CUDA available: no): running at tiny size on the CPU")
    tiny = a.tiny or not cuda
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        root = a.workdir or Path(tmp)
        for name, task in CHECKS:
            r = check(name, task, root, tiny, a.jobs)
            score = [k for k in r if k.startswith("fold0_")][0]
            print(f"{r['config']:<22} {r['device']:<6} {r['samples']} samples x {r['epochs']} epoch(s): "
                  f"train {r['train_clips_per_s']:.1f} clips/s, predict {r['predict_clips_per_s']:.1f} clips/s, "
                  f"fit {r['fit_s']:.1f} s (data + features {r['features_s']:.1f} s), "
                  f"peak GPU memory {r['peak_gpu_mb']:.0f} MB, {score} {r[score]:.3f}", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
