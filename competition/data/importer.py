"""Import a folder of labelled audio clips as a dataset in the Hume-Reaction layout the toolkit reads.

    python -m competition.data.importer --preset emodb --src DIR --out OUT [options]
    python -m competition.data.importer --csv FILE --out OUT [options]

    options: [--test-speakers N|A,B] [--val-speakers N|A,B] [--seed 0] [--jobs 2] [--workdir W]
             [--skip-bad] [--force]

Sources:
- `--preset emodb`: EmoDB file names `<speaker:2 digits><text:a01><emotion letter><version>.wav`
  (e.g. 03a01Fa.wav), speaker and emotion read from the name.
- `--csv FILE`: columns `path,label[,speaker]` (one categorical label per clip) or `path,<one column per
  emotion, numbers in [0, 1]>[,speaker]`; relative paths are relative to `--src` (default: the CSV's folder).

What is written to OUT:
- `data_info.csv` (File_ID, Split, one column per emotion, Subject when speakers are known) and
  `{train,val,test}/{wav,mp4}/<id>.*`. A categorical label becomes one column per class, one-hot
  (max-normalised with one 1.0 per clip, as Hume-Reaction labels are). Test rows have no labels.
- Whole speakers are held out: Test and Val are speakers chosen by `--seed` (default 20 % each) or named.
  Without speakers, clips are split at random (and a held-out score then says nothing about new people).
- `import_truth.csv`: every clip's labels, Test included, with speaker and source path: what
  `python -m competition.data.heldout` scores a submission against. The pipeline never reads it.
- `import.json`: the parameters and counts; a rerun with the same parameters resumes (media already on
  disk are kept), with other parameters it refuses unless `--force`.
- Audio is copied unchanged (the toolkit resamples any rate and channel count when it loads audio);
  other formats soundfile reads (flac, ogg, ...) are written as 16-bit wav at their own rate.
- Audio-only corpora get a placeholder video per clip: uniform grey, 64x64, 5 fps, as long as the audio
  (about 2 kB each), so every command works unchanged; face and visual features of it carry no signal.
- With `--workdir W`, the speakers also go to `W/subjects.csv` (competition.data.subjects), so folds group
  by speaker.

Every problem with the source (unknown file-name pattern, missing column, unreadable or empty audio,
missing file) is reported at once with the file; `--skip-bad` imports the rest instead.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from competition.data.contract import (
    DATA_INFO, ID_COL, SPLIT_COL, SPLITS, SUBJECT_COL, DataError, bracket_id, is_plain_token, load_dataset, media_path,
    split_dir,
)
from competition.core.io import atomic_path, read_json, write_csv, write_json
from competition.core.log import add_log_arguments, command, setup_logging

TRUTH_CSV = "import_truth.csv"
IMPORT_JSON = "import.json"
VIDEO_SIZE, VIDEO_FPS, VIDEO_GREY = 64, 5.0, 128
IMPORTER_VERSION = "1"


class CorpusError(DataError):
    """The source corpus cannot be imported; the message lists every problem with its file."""


@dataclass(frozen=True)
class Preset:
    pattern: re.Pattern
    emotions: dict[str, str]  # code in the file name -> emotion column
    example: str


PRESETS: dict[str, Preset] = {
    "emodb": Preset(
        pattern=re.compile(r"^(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<emotion>[WLEAFTN])(?P<version>[a-z])$"),
        emotions={"W": "Anger", "L": "Boredom", "E": "Disgust", "A": "Fear", "F": "Happiness",
                  "T": "Sadness", "N": "Neutral"},
        example="03a01Fa.wav = speaker 03, text a01, emotion F (happiness), version a"),
}
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")


@dataclass
class SourceClip:
    path: Path
    speaker: str | None
    label: str | None = None                  # categorical corpora
    values: dict[str, float] | None = None    # per-emotion intensities
    duration: float = 0.0


# ---------------------------------------------------------------- reading a source

def scan_preset(name: str, src: Path) -> tuple[list[SourceClip], list[str], list[str]]:
    """(clips, emotion columns, problems) of a corpus folder laid out as preset `name` (wavs anywhere below)."""
    preset = PRESETS[name]
    if not src.is_dir():
        raise CorpusError(f"{src}: source folder not found")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise CorpusError(f"{src}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found below it")
    clips, problems = [], []
    for p in files:
        m = preset.pattern.match(p.stem)
        if m is None:
            problems.append(f"{p}: file name does not match the {name} pattern (e.g. {preset.example})")
            continue
        clips.append(SourceClip(p, m["speaker"], label=preset.emotions[m["emotion"]]))
    return clips, list(preset.emotions.values()), problems


def scan_csv(csv: Path, src: Path | None = None) -> tuple[list[SourceClip], list[str], list[str]]:
    """(clips, emotion columns, problems) of a CSV `path,label[,speaker]` or `path,<emotions...>[,speaker]`."""
    if not csv.exists():
        raise CorpusError(f"{csv}: file not found")
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{csv}: not a readable CSV ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    lower = {c.lower(): c for c in df.columns}
    if "path" not in lower:
        raise CorpusError(f"{csv}: missing column 'path' (columns: {list(df.columns)}); expected "
                           "path,label[,speaker] or path,<one column per emotion>[,speaker]")
    path_col, speaker_col, label_col = lower["path"], lower.get("speaker"), lower.get("label")
    emotion_cols = [c for c in df.columns if c not in {path_col, speaker_col, label_col}]
    if label_col is not None and emotion_cols:
        raise CorpusError(f"{csv}: has both a 'label' column and other columns {emotion_cols}; use either "
                           "path,label[,speaker] or path,<one column per emotion>[,speaker]")
    if label_col is None and not emotion_cols:
        raise CorpusError(f"{csv}: missing column 'label' (or one column per emotion) beside 'path'")
    base = src or csv.parent
    clips, problems = [], []
    for i, row in df.iterrows():
        where = f"{csv}:{int(i) + 2}"
        path = Path(row[path_col].strip())
        path = path if path.is_absolute() else base / path
        speaker = row[speaker_col].strip() if speaker_col else None
        if speaker_col and not speaker:
            problems.append(f"{where}: empty speaker")
            continue
        if label_col is not None:
            label = row[label_col].strip()
            if not label:
                problems.append(f"{where}: empty label")
                continue
            clips.append(SourceClip(path, speaker, label=label))
            continue
        values, bad = {}, []
        for c in emotion_cols:
            v = pd.to_numeric(row[c], errors="coerce")
            if pd.isna(v) or not 0.0 <= float(v) <= 1.0:
                bad.append(f"{c}={row[c]!r}")
            values[c] = float(v)
        if bad:
            problems.append(f"{where}: emotion value(s) not numbers in [0, 1]: {', '.join(bad)}")
            continue
        clips.append(SourceClip(path, speaker, values=values))
    emotions = sorted({c.label for c in clips if c.label}) if label_col is not None else emotion_cols
    return clips, emotions, problems


def probe_audio(clips: list[SourceClip]) -> list[str]:
    """Fill in each clip's duration; return the problems (missing, unreadable or empty audio)."""
    import soundfile as sf

    problems = []
    for c in clips:
        if not c.path.is_file():
            problems.append(f"{c.path}: audio file not found")
            continue
        try:
            info = sf.info(str(c.path))
        except Exception as exc:  # soundfile raises its own error types for every unreadable file
            problems.append(f"{c.path}: unreadable audio ({exc})")
            continue
        if info.frames == 0:
            problems.append(f"{c.path}: audio has no samples")
            continue
        c.duration = info.frames / info.samplerate
    return problems


