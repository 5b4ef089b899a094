"""Reading a labelled corpus for the importer (preset, CSV or folder scan): clips, labels and people, every
problem collected with its file (docs/IMPORT.md, "Naming the clips")."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from competition.data.contract import DataError, is_plain_token
from competition.data.import_media import IMAGE_SUFFIXES, kind_of, read_image, video_duration


class CorpusError(DataError):
    """The source corpus cannot be imported; the message lists every problem with its file."""


@dataclass(frozen=True)
class Preset:
    """A known corpus layout: a --pattern and --emotions codes."""
    pattern: str
    emotions: dict[str, str]  # code in the file name -> emotion column


PRESETS: dict[str, Preset] = {  # EmoDB: 03a01Fa.wav = speaker 03, text a01, emotion F (happiness), version a
    "emodb": Preset(r"(?:^|/)(?P<person>\d\d)[a-z]\d\d(?P<label>[WLEAFTN])[a-z]$",
                    {"W": "Anger", "L": "Boredom", "E": "Disgust", "A": "Fear", "F": "Happiness", "T": "Sadness",
                     "N": "Neutral"}),
}
PERSON_COLUMNS = ("person", "speaker", "subject")


@dataclass
class SourceClip:
    path: Path                                # a media file, or the folder / first image of a frame sequence
    person: str | None
    label: str | None = None                  # categorical corpora
    values: dict[str, float] | None = None    # per-emotion intensities in [0, 1]
    frames: list[Path] | None = None          # a frame sequence, in order
    name: str = ""                            # File_ID stem (default: the file name)
    origin: str = ""                          # where it is named (CSV line, file), for messages
    kind: str = ""                            # audio | image | frames | video (set by probe)
    duration: float = 0.0                     # seconds (audio and video, set by probe)


@dataclass
class Labels:
    """The emotion columns and how source labels map to them: `codes` maps a label as written in the
    source to its column (--emotions CODE=Name); `scale` is the (low, high) of numeric ratings."""
    emotions: list[str] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)
    scale: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def parse(cls, emotions: str | None, scale: str | None) -> "Labels":
        out = cls()
        for item in [s.strip() for s in (emotions or "").split(",") if s.strip()]:
            code, _, name = item.partition("=")
            out.codes[code.strip()] = (name or code).strip()
        out.emotions = list(dict.fromkeys(out.codes.values()))
        if scale:
            try:
                lo, hi = (float(v) for v in scale.split(","))
            except ValueError:
                raise CorpusError(f"--scale {scale!r}: expected LOW,HIGH (e.g. 1,5)") from None
            if not hi > lo:
                raise CorpusError(f"--scale {scale!r}: HIGH must be above LOW")
            out.scale = (lo, hi)
        return out

    def category(self, label: str) -> str | None:
        """Column of a categorical label; None when --emotions names the labels and this is not one."""
        return self.codes.get(label) if self.codes else label

    def value(self, raw: str) -> float | None:
        """A rating on the stated scale as [0, 1]; None if not a number in the scale."""
        v = pd.to_numeric(raw, errors="coerce")
        lo, hi = self.scale
        return None if pd.isna(v) or not lo <= float(v) <= hi else (float(v) - lo) / (hi - lo)


def _categorical(clips: list[SourceClip], labels: Labels, problems: list[str]) -> tuple[list[SourceClip], list[str]]:
    """Map the clips' labels to columns; a label --emotions does not name is a problem."""
    keep = []
    for c in clips:
        col = labels.category(c.label)
        if col is None:
            problems.append(f"{c.origin}: unknown label {c.label!r} (--emotions names {sorted(labels.codes)})")
            continue
        c.label = col
        keep.append(c)
    return keep, labels.emotions or sorted({c.label for c in keep})


def scan_csv(csv: Path, src: Path | None = None, labels: Labels | None = None
             ) -> tuple[list[SourceClip], list[str], list[str]]:
    """(clips, emotion columns, problems) of a CSV `path,label[,person]` or `path,<emotions...>[,person]`.
    With --emotions, a label CSV must use those labels and a column CSV reads only those columns."""
    labels = labels or Labels()
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
                          "path,label[,person] or path,<one column per emotion>[,person]")
    path_col, label_col = lower["path"], lower.get("label")
    person_col = next((lower[c] for c in PERSON_COLUMNS if c in lower), None)
    emotion_cols = [c for c in df.columns if c not in {path_col, person_col, label_col}]
    if label_col is None and labels.emotions:
        missing = [e for e in labels.emotions if e not in df.columns]
        if missing:
            raise CorpusError(f"{csv}: --emotions names column(s) {missing} that the CSV lacks")
        emotion_cols = labels.emotions
    elif label_col is not None and emotion_cols:
        raise CorpusError(f"{csv}: has both a 'label' column and other columns {emotion_cols}; use either "
                          "path,label[,person] or path,<one column per emotion>[,person]")
    if label_col is None and not emotion_cols:
        raise CorpusError(f"{csv}: missing column 'label' (or one column per emotion) beside 'path'")
    base = src or csv.parent
    clips, problems = [], []
    lo, hi = labels.scale
    for i, row in df.iterrows():
        at = f"{csv}:{int(i) + 2}"
        path = Path(row[path_col].strip())
        path = path if path.is_absolute() else base / path
        person = row[person_col].strip() if person_col else None
        if person_col and not person:
            problems.append(f"{at}: empty {person_col}")
            continue
        if label_col is not None:
            if not row[label_col].strip():
                problems.append(f"{at}: empty label")
                continue
            clips.append(SourceClip(path, person, label=row[label_col].strip(), origin=at))
            continue
        values = {c: labels.value(row[c]) for c in emotion_cols}
        bad = [f"{c}={row[c]!r}" for c, v in values.items() if v is None]
        if bad:
            problems.append(f"{at}: emotion value(s) not numbers in [{lo:g}, {hi:g}]: {', '.join(bad)}")
            continue
        clips.append(SourceClip(path, person, values=values))
    if label_col is None:
        return clips, emotion_cols, problems
    clips, emotions = _categorical(clips, labels, problems)
    return clips, emotions, problems


