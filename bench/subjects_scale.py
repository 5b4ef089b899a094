"""The subject estimate (competition.features.subjects.estimate_subjects) at Hume-Reaction size: wall time,
CPU time, peak RSS and ARI against the planted people, on synthetic identity embeddings, with the exact
path (every clip clustered at once, O(n^2) memory) and the default one (exact up to MAX_EXACT clips,
sampled above).

    python bench/subjects_scale.py [--n 2000 6000 25000] [--paths exact default] [--exact-max 6000]

Each (n, path) runs in its own process (peak RSS is per process). Synthetic data: about 10 clips per
person (5-15); 128-d face descriptors spread like dlib's (same person 0.3-0.5 apart, different people
0.8-1.0), 3 % of the clips without a face; a 64-d scene embedding per person's room (rooms shared by
about 5 % of people, like a lab); 7 labels on two thirds of the clips (for the diagnostics' cost).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def synthetic(n: int, seed: int = 0) -> tuple[list[str], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(ids, {face_identity, scene}, person per clip, labels with NaN rows for unlabelled clips)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 16, n // 5)
    person = np.repeat(np.arange(len(sizes)), sizes)[:n]
    people = person.max() + 1
    # per clip Euclidean spread s * sqrt(2 * 128) between two clips of a person: 0.3-0.5 for s in [0.019, 0.031];
    # centres 0.05 per dimension: different people sqrt(2 * 128 * (0.05^2 + s^2)) = 0.85-0.9
    spread = rng.uniform(0.019, 0.031, people)[person][:, None]
    face = rng.normal(0, 0.05, (people, 128))[person] + spread * rng.standard_normal((n, 128))
    face[rng.random(n) < 0.03] = np.nan
    room = np.where(rng.random(people) < 0.05, 0, np.arange(people))  # 5 % share one lab room
    scene = rng.normal(0, 1, (people, 64))[room][person] + 0.5 * rng.standard_normal((n, 64))
    labels = rng.random((n, 7))
    labels[rng.random(n) < 1 / 3] = np.nan
    return [f"{i:06d}" for i in range(n)], {"face_identity": face.astype(np.float32),
                                            "scene": scene.astype(np.float32)}, person, labels


def run_one(n: int, path: str) -> dict:
    from competition.features import subjects
    ids, emb, person, labels = synthetic(n)
    if path == "exact":
        subjects.MAX_EXACT = n
    t0, c0 = time.perf_counter(), time.process_time()
    est = subjects.estimate_subjects(ids, emb, labels=labels)
    d = est.diagnostics
    return {"n": n, "path": path, "people": int(person.max() + 1), "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(time.process_time() - c0, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2),
            "ari": round(adjusted_rand_score(person, est.table["subject"]), 4), "groups": d["n_clusters"],
            "threshold": d["threshold"], "usable": d["usable"], "modalities": "+".join(d["modalities"]),
            "mean_confidence": d["mean_confidence"], "sampled": d.get("sampled")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 6000, 25000])
    ap.add_argument("--paths", nargs="+", default=["exact", "default"], choices=["exact", "default"])
    ap.add_argument("--exact-max", type=int, default=6000, help="largest n run on the exact path (memory)")
    ap.add_argument("--one", nargs=2, metavar=("N", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(run_one(int(a.one[0]), a.one[1])))
        return 0
    for n in a.n:
        for path in a.paths:
            if path == "exact" and n > a.exact_max:
                print(json.dumps({"n": n, "path": path, "skipped": f"more than --exact-max {a.exact_max} clips"}))
                continue
            out = subprocess.run([sys.executable, __file__, "--one", str(n), path], capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr[-2000:], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