def clip_ids(clips: list[SourceClip]) -> list[str]:
    """File names -> unique File_IDs: the stem with anything but letters, digits, _ and - as '_';
    repeated stems get -2, -3, ... in source order."""
    seen: dict[str, int] = {}
    ids = []
    for c in clips:
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", c.path.stem) or "clip"
        seen[stem] = seen.get(stem, 0) + 1
        ids.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    assert all(is_plain_token(i) for i in ids)
    return ids


# ---------------------------------------------------------------- splits by speaker

def _pick(groups: list[str], spec: str | None, default_frac: float, rng: np.random.Generator,
          what: str) -> list[str]:
    """Groups named in `spec` ('03,10'; a number that is a speaker's name is that speaker), or a count
    ('2'), or (None) `default_frac` of them, chosen by `rng`."""
    named = [s.strip() for s in (spec or "").split(",") if s.strip()]
    if named and not (len(named) == 1 and named[0].isdigit() and named[0] not in groups):
        unknown = [s for s in named if s not in groups]
        if unknown:
            raise CorpusError(f"--{what}-speakers names unknown speaker(s) {unknown}; speakers: {groups}")
        return named
    n = int(spec) if spec is not None else max(1, int(round(default_frac * len(groups))))
    if n >= len(groups):
        raise CorpusError(f"--{what}-speakers {n}: only {len(groups)} speaker(s) left to choose from")
    return [groups[i] for i in rng.permutation(len(groups))[:n]]


