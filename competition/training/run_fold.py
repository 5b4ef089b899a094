"""Train one fold of one or more experiments and write their fold results; finalize an experiment
(oof.csv, test.csv, metrics.json) once all its folds are done.

    python -m competition.training.run_fold --fold K [--exp EXP ...] [--data DIR] [--workdir W]
                                            [--set key=value ...] [--jobs N] [--force] [--all-folds]

With no --exp, the configs flagged `default: true` run. A finished fold is skipped (rerun resumes).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from competition.config import default_experiments, load_config
from competition.data.contract import Dataset, load_dataset
from competition.experiment import Experiment
from competition.features.store import extract
from competition.folds import fold_ids, n_folds_of, read_folds
from competition.io import atomic_files
from competition.models.base import FeatureBank
from competition.models.registry import build_model
from competition.paths import Workdir


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
    except ImportError:
        pass


def run_fold(cfg: dict, k: int, ds: Dataset, wd: Workdir, jobs: int = 1, force: bool = False,
             progress: bool = True) -> dict | None:
    """Train fold k of the experiment `cfg`; return the experiment metrics if this completed it."""
    fold = read_folds(wd.folds, ds)
    if not 0 <= k < n_folds_of(fold):
        raise ValueError(f"fold {k} does not exist; folds.csv has {n_folds_of(fold)} fold(s)")
    exp = Experiment(wd.oof, cfg)
    exp.bind(ds, fold, force=force)
    if exp.fold_done(k):
        print(f"[{exp.name}] fold {k} already done, skipping")
        return exp.finalize(ds, fold)

    t0 = time.perf_counter()
    extract(ds, cfg["features"], wd.features, jobs=jobs, progress=progress)
    t_feat = time.perf_counter() - t0

    train_ids, val_ids = fold_ids(fold, k)
    test_ids = ds.test_ids
    bank = FeatureBank(wd.features, cfg["features"])
    seed = int(cfg.get("seed", 42)) + k
    seed_everything(seed)
    model = build_model(cfg["model"], cfg.get("params", {}), len(ds.emotions), seed=seed)
    t1 = time.perf_counter()
    model.fit(bank, train_ids, ds.labels(train_ids), val_ids, ds.labels(val_ids))
    t_fit = time.perf_counter() - t1
    t2 = time.perf_counter()
    val_pred = model.predict(bank, val_ids)
    test_pred = model.predict(bank, test_ids) if test_ids else np.zeros((0, len(ds.emotions)))
    t_pred = time.perf_counter() - t2
    with atomic_files(exp.fold_dir(k)) as staging:  # no half-written checkpoint survives a kill
        model.save(staging)
    info = {"seed": seed, "seconds": {"features": t_feat, "fit": t_fit, "predict": t_pred,
                                      "total": time.perf_counter() - t0},
            "history": model.history}
    res = exp.write_fold(k, ds.emotions, train_ids, val_ids, val_pred, ds.labels(val_ids), test_ids,
                         test_pred, info)
    print(f"[{exp.name}] fold {k}: val mean PCC {res['mean_pcc']:.4f} "
          f"(n_train {len(train_ids)}, n_val {len(val_ids)}, {info['seconds']['total']:.1f}s)")
    metrics = exp.finalize(ds, fold)
    if metrics:
        print(f"[{exp.name}] all folds done: OOF mean PCC {metrics['oof_mean_pcc']:.4f} -> {exp.dir}")
    return metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fold", type=int, action="append", default=None, help="fold index (repeatable)")
    ap.add_argument("--all-folds", action="store_true")
    ap.add_argument("--exp", nargs="*", default=None, help="config names or paths (default: default configs)")
    ap.add_argument("--data", type=Path, default=None, help="dataset root (default: the embedded dataset)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    ap.add_argument("--jobs", type=int, default=2, help="parallel clips during feature extraction")
    ap.add_argument("--force", action="store_true", help="discard results of a changed config/dataset")
    a = ap.parse_args(argv)
    wd = Workdir.of(a.workdir)
    ds = load_dataset(a.data or wd.embedded_data)
    for w in ds.warnings:
        print(f"warning: {w}", file=sys.stderr)
    names = a.exp or default_experiments()
    if not names:
        ap.error("no --exp given and no config is flagged `default: true`")
    folds = list(range(n_folds_of(read_folds(wd.folds, ds)))) if a.all_folds else (a.fold or [])
    if not folds:
        ap.error("give --fold K (repeatable) or --all-folds")
    for name in names:
        cfg = load_config(name, a.overrides)
        for k in folds:
            run_fold(cfg, k, ds, wd, jobs=a.jobs, force=a.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
