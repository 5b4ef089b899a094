"""Blending speed on a synthetic library: M models x N clips x E emotions (default 100 x 25,000 x 7).

    python bench/bench_blend.py [--models 100] [--clips 25000] [--emotions 7] [--folds 5] [--nested]

Times (best of --repeat): the fold statistics (one pass over the predictions), Caruana selection on them
(the target: statistics + selection <= 5 s on 2 cores), and with --nested every method's in-sample and
nested-CV evaluation as `make_submission.py --blend best` runs it. Nothing is written to disk.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from competition.pipeline.ensembling.caruana import CaruanaOptions, select_from_stats
from competition.pipeline.ensembling.library import Library
from competition.pipeline.ensembling.methods import METHODS
from competition.pipeline.ensembling.moments import block_moments, total
from competition.pipeline.ensembling.nested import NestedCV


def synthetic(m: int, n: int, e: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels in [0, 1] and members = labels + noise of increasing size, some sharing errors."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, e))
    shared = rng.normal(0, 0.5, (8, n, e))
    preds = np.empty((m, n, e))
    for i in range(m):
        preds[i] = y + rng.uniform(0.3, 2.0) * rng.normal(0, 1, (n, e)) + shared[i % 8]
    return preds, y


def best_of(fn, repeat: int) -> tuple[float, float, object]:
    """(best wall seconds, CPU seconds of that run summed over threads, result)."""
    runs, out = [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = min(runs)
    return wall, cpu, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--clips", type=int, default=25_000)
    ap.add_argument("--emotions", type=int, default=7)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nested", action="store_true", help="also time every method's nested-CV evaluation")
    a = ap.parse_args(argv)
    preds, y = synthetic(a.models, a.clips, a.emotions)
    fold = np.arange(a.clips) % a.folds
    names = [f"m{i:03d}" for i in range(a.models)]
    print(f"library: {a.models} models x {a.clips} clips x {a.emotions} emotions, {a.folds} folds; "
          f"cpus {os.cpu_count()}, threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"load average {os.getloadavg()[0]:.1f}; times: best of {a.repeat}, wall (CPU over all threads)")
    t_stats, c_stats, parts = best_of(lambda: block_moments(preds, y, fold), a.repeat)
    stats = total(parts).centred()
    t_sel, c_sel, sel = best_of(lambda: select_from_stats(stats, names, CaruanaOptions()), a.repeat)
    print(f"fold statistics        {t_stats:7.3f} s ({c_stats:.3f} s CPU)")
    print(f"caruana selection      {t_sel:7.3f} s ({c_sel:.3f} s CPU)  {len(sel.steps)} steps, "
          f"{len(sel.weights)} members, OOF mean PCC {sel.score:.4f}")
    print(f"statistics + selection {t_stats + t_sel:7.3f} s ({c_stats + c_sel:.3f} s CPU)")
    if a.nested:
        lib = Library(names, preds, preds[:, :10], y, [str(i) for i in range(a.clips)], [str(i) for i in range(10)],
                      [f"e{j}" for j in range(a.emotions)], "bench", {}, fold)
        t0 = time.perf_counter()
        cv = NestedCV(lib)
        for method in METHODS:
            t1 = time.perf_counter()
            ev = cv.evaluate(method)
            print(f"  {method:<20} in-sample {ev.in_sample:.4f} nested {ev.nested:.4f}  "
                  f"{time.perf_counter() - t1:6.2f} s")
        print(f"nested CV, all methods {time.perf_counter() - t0:7.2f} s")


if __name__ == "__main__":
    main()
