"""Import a folder of labelled clips as a dataset in the Hume-Reaction layout, whole people held out as Test
(docs/IMPORT.md; sources and labels: data.import_sources; media: data.import_media)."""
from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from competition.data.contract import (
    DATA_INFO, ID_COL, SPLIT_COL, SPLITS, SUBJECT_COL, bracket_id, load_dataset, media_path, split_dir,
)
from competition.core.io import read_json, write_csv, write_json
from competition.core.log import command, parse_and_log
from competition.data.import_media import CLIP_FPS, MIN_SIDE, STILL_SECONDS, write_clip
from competition.data.import_sources import (
    PRESETS, CorpusError, Labels, SourceClip, clip_ids, probe, scan_csv, scan_folder,
)

TRUTH_CSV = "import_truth.csv"
IMPORT_JSON = "import.json"
IMPORTER_VERSION = "2"


# ---------------------------------------------------------------- splits by person

def _pick(groups: list[str], spec: str | None, default_frac: float, rng: np.random.Generator,
          what: str) -> list[str]:
    """Groups named in `spec` ('03,10'; a number that is a person's name is that person), or a count
    ('2'), or (None) `default_frac` of them, chosen by `rng`."""
    named = [s.strip() for s in (spec or "").split(",") if s.strip()]
    if named and not (len(named) == 1 and named[0].isdigit() and named[0] not in groups):
        unknown = [s for s in named if s not in groups]
        if unknown:
            raise CorpusError(f"--{what}-people names unknown people {unknown}; people: {groups}")
        return named
    n = int(spec) if spec is not None else max(1, int(round(default_frac * len(groups))))
    if n >= len(groups):
        raise CorpusError(f"--{what}-people {n}: only {len(groups)} people left to choose from")
    return [groups[i] for i in rng.permutation(len(groups))[:n]]


def assign_splits(people: list[str], seed: int, test: str | None = None, val: str | None = None,
                  frac: float = 0.2) -> dict[str, str]:
    """Person -> Split: Test people first, then Val from the rest, the others Train; deterministic."""
    rng = np.random.default_rng(seed)
    groups = sorted(set(people))
    if len(groups) < 3:
        raise CorpusError(f"{len(groups)} person(s): need at least 3 to hold out Test and Val people")
    test_g = _pick(groups, test, frac, rng, "test")
    rest = [g for g in groups if g not in test_g]
    val_g = _pick(rest, val, frac, rng, "val")
    return {g: "Test" if g in test_g else "Val" if g in val_g else "Train" for g in groups}


# ---------------------------------------------------------------- writing

def _labels(clips: list[SourceClip], emotions: list[str]) -> np.ndarray:
    if clips and clips[0].label is not None:
        y = np.zeros((len(clips), len(emotions)))
        y[np.arange(len(clips)), [emotions.index(c.label) for c in clips]] = 1.0
        return y
    return np.array([[c.values[e] for e in emotions] for c in clips], np.float64)


def _media_record(clips: list[SourceClip], fps: float) -> dict:
    """What import.json says about the media written: clips per source kind, and how each kind is written."""
    kinds = pd.Series([c.kind for c in clips]).value_counts().to_dict()
    return {"clips": {k: int(n) for k, n in kinds.items()}, "fps": {"image": CLIP_FPS, "frames": fps},
            "still_seconds": STILL_SECONDS, "min_side": MIN_SIDE}


