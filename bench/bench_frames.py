"""Cost of seeing frames through their context windows (the Aff-Wild2 tasks): building one frame's model
inputs from the stored per-video features, per config. Prints one JSON line per config.

    python bench/bench_frames.py [--task va] [--workdir W] [--exp va_rnn_xattn va_ridge] [--n 3000]

Runs on the task's embedded data in W (made by `TASK=va bash scripts/demo.sh` with WORKDIR=W); features
must be extracted already. Figures: microseconds and bytes of model input per frame (a sequence model's
windows are views of their video's timeline, so each buffer counts once), and what they come to per
million frames (Aff-Wild2's VA track has about 2.9 M annotated frames).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from competition.pipeline.config import load_config  # noqa: E402
from competition.models.registry import build_model  # noqa: E402
from competition.data.task import get_task  # noqa: E402
from competition.pipeline.run_fold import feature_bank  # noqa: E402
from competition.models.trainer import TorchSequenceModel  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="va")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--exp", nargs="+", default=["va_rnn_xattn", "va_attn_fusion", "va_ridge"])
    ap.add_argument("--n", type=int, default=3000, help="frames to build")
    a = ap.parse_args(argv)
    task = get_task(a.task)
    wd = task.workdir(a.workdir)
    ds = task.load(wd.embedded_data)
    ids = ds.labelled_ids[: a.n]
    for name in a.exp:
        cfg = load_config(name)
        bank = feature_bank(cfg, ds, wd.features)
        model = build_model(cfg["model"], cfg.get("params", {}), len(ds.targets), task=task)
        t0 = time.perf_counter()
        if isinstance(model, TorchSequenceModel):
            model._resolve(bank)
            clips = model._load(bank, ids)
            arrays = {}  # windows are views of their video's timeline: count each buffer once
            for c in clips:
                for m in c.values():
                    for a in (m.x, m.mask):
                        base = a if a.base is None else a.base
                        arrays[id(base)] = base.nbytes
            nbytes = sum(arrays.values())
        else:
            x = bank.pooled(ids)
            nbytes = x.nbytes
        secs = time.perf_counter() - t0
        per_us, per_b = 1e6 * secs / len(ids), nbytes / len(ids)
        print(json.dumps({"exp": name, "frames": len(ids), "us_per_frame": round(per_us, 1),
                          "bytes_per_frame": int(per_b), "s_per_million": round(per_us, 1),
                          "gb_per_million": round(per_b * 1e6 / 1e9, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