def assign_splits(speakers: list[str], seed: int, test: str | None = None, val: str | None = None,
                  frac: float = 0.2) -> dict[str, str]:
    """Speaker -> Split: Test speakers first, then Val from the rest, the others Train; deterministic."""
    rng = np.random.default_rng(seed)
    groups = sorted(set(speakers))
    if len(groups) < 3:
        raise CorpusError(f"{len(groups)} speaker(s): need at least 3 to hold out Test and Val speakers")
    test_g = _pick(groups, test, frac, rng, "test")
    rest = [g for g in groups if g not in test_g]
    val_g = _pick(rest, val, frac, rng, "val")
    return {g: "Test" if g in test_g else "Val" if g in val_g else "Train" for g in groups}


# ---------------------------------------------------------------- writing

def write_grey_video(path: Path, duration: float) -> None:
    """A cheap valid placeholder video: uniform grey, VIDEO_SIZE square, VIDEO_FPS, `duration` long."""
    from competition.data.synth import write_video

    n = max(1, int(round(duration * VIDEO_FPS)))
    frame = np.full((VIDEO_SIZE, VIDEO_SIZE, 3), VIDEO_GREY, np.uint8)
    pts = np.round(np.arange(n) * 1000.0 / VIDEO_FPS).astype(np.int64)
    write_video(path, (frame for _ in range(n)), pts, VIDEO_SIZE, VIDEO_SIZE, VIDEO_FPS)


def write_wav(src: Path, dest: Path) -> None:
    import soundfile as sf

    with atomic_path(dest) as tmp:
        if src.suffix.lower() == ".wav":
            shutil.copyfile(src, tmp)
        else:
            y, sr = sf.read(str(src), always_2d=True)
            sf.write(str(tmp), y, sr, subtype="PCM_16", format="WAV")


def _write_media(src: Path, wav: Path, mp4: Path, duration: float) -> int:
    """Write what is missing of one clip's media; return how many files were written."""
    n = 0
    if not wav.exists():
        write_wav(src, wav)
        n += 1
    if not mp4.exists():
        write_grey_video(mp4, duration)
        n += 1
    return n


def _labels(clips: list[SourceClip], emotions: list[str]) -> np.ndarray:
    if clips and clips[0].label is not None:
        y = np.zeros((len(clips), len(emotions)))
        y[np.arange(len(clips)), [emotions.index(c.label) for c in clips]] = 1.0
        return y
    return np.array([[c.values[e] for e in emotions] for c in clips], np.float64)