def import_corpus(out: Path, clips: list[SourceClip], emotions: list[str], source: dict, seed: int = 0,
                  test: str | None = None, val: str | None = None, jobs: int = 2, force: bool = False,
                  fps: float = CLIP_FPS) -> dict:
    """Write `clips` (probed) into `out` in the Hume layout (resumable); return the import record."""
    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    out = Path(out)
    ids = clip_ids(clips)
    has_people = all(c.person is not None for c in clips)
    groups = [c.person if has_people else i for c, i in zip(clips, ids)]
    split_of = assign_splits(groups, seed, test if has_people else None, val if has_people else None)
    splits = [split_of[g] for g in groups]
    params = {"version": IMPORTER_VERSION, **source, "seed": seed, "test_people": test, "val_people": val,
              "emotions": emotions, "fps": fps, "clips": hashlib.sha256("\n".join(
                  f"{i},{c.path.resolve()}" for i, c in zip(ids, clips)).encode()).hexdigest()[:16]}
    record_path = out / IMPORT_JSON
    if record_path.exists():
        old = read_json(record_path).get("params", {})
        if old != params:
            if not force:
                changed = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k))
                raise CorpusError(f"{record_path}: {out} holds an import with other parameters ({changed}); "
                                  "use another --out, or --force to replace it")
            for split in SPLITS:
                shutil.rmtree(out / split_dir(split), ignore_errors=True)
            for name in (DATA_INFO, TRUTH_CSV, IMPORT_JSON):
                (out / name).unlink(missing_ok=True)
    elif (out / DATA_INFO).exists():
        raise CorpusError(f"{out / DATA_INFO} exists but was not written by the importer; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(record_path, {"params": params, "done": False})

    todo = [(c.kind, c.path, c.frames, c.duration, media_path(out, s, i, "wav"), media_path(out, s, i, "mp4"), fps)
            for c, i, s in zip(clips, ids, splits)]
    todo = [a for a in todo if not (a[4].exists() and a[5].exists())]  # resume
    if jobs == 1 or len(todo) < 32:
        written = [write_clip(*a) for a in todo]
    else:
        written = Parallel(n_jobs=jobs, backend="loky", batch_size=16)(delayed(write_clip)(*a) for a in todo)

    y = _labels(clips, emotions)
    split_arr = np.array(splits)
    info = pd.DataFrame({ID_COL: [bracket_id(i) for i in ids], SPLIT_COL: split_arr})
    for j, emo in enumerate(emotions):
        info[emo] = np.where(split_arr == "Test", "", [f"{v:.4f}" for v in y[:, j]])
    truth = pd.DataFrame({ID_COL: info[ID_COL], SPLIT_COL: split_arr})
    if has_people:
        info[SUBJECT_COL] = [c.person for c in clips]
        truth[SUBJECT_COL] = info[SUBJECT_COL]
    truth["source"] = [str(c.path.resolve()) for c in clips]
    for j, emo in enumerate(emotions):
        truth[emo] = y[:, j]
    order = np.argsort(ids, kind="stable")
    write_csv(out / TRUTH_CSV, truth.iloc[order], float_format="%.4f")
    write_csv(out / DATA_INFO, info.iloc[order], float_format=None)
    load_dataset(out)  # the written dataset must satisfy the contract
    people_by_split = {s: sorted(g for g, sp in split_of.items() if sp == s) for s in SPLITS}
    categorical = clips[0].label is not None
    lo, hi = source.get("scale") or (0.0, 1.0)
    record = {"params": params, "done": True, "n_clips": len(clips), "n_written_files": int(sum(written)),
              "splits": {s: int((split_arr == s).sum()) for s in SPLITS},
              "people": people_by_split if has_people else "unknown (clips split at random)",
              "labels": "categorical: one column per class, one-hot" if categorical else
                        f"ratings: (value - {lo:g}) / ({hi:g} - {lo:g}) per emotion column",
              "media": _media_record(clips, fps), "seconds": round(time.perf_counter() - t0, 2)}
    write_json(record_path, record)
    return record


def _report(problems: list[str], skip_bad: bool) -> None:
    if not problems:
        return
    msg = f"{len(problems)} problem(s) in the source:\n" + "\n".join(problems)
    if not skip_bad:
        raise CorpusError(msg + "\n(--skip-bad imports the other clips)")
    print(f"skipping {len(problems)} bad source item(s):\n  " + "\n  ".join(problems[:20]))


@command
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--preset", choices=sorted(PRESETS), help="a known corpus layout (with --src)")
    how.add_argument("--csv", type=Path, help="path,label[,person] or path,<emotions...>[,person]")
    ap.add_argument("--src", type=Path, default=None, help="corpus folder (scanned without --csv)")
    ap.add_argument("--pattern", default=None, help="regex on paths below --src: groups label, person, clip")
    ap.add_argument("--sequences", action="store_true", help="every folder of images below --src is one clip")
    ap.add_argument("--person-folder", action="store_true", help="the person is the folder holding the clip")
    ap.add_argument("--emotions", default=None, help="label columns A,B or CODE=Name,...; others are bad")
    ap.add_argument("--scale", default=None, help="LOW,HIGH of numeric labels (mapped to [0, 1]); default 0,1")
    ap.add_argument("--fps", type=float, default=CLIP_FPS, help="frame rate of frame sequences")
    ap.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    ap.add_argument("--test-people", "--test-speakers", dest="test", default=None,
                    help="count (chosen by --seed) or names A,B; default 20 %%")
    ap.add_argument("--val-people", "--val-speakers", dest="val", default=None,
                    help="count or names among the rest; default 20 %%")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="write the people to W/subjects.csv (default: "
                    "the work directory of the imported dataset, as every command finds it)")
    ap.add_argument("--skip-bad", action="store_true", help="import the good clips, list the bad ones")
    ap.add_argument("--force", action="store_true", help="replace an import made with other parameters")
    a = parse_and_log(ap, argv)
    labels = Labels.parse(a.emotions, a.scale)
    if a.preset:
        if a.src is None:
            ap.error("--preset needs --src")
        preset = PRESETS[a.preset]
        labels = Labels(list(preset.emotions.values()), preset.emotions)
        clips, emotions, problems = scan_folder(a.src, preset.pattern, labels=labels)
        source = {"preset": a.preset, "src": str(a.src.resolve())}
    elif a.csv:
        clips, emotions, problems = scan_csv(a.csv, a.src, labels)
        source = {"csv": str(a.csv.resolve())}
    elif a.src:
        clips, emotions, problems = scan_folder(a.src, a.pattern, a.sequences, labels, a.person_folder)
        source = {"src": str(a.src.resolve()), "pattern": a.pattern, "sequences": a.sequences,
                  "person_folder": a.person_folder}
    else:
        ap.error("give --preset NAME --src DIR, --csv FILE or --src DIR")
    if a.emotions or a.scale:
        source.update(label_map=labels.codes, scale=list(labels.scale))
    bad = probe(clips)
    clips = [c for c in clips if c.kind]
    _report(problems + bad, a.skip_bad)
    if not clips:
        raise CorpusError("no clip left to import")
    rec = import_corpus(a.out, clips, emotions, source, a.seed, a.test, a.val, a.jobs, a.force, a.fps)
    print(f"imported {rec['n_clips']} clips ({rec['n_written_files']} files written) into {a.out} "
          f"in {rec['seconds']:.1f} s: " + ", ".join(f"{k} {v}" for k, v in rec["splits"].items()))
    if isinstance(rec["people"], dict):
        print("  people: " + "; ".join(f"{k} {' '.join(v)}" for k, v in rec["people"].items()))
        from competition.data.subjects import from_column, write_subjects
        from competition.core.paths import Workdir
        ds = load_dataset(a.out, check_media=False)
        path = Workdir.of(a.workdir, a.out).subjects
        write_subjects(path, from_column(ds, SUBJECT_COL), f"column:{SUBJECT_COL}", ds)
        print(f"  wrote {path} (people as subjects)")
    else:
        print("  no people in the source: no subjects file written")


if __name__ == "__main__":
    raise SystemExit(main())
