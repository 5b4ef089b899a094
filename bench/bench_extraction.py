"""Benchmark of the default feature extraction against the decode-only floor of the same clips.

    python bench/bench_extraction.py [--data DIR] [--n 24] [--jobs 2]

Without --data a synthetic dataset (competition.data.synth) is generated in a temporary folder; all
scratch output goes to a temporary folder, never into the repository. Reports per clip:
- decode: every video frame decoded (no pixel conversion) plus the wav read — the floor any
  extractor that looks at the video pays;
- decode_rgb: the same with every frame converted to RGB;
- extract: the default extractor set run in-process on the same clip, models already loaded;
then the wall time and clips/s of `competition.features.store.extract` with --jobs workers (including
worker start-up and model loading), and the peak resident memory of this process and its workers.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere


def decode_floor(mp4: Path, wav: Path, rgb: bool) -> tuple[float, float]:
    """(wall s, CPU s) to decode every frame of the video and read the wav."""
    import av
    import soundfile as sf
    t0, c0 = time.perf_counter(), time.process_time()
    with av.open(str(mp4)) as c:
        for frame in c.decode(video=0):
            if rgb:
                frame.to_ndarray(format="rgb24")
    sf.read(str(wav), dtype="float32")
    return time.perf_counter() - t0, time.process_time() - c0


def run_inprocess(clip, names: list[str], root: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the extractors on one clip, computed and saved as the store does."""
    from competition.features.registry import get_extractor
    from competition.features.store import FeatureStore, using_root
    t0, c0 = time.perf_counter(), time.process_time()
    with using_root(root):
        for name in names:  # pose reads the crops/geometry cache that faces has just written
            store = FeatureStore(root, get_extractor(name))
            store.save(clip.clip_id, store.extractor.run(clip, store.params))
    return time.perf_counter() - t0, time.process_time() - c0


def _frames(mp4: Path) -> int:
    from competition.media.video import frame_times
    return len(frame_times(mp4))


def peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--n", type=int, default=24, help="clips to generate when --data is not given")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--extractors", nargs="+", default=None)
    args = ap.parse_args()
    from competition.data.contract import load_dataset
    from competition.features.extract import DEFAULT_EXTRACTORS
    from competition.features.store import clip_media, extract
    names = list(args.extractors or DEFAULT_EXTRACTORS)
    import cv2
    import torch
    torch.set_num_threads(1)  # the in-process loop stands for one worker on one core
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="bench_extraction_") as tmp:
        tmp = Path(tmp)
        data = args.data
        if data is None:
            from competition.data.synth import generate
            data = generate(tmp / "data", n=args.n, seed=0, jobs=args.jobs)
        ds = load_dataset(data)
        clips = [clip_media(ds, c) for c in ds.ids]
        run_inprocess(clips[0], names, tmp / "warm")  # load models and JIT once
        rows = []
        for clip in clips:
            rows.append((decode_floor(clip.mp4, clip.wav, False), decode_floor(clip.mp4, clip.wav, True),
                         run_inprocess(clip, names, tmp / "seq")))
        dec, dec_rgb, ext = (np.array(c) for c in zip(*rows))  # each (clips, [wall, cpu])
        t0 = time.perf_counter()
        reports = extract(ds, names, tmp / "par", jobs=args.jobs, progress=False)
        wall = time.perf_counter() - t0
        own, kids = peak_mb()
        result = {
            "clips": len(clips), "extractors": names, "jobs": args.jobs,
            "frames_per_clip": round(float(np.mean([_frames(c.mp4) for c in clips])), 1),
            "decode_ms_per_clip": {"wall": round(1000 * dec[:, 0].mean(), 1), "cpu": round(1000 * dec[:, 1].mean(), 1)},
            "decode_rgb_ms_per_clip": {"wall": round(1000 * dec_rgb[:, 0].mean(), 1),
                                       "cpu": round(1000 * dec_rgb[:, 1].mean(), 1)},
            "extract_ms_per_clip": {"wall": round(1000 * ext[:, 0].mean(), 1), "cpu": round(1000 * ext[:, 1].mean(), 1)},
            "ratio_vs_decode": {"wall": round(ext[:, 0].sum() / dec[:, 0].sum(), 2),
                                "cpu": round(ext[:, 1].sum() / dec[:, 1].sum(), 2)},
            "ratio_vs_decode_rgb": {"wall": round(ext[:, 0].sum() / dec_rgb[:, 0].sum(), 2),
                                    "cpu": round(ext[:, 1].sum() / dec_rgb[:, 1].sum(), 2)},
            "load_average_1min": round(__import__("os").getloadavg()[0], 1),
            "parallel_wall_s": round(wall, 1), "parallel_clips_per_s": round(len(clips) / wall, 2),
            "failed": sum(r.failed for r in reports),
            "peak_rss_mb": {"main": round(own), "largest_worker": round(kids)},
        }
        per = {}
        for name in names:
            from competition.features.registry import get_extractor
            from competition.features.store import FeatureStore
            m = FeatureStore(tmp / "par", get_extractor(name)).manifest()
            per[name] = round(1000 * m["seconds"].astype(float).mean(), 1)
        result["worker_ms_per_clip_by_extractor"] = per
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