def import_corpus(out: Path, clips: list[SourceClip], emotions: list[str], source: dict, seed: int = 0,
                  test: str | None = None, val: str | None = None, jobs: int = 2, force: bool = False) -> dict:
    """Write `clips` into `out` in the Hume layout (resumable); return the import record (import.json)."""
    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    out = Path(out)
    ids = clip_ids(clips)
    has_speakers = all(c.speaker is not None for c in clips)
    groups = [c.speaker if has_speakers else i for c, i in zip(clips, ids)]
    split_of = assign_splits(groups, seed, test if has_speakers else None, val if has_speakers else None)
    splits = [split_of[g] for g in groups]
    params = {"version": IMPORTER_VERSION, **source, "seed": seed, "test_speakers": test, "val_speakers": val,
              "emotions": emotions, "clips": hashlib.sha256("\n".join(
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

    jobs_args = [(c.path, media_path(out, s, i, "wav"), media_path(out, s, i, "mp4"), c.duration)
                 for c, i, s in zip(clips, ids, splits)]
    jobs_args = [a for a in jobs_args if not (a[1].exists() and a[2].exists())]  # resume
    if jobs == 1 or len(jobs_args) < 32:
        written = [_write_media(*a) for a in jobs_args]
    else:
        written = Parallel(n_jobs=jobs, backend="loky", batch_size=16)(delayed(_write_media)(*a) for a in jobs_args)

    y = _labels(clips, emotions)
    split_arr = np.array(splits)
    info = pd.DataFrame({ID_COL: [bracket_id(i) for i in ids], SPLIT_COL: split_arr})
    for j, emo in enumerate(emotions):
        info[emo] = np.where(split_arr == "Test", "", [f"{v:.4f}" for v in y[:, j]])
    truth = pd.DataFrame({ID_COL: info[ID_COL], SPLIT_COL: split_arr})
    if has_speakers:
        info[SUBJECT_COL] = [c.speaker for c in clips]
        truth[SUBJECT_COL] = info[SUBJECT_COL]
    truth["source"] = [str(c.path.resolve()) for c in clips]
    for j, emo in enumerate(emotions):
        truth[emo] = y[:, j]
    order = np.argsort(ids, kind="stable")
    write_csv(out / TRUTH_CSV, truth.iloc[order], float_format="%.4f")
    write_csv(out / DATA_INFO, info.iloc[order], float_format=None)
    load_dataset(out)  # the written dataset must satisfy the contract
    speakers_by_split = {s: sorted({g for g, sp in split_of.items() if sp == s}) if has_speakers else None
                         for s in SPLITS}
    record = {"params": params, "done": True, "n_clips": len(clips), "n_written_files": int(sum(written)),
              "splits": {s: int((split_arr == s).sum()) for s in SPLITS},
              "speakers": speakers_by_split if has_speakers else "unknown (clips split at random)",
              "video": {"kind": "grey placeholder", "size": VIDEO_SIZE, "fps": VIDEO_FPS},
              "seconds": round(time.perf_counter() - t0, 2)}
    write_json(record_path, record)
    return record


def _report(problems: list[str], skip_bad: bool) -> None:
    if not problems:
        return
    msg = f"{len(problems)} problem(s) in the source:\n" + "\n".join(problems)
    if not skip_bad:
        raise CorpusError(msg + "\n(--skip-bad imports the other clips)")
    print(f"skipping {len(problems)} bad source file(s):\n  " + "\n  ".join(problems[:20]))


@command
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=sorted(PRESETS), help="a known corpus layout (with --src)")
    src.add_argument("--csv", type=Path, help="path,label[,speaker] or path,<emotions...>[,speaker]")
    ap.add_argument("--src", type=Path, default=None, help="corpus folder (--preset), base of relative CSV paths")
    ap.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    ap.add_argument("--test-speakers", default=None, help="count (chosen by --seed) or names A,B; default 20 %%")
    ap.add_argument("--val-speakers", default=None, help="count or names among the rest; default 20 %%")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="write the speakers to W/subjects.csv (default: "
                    "the work directory of the imported dataset, as every command finds it)")
    ap.add_argument("--skip-bad", action="store_true", help="import the good clips, list the bad ones")
    ap.add_argument("--force", action="store_true", help="replace an import made with other parameters")
    add_log_arguments(ap)
    a = ap.parse_args(argv)
    setup_logging(a)
    if a.preset:
        if a.src is None:
            ap.error("--preset needs --src")
        clips, emotions, problems = scan_preset(a.preset, a.src)
        source = {"preset": a.preset, "src": str(a.src.resolve())}
    else:
        clips, emotions, problems = scan_csv(a.csv, a.src)
        source = {"csv": str(a.csv.resolve())}
    bad = probe_audio(clips)
    clips = [c for c in clips if c.duration > 0]
    _report(problems + bad, a.skip_bad)
    if not clips:
        raise CorpusError("no clip left to import")
    rec = import_corpus(a.out, clips, emotions, source, a.seed, a.test_speakers, a.val_speakers, a.jobs, a.force)
    print(f"imported {rec['n_clips']} clips ({rec['n_written_files']} files written) into {a.out} "
          f"in {rec['seconds']:.1f} s: " + ", ".join(f"{k} {v}" for k, v in rec["splits"].items()))
    if isinstance(rec["speakers"], dict):
        print("  speakers: " + "; ".join(f"{k} {' '.join(v)}" for k, v in rec["speakers"].items()))
        from competition.data.subjects import from_column, write_subjects
        from competition.core.paths import Workdir
        ds = load_dataset(a.out, check_media=False)
        path = Workdir.of(a.workdir, a.out).subjects
        write_subjects(path, from_column(ds, SUBJECT_COL), f"column:{SUBJECT_COL}", ds)
        print(f"  wrote {path} (speakers as subjects)")
    else:
        print("  no speakers in the source: no subjects file written")


if __name__ == "__main__":
    raise SystemExit(main())
