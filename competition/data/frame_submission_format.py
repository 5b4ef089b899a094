"""Official-format Test submissions of the Aff-Wild2 tracks (VA and EXPR): writer and checker. The format
and its sources: docs/AFFWILD2.md, "Submission files (VA and EXPR)". Inside the toolkit a frame is
`<name>/<k:05d>` (data/affwild2.py); its id in the file is `<name>/<k:05d>.jpg`."""
from __future__ import annotations

import io
import math
import re
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from competition.data.affwild2 import (
    EXPR_CLASSES, VA_TARGETS, check_frame_number, check_name, frame_id, is_canonical_frame, parse_frame_id,
)
from competition.core.io import write_text, write_zip_beside

TASKS: tuple[str, ...] = ("va", "expr")
ID_COL = "image_location"
HEADER: dict[str, tuple[str, ...]] = {"va": (ID_COL, *VA_TARGETS), "expr": (ID_COL, *EXPR_CLASSES)}
FIELDS: dict[str, int] = {"va": 3, "expr": 2}   # fields per data row (EXPR rows hold one class index)
FLOAT_DECIMALS = 6
ZIP_MEMBER_SUFFIXES = (".txt", ".csv")
_EXAMPLES = 3                                   # example lines quoted per problem

_LOCATION = re.compile(r"(?P<name>[A-Za-z0-9_-]+)/(?P<k>[0-9]{5,})\.jpg")
_INT = re.compile(r"[+-]?[0-9]+")


# ---------------------------------------------------------------- frame ids

def image_location(name: str, k: int) -> str:
    """The submission's id of frame k of `name`: `<name>/<k:05d>.jpg` (its cropped_aligned image)."""
    return frame_id(name, k) + ".jpg"


def parse_image_location(loc: str) -> tuple[str, int]:
    """(name, k) of an `image_location` `<name>/<k:05d>.jpg`; ValueError otherwise."""
    m = _LOCATION.fullmatch(loc) if isinstance(loc, str) else None
    if m is None or not is_canonical_frame(m["k"], int(m["k"])):
        raise ValueError(f"{loc!r} is not an image_location <name>/<k:05d>.jpg")
    return m["name"], int(m["k"])


# ---------------------------------------------------------------- writer

def _task(task: str) -> str:
    t = str(task).lower()
    if t not in TASKS:
        raise ValueError(f"task {task!r} is not one of {TASKS}")
    return t


def _columns(task: str, targets: list[str], n_cols: int) -> list[int]:
    """Column of `pred` holding each official value (VA: valence, arousal; EXPR: the 8 classes in order)."""
    targets = list(targets)
    if len(targets) != n_cols:
        raise ValueError(f"{len(targets)} targets for {n_cols} prediction columns")
    if len(set(targets)) != len(targets):
        raise ValueError(f"duplicate targets {targets}")
    want = VA_TARGETS if task == "va" else EXPR_CLASSES
    missing = [t for t in want if t not in targets]
    extra = [t for t in targets if t not in want]
    if missing or extra:
        raise ValueError(f"{task} targets must be {list(want)} (any order); missing {missing}, unknown {extra}")
    return [targets.index(t) for t in want]


def submission_text(task: str, frame_ids: list[str], pred: np.ndarray, targets: list[str]) -> str:
    """The official file's text for per-frame predictions (rows keyed by toolkit frame ids)."""
    task = _task(task)
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[0] != len(frame_ids):
        raise ValueError(f"predictions {pred.shape} do not match {len(frame_ids)} frames x {len(targets)} targets")
    cols = _columns(task, targets, pred.shape[1])
    if not np.isfinite(pred).all():
        raise ValueError("predictions contain NaN or inf")
    frame_ids = [str(f) for f in frame_ids]
    keys = [parse_frame_id(f) for f in frame_ids]
    seen: set[tuple[str, int]] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"duplicate frame id {frame_id(*key)!r}")
        seen.add(key)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    pred = pred[:, cols]
    lines = [",".join(HEADER[task])]
    if task == "va":
        vals = np.clip(pred, -1.0, 1.0) + 0.0   # + 0.0 turns -0.0 into 0.0
        fmt = f"%s.jpg,%.{FLOAT_DECIMALS}f,%.{FLOAT_DECIMALS}f"   # frame ids are canonical: id + .jpg
        lines += [fmt % (frame_ids[i], vals[i, 0], vals[i, 1]) for i in order]
    else:
        cls = pred.argmax(axis=1).tolist()
        lines += [f"{frame_ids[i]}.jpg,{cls[i]}" for i in order]
    return "\n".join(lines) + "\n"