def natural_key(path: Path) -> list:
    """frame2 before frame10: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def scan_folder(src: Path, pattern: str | None = None, sequences: bool = False, labels: Labels | None = None,
                person_folder: bool = False) -> tuple[list[SourceClip], list[str], list[str]]:
    """(clips, emotion columns, problems) of every media file below `src` (docs/IMPORT.md, "Naming the clips")."""
    labels = labels or Labels()
    if not src.is_dir():
        raise CorpusError(f"{src}: source folder not found")
    try:
        rx = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise CorpusError(f"--pattern {pattern!r}: not a regular expression ({exc})") from None
    groups = set(rx.groupindex) if rx else set()
    files = sorted(p for p in src.rglob("*")  # hidden files (macOS ._* copies, .DS_Store) are not clips
                   if p.is_file() and kind_of(p) and not any(part.startswith(".") for part in p.relative_to(src).parts))
    items: dict[str, list[tuple[Path, re.Match | None]]] = {}  # clip key -> its file(s)
    problems: list[str] = []
    for p in files:
        rel = p.relative_to(src).with_suffix("").as_posix()
        m = rx.search(rel) if rx else None
        if rx and m is None:
            problems.append(f"{p}: path {rel!r} does not match --pattern {pattern!r}")
            continue
        is_frame = p.suffix.lower() in IMAGE_SUFFIXES and (sequences or "clip" in groups)
        key = (m["clip"] if "clip" in groups else p.parent.relative_to(src).as_posix()) if is_frame else rel
        items.setdefault(key, []).append((p, m))
    if not items and not problems:
        raise CorpusError(f"{src}: no audio, image or video files found below it")
    person_group = next((g for g in ("person", "speaker") if g in groups), None)

    def said(m: re.Match | None) -> tuple[str | None, str | None]:  # (label, person) a match names
        return (m["label"] if m and "label" in groups else None, m[person_group] if m and person_group else None)

    clips = []
    for key, found in items.items():
        first, m = found[0]
        seq = first.suffix.lower() in IMAGE_SUFFIXES and (sequences or "clip" in groups)
        label, person = said(m)
        holder = (first.parent.parent if seq and "clip" not in groups else first.parent).name
        label, person = label if label is not None else holder, holder if person_folder else person
        if len({said(mm) for _, mm in found}) > 1:
            problems.append(f"{first.parent}: the frames of clip {key!r} disagree on label or person: "
                            f"{sorted(map(str, {said(mm) for _, mm in found}))}")
            continue
        frames = sorted((p for p, _ in found), key=natural_key) if seq else None
        clips.append(SourceClip(first, person, label=label, frames=frames, name=key.rsplit("/", 1)[-1] if seq else "",
                                origin=str(first.parent if seq else first)))
    clips, emotions = _categorical(clips, labels, problems)
    return clips, emotions, problems


def probe(clips: list[SourceClip]) -> list[str]:
    """Fill in each clip's kind and duration; return the problems (missing, unreadable or empty media)."""
    import soundfile as sf

    problems = []
    for c in clips:
        if c.frames is None and c.path.is_dir():
            c.frames = sorted((p for p in c.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
        kind, c.kind = "frames" if c.frames is not None else kind_of(c.path) or "", ""  # "" until found good
        try:
            if kind == "frames" and not c.frames:
                raise ValueError(f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            if kind != "frames" and not c.path.exists():
                raise ValueError("file not found")
            if not kind:
                raise ValueError("not a known audio, image or video file type")
            if kind == "audio":
                info = sf.info(str(c.path))
                if info.frames == 0:
                    raise ValueError("audio has no samples")
                c.duration = info.frames / info.samplerate
            elif kind == "video":
                c.duration = video_duration(c.path)
            else:
                for p in c.frames or [c.path]:
                    try:
                        read_image(p)
                    except ValueError as exc:
                        raise ValueError(f"{p}: {exc}") from None
            c.kind = kind
        except ValueError as exc:
            problems.append(str(exc) if str(exc).startswith(str(c.path)) else f"{c.path}: {exc}")
        except Exception as exc:  # soundfile raises its own error types for every unreadable file
            problems.append(f"{c.path}: unreadable {kind} ({exc})")
    return problems


def clip_ids(clips: list[SourceClip]) -> list[str]:
    """Clip names -> unique File_IDs: the name (default: the file stem) with anything but letters,
    digits, _ and - as '_'; repeated names get -2, -3, ... in source order."""
    seen: dict[str, int] = {}
    ids = []
    for c in clips:
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", c.name or c.path.stem) or "clip"
        seen[stem] = seen.get(stem, 0) + 1
        ids.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    assert all(is_plain_token(i) for i in ids)
    return ids
