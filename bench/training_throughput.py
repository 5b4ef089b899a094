"""Training throughput per model from finished experiments: fit seconds per fold (feature loading, every
epoch and its validation pass included) and training clips x epochs per second.

    python bench/training_throughput.py --workdir W     # after e.g. WORKDIR=W bash scripts/run_all.sh EXP...
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from competition.core.io import read_json
from competition.core.paths import Workdir


def throughput(exp_dir: Path) -> dict[str, float]:
    fits, epochs, clip_epochs = [], [], []
    for fold_json in sorted(exp_dir.glob("fold_*/fold.json")):
        f = read_json(fold_json)
        n_epochs = max(1, len(f.get("history", [])))  # classical models fit once
        fits.append(f["seconds"]["fit"])
        epochs.append(n_epochs)
        clip_epochs.append(f["n_train"] * n_epochs)
    return {"folds": len(fits), "fit_s_per_fold": float(np.mean(fits)), "epochs_per_fold": float(np.mean(epochs)),
            "train_clips_per_s": float(np.sum(clip_epochs) / np.sum(fits))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args(argv)
    wd = Workdir.of(a.workdir)
    print("| experiment | model | fit s/fold | epochs/fold | training clips x epochs / s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for m in sorted(wd.oof.glob("*/metrics.json")):
        t = throughput(m.parent)
        model = read_json(m)["model"]
        print(f"| {m.parent.name} | {model} | {t['fit_s_per_fold']:.1f} | {t['epochs_per_fold']:.1f} | "
              f"{t['train_clips_per_s']:.0f} |")


if __name__ == "__main__":
    main()