def write_frame_submission(path: Path, task: str, frame_ids: list[str], pred: np.ndarray,
                           targets: list[str]) -> Path:
    """Write the official VA or EXPR Test file at `path` (e.g. `.../predictions.txt`) and a .zip holding only
    it; returns `path`. `pred`: one row per frame id `<name>/<k:05d>`, one column per target (any order).
    Format: docs/AFFWILD2.md, "Submission files (VA and EXPR)"."""
    path = Path(path)
    if path.suffix.lower() == ".zip":
        raise ValueError(f"{path}: give the text file's path (the .zip is written beside it)")
    text = submission_text(task, frame_ids, pred, targets)
    write_text(path, text)
    write_zip_beside(path)
    return path


# ---------------------------------------------------------------- checker

def _read(path: Path) -> tuple[str | None, str, list[str]]:
    """(text, label naming the file in problems, problems) of a submission file or of the one file in its zip."""
    if path.is_dir():
        return None, str(path), [f"{path}: is a folder; the VA/EXPR submission is one text file (or a zip of it)"]
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                members = [n for n in zf.namelist() if not n.endswith("/")]
                if len(members) != 1 or not members[0].lower().endswith(ZIP_MEMBER_SUFFIXES):
                    return None, str(path), [f"{path}: a submission zip must hold exactly one .txt/.csv file, "
                                             f"holds {members}"]
                label = f"{path}:{members[0]}"
                data = zf.read(members[0])
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as exc:
            return None, str(path), [f"{path}: not a readable zip ({exc})"]
    else:
        label = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            return None, label, [f"{path}: unreadable ({exc})"]
    try:
        return data.decode("utf-8"), label, []
    except UnicodeDecodeError as exc:
        return None, label, [f"{label}: not UTF-8 text ({exc})"]


class _Issues:
    """Problems of one kind are reported once, with their count and the first few lines."""

    def __init__(self) -> None:
        self.lines: dict[str, list[int]] = defaultdict(list)
        self.quotes: dict[str, list[str]] = defaultdict(list)

    def add(self, kind: str, line_no: int, text: str) -> None:
        self.lines[kind].append(line_no)
        if len(self.quotes[kind]) < _EXAMPLES:
            self.quotes[kind].append(f"line {line_no}: {text[:80]!r}")

    def report(self, label: str) -> list[str]:
        return [f"{label}: {len(nums)} line(s) with {kind}, e.g. " + "; ".join(self.quotes[kind])
                for kind, nums in self.lines.items()]


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (", ..." if len(items) > _EXAMPLES else "")


