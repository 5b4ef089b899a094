"""Blend methods over a Library and the submission they produce.

    python make_submission.py --blend best|caruana [--name NAME] [--exp EXP ...] [--data DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from competition.data.contract import load_dataset
from competition.ensembling.caruana import caruana_select
from competition.ensembling.library import Library, load_library
from competition.experiment import git_commit
from competition.io import write_json
from competition.paths import Workdir
from competition.submission import check_submission, write_submission
from competition.task import get_task

METHODS = ("caruana",)


@dataclass
class BlendResult:
    method: str
    weights: dict[str, float]
    score: float            # in-sample OOF score of the selected blend
    oof: np.ndarray
    test: np.ndarray
    table: str


def blend(lib: Library, method: str = "caruana") -> BlendResult:
    task = get_task()
    if method == "caruana":
        sel = caruana_select(lib.names, lib.oof, lib.y, task.score)
        return BlendResult(method, sel.weights, sel.score, sel.blend(lib.names, lib.oof),
                           sel.blend(lib.names, lib.test), sel.table(task.metric_name))
    raise ValueError(f"unknown blend method {method!r}; known: {list(METHODS)} or 'best'")


def choose(lib: Library, method: str) -> BlendResult:
    return blend(lib, "caruana" if method == "best" else method)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blend", default="best", help=f"best or one of {list(METHODS)}")
    ap.add_argument("--name", default=None, help="submission name (default: blend-<method>)")
    ap.add_argument("--exp", nargs="*", default=None, help="experiments to consider (default: all finished)")
    ap.add_argument("--data", type=Path, default=None, help="dataset root (default: the embedded dataset)")
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args(argv)
    wd = Workdir.of(a.workdir)
    ds = load_dataset(a.data or wd.embedded_data, check_media=False)
    lib = load_library(wd.oof, ds, a.exp)
    print("library: " + ", ".join(f"{n} {s:.4f}" for n, s in sorted(lib.scores.items(), key=lambda x: -x[1])))
    res = choose(lib, a.blend)
    print(res.table)
    name = a.name or f"blend-{res.method}"
    path = write_submission(wd.submissions / f"{name}.csv", lib.test_ids, res.test, lib.targets)
    card = {"name": name, "method": res.method, "requested": a.blend, "members": list(res.weights),
            "weights": res.weights, "in_sample_oof_mean_pcc": res.score, "member_oof_mean_pcc": lib.scores,
            "dataset": ds.fingerprint, "folds_fingerprint": lib.folds_fingerprint, "commit": git_commit(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "csv": path.name, "zip": path.with_suffix(".zip").name}
    write_json(path.with_suffix(".json"), card)
    problems = check_submission(path, ds)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"wrote {path} ({len(lib.test_ids)} Test clips), card {path.with_suffix('.json').name}; "
          f"OOF mean PCC {res.score:.4f}")
    return 1 if problems else 0