def check_frame_submission(path: Path, task: str, expected: dict[str, int]) -> list[str]:
    """Every problem of a VA or EXPR submission (the text file, or a .zip holding only it), each naming the
    file and lines; empty = valid. `expected`: Test annotation name -> frames 1..n the file must hold."""
    task, path = _task(task), Path(path)
    want = {}
    for name, count in expected.items():
        try:
            want[check_name(name)] = check_frame_number(count)
        except ValueError as exc:
            raise ValueError(f"expected frames of {name!r}: {exc}") from None
    if not path.exists():
        return [f"{path}: file not found"]
    text, label, problems = _read(path)
    if text is None:
        return problems
    if text.startswith("\ufeff"):
        problems.append(f"{label}: starts with a UTF-8 byte-order mark")
        text = text[1:]
    lines = text.splitlines()
    if not lines:
        return problems + [f"{label}: empty file (no header, no rows)"]
    header = [c.strip() for c in lines[0].split(",")]
    if header != list(HEADER[task]):
        problems.append(f"{label}: line 1: header {lines[0][:120]!r} != official {','.join(HEADER[task])!r}")

    issues = _Issues()
    seen: dict[tuple[str, int], int] = {}
    dups: list[str] = []
    frames: dict[str, set[int]] = defaultdict(set)
    n_fields = FIELDS[task]
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            issues.add("a blank line", line_no, line)
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != n_fields:
            issues.add(f"{len(cells)} field(s) instead of {n_fields}", line_no, line)
            continue
        try:
            key = parse_image_location(cells[0])
        except ValueError:
            issues.add("an id that is not <name>/<k:05d>.jpg", line_no, line)
            key = None
        if key is not None:
            if key in seen:
                dups.append(f"{image_location(*key)} (lines {seen[key]} and {line_no})")
            else:
                seen[key] = line_no
                frames[key[0]].add(key[1])
        if task == "va":
            for cell in cells[1:]:
                try:
                    v = float(cell)
                except ValueError:
                    issues.add("a non-numeric value", line_no, line)
                    break
                if math.isnan(v) or math.isinf(v):
                    issues.add("a NaN/inf value", line_no, line)
                    break
                if not -1.0 <= v <= 1.0:
                    issues.add("a value outside [-1, 1]", line_no, line)
                    break
        else:
            cell = cells[1]
            if not _INT.fullmatch(cell):
                issues.add("a class that is not an integer 0..7", line_no, line)
            elif not 0 <= int(cell) < len(EXPR_CLASSES):
                issues.add(f"a class outside 0..{len(EXPR_CLASSES) - 1}", line_no, line)
    problems += issues.report(label)
    if len(lines) == 1:
        problems.append(f"{label}: no rows after the header")
    if dups:
        problems.append(f"{label}: {len(dups)} duplicate frame(s), e.g. {_examples(dups)}")

    extra_videos = sorted(set(frames) - set(want))
    missing_videos = sorted(set(want) - set(frames))
    if extra_videos:
        problems.append(f"{label}: {len(extra_videos)} extra video(s) not in the Test set, "
                        f"e.g. {_examples(extra_videos)}")
    if missing_videos:
        problems.append(f"{label}: {len(missing_videos)} Test video(s) missing, e.g. {_examples(missing_videos)}")
    missing_frames: list[str] = []
    extra_frames: list[str] = []
    n_missing = n_extra = 0
    for name in sorted(set(frames) & set(want)):
        got, n = frames[name], want[name]
        extra = sorted(k for k in got if k > n)
        n_extra += len(extra)
        extra_frames += [image_location(name, k) for k in extra[:_EXAMPLES]]
        if len(got) - len(extra) < n:
            miss = [k for k in range(1, n + 1) if k not in got]
            n_missing += len(miss)
            missing_frames += [image_location(name, k) for k in miss[:_EXAMPLES]]
    if n_missing:
        problems.append(f"{label}: {n_missing} frame(s) of Test videos missing, e.g. {_examples(missing_frames)}")
    if n_extra:
        problems.append(f"{label}: {n_extra} extra frame(s) beyond their Test video's last frame, "
                        f"e.g. {_examples(extra_frames)}")
    return problems


def expected_frames_from_example(path: Path) -> dict[str, int]:
    """{name: number of frames} from the organisers' Test example file (e.g.
    `CVPR_6th_ABAW_VA_test_set_example.txt`: header, then one `<name>/<k:05d>.jpg,...` row per Test frame).
    ValueError if a video's frames are not exactly 1..n."""
    path = Path(path)
    frames: dict[str, list[int]] = defaultdict(list)
    with io.open(path, encoding="utf-8-sig") as fh:
        next(fh, None)
        for line_no, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            try:
                name, k = parse_image_location(line.split(",", 1)[0].strip())
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: {exc}") from None
            frames[name].append(k)
    out = {}
    for name, ks in frames.items():
        if sorted(ks) != list(range(1, len(ks) + 1)):
            raise ValueError(f"{path}: frames of {name} are not exactly 1..{len(ks)}")
        out[name] = len(ks)
    return out
