"""The Aff-Wild2 layout reader (VA and EXPR): a `FrameDataset` of units (annotated videos) and samples
(valid frames `<name>/<k:05d>`); layout and levels in docs/AFFWILD2.md."""
from __future__ import annotations

import hashlib
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from competition.data.contract import SPLIT_COL, DataError, Dataset, SplitSamples, is_plain_token

VA_TARGETS: tuple[str, ...] = ("valence", "arousal")
EXPR_CLASSES: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise",
                                 "Other")
CHALLENGE_DIR = {"va": "VA_Estimation_Challenge", "expr": "EXPR_Recognition_Challenge"}
TEST_LIST_WORDS = {"va": ("va", "valence"), "expr": ("expr", "expression")}
SPLIT_DIRS = {"Train_Set": "Train", "Validation_Set": "Val"}
VA_INVALID, EXPR_INVALID = -5.0, -1
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov")
DEFAULT_FPS = 30.0
_SIDE = re.compile(r"_(left|right)$")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_FRAME_ID = re.compile(r"(?P<name>[A-Za-z0-9_-]+)/(?P<k>[0-9]{5,})")


def check_name(name: str) -> str:
    """`name` if it is an annotation name (letters, digits, '-', '_'); ValueError otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an annotation name (letters, digits, '-' and '_' only)")
    return name


def check_frame_number(k: int) -> int:
    if isinstance(k, bool):
        raise ValueError(f"frame number {k!r} is not an integer")
    try:
        k = operator.index(k)
    except TypeError:
        raise ValueError(f"frame number {k!r} is not an integer") from None
    if k < 1:
        raise ValueError(f"frame number {k} is not 1-based (must be >= 1)")
    return k


def frame_id(name: str, k: int) -> str:
    """The toolkit's id of frame k (1-based) of annotation `name`: `<name>/<k:05d>`."""
    return f"{check_name(name)}/{check_frame_number(k):05d}"


def parse_frame_id(fid: str) -> tuple[str, int]:
    """(name, k) of a frame id `<name>/<k:05d>`; ValueError for anything else (including non-canonical
    forms such as `name/1` or `name/000001`, so that one frame has exactly one id)."""
    m = _FRAME_ID.fullmatch(fid) if isinstance(fid, str) else None
    if m is None:
        raise ValueError(f"{fid!r} is not a frame id <name>/<k:05d> (name: letters, digits, '-', '_')")
    name, k = m["name"], int(m["k"])
    if not is_canonical_frame(m["k"], k):
        raise ValueError(f"{fid!r} is not a canonical frame id (expected {name}/{max(k, 1):05d}, k >= 1)")
    return name, k


def is_canonical_frame(digits: str, k: int) -> bool:
    """`digits` is how `{k:05d}` writes k >= 1 (5 digits, or more without leading zeros)."""
    return k >= 1 and (len(digits) == 5 or digits[0] != "0")


def video_stem(name: str) -> str:
    """`<video>_left` / `<video>_right` annotate two people of one video."""
    return _SIDE.sub("", name)


class UnitTable(Dataset):
    """The video level of a FrameDataset: a contract Dataset whose media lie wherever the layout put them."""

    paths: dict[str, dict[str, Path]]

    def media(self, clip_id: str, kind: str) -> Path:
        return self.paths[clip_id][kind]

    def aligned_frames(self, clip_id: str) -> tuple[Path | None, float | None]:
        folder = self.paths[clip_id]["aligned"]
        return (folder if folder.is_dir() else None), float(self.table.at[clip_id, "fps"])


@dataclass
class FrameDataset(SplitSamples):
    root: Path
    task: str
    targets: list[str]
    units: UnitTable
    frames: pd.DataFrame          # index frame id; unit, frame, t, Split, targets (NaN on Test)
    fingerprint: str
    warnings: list[str] = field(default_factory=list)

    @property
    def samples(self) -> pd.DataFrame:
        return self.frames

    @property
    def emotions(self) -> list[str]:  # older name of the target columns
        return self.targets

    def split_of(self, sample_id: str) -> str:
        return str(self.frames.at[sample_id, SPLIT_COL])

    def unit_of(self, ids: list[str]) -> list[str]:
        return list(self.frames.loc[ids, "unit"])

    def times(self, ids: list[str]) -> tuple[list[str], np.ndarray]:
        """(unit, time in seconds) of each frame."""
        rows = self.frames.loc[ids]
        return list(rows["unit"]), rows["t"].to_numpy(np.float64)

    def n_frames(self, split: str = "Test") -> dict[str, int]:
        """Frames per unit of a split (what a Test submission must cover)."""
        units = self.units.ids_in(split)
        return {u: int(self.units.table.at[u, "n_frames"]) for u in units}


# ---------------------------------------------------------------- reading the layout

def _find_test_list(root: Path, task: str) -> Path | None:
    words = TEST_LIST_WORDS[task]
    hits = [p for p in sorted(root.rglob("*.txt")) if "test_set" in p.name.lower()
            and any(w in re.split(r"[^a-z]+", p.name.lower()) for w in words)]
    return hits[0] if hits else None


def _video_timing(path: Path | None, aligned: Path | None) -> tuple[float, int]:
    """(fps, frame count) from the container, else from the aligned crops at DEFAULT_FPS."""
    if path is not None and path.exists():
        import cv2
        cap = cv2.VideoCapture(str(path))
        try:
            fps, n = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()
        if fps and fps > 0 and n > 0:
            return float(fps), n
    if aligned is not None and aligned.is_dir():
        ks = [int(p.stem) for p in aligned.glob("*.jpg") if p.stem.isdigit()]
        if ks:
            return DEFAULT_FPS, max(ks)
    return DEFAULT_FPS, 0


def read_annotation(path: Path, task: str, problems: list[str]) -> np.ndarray | None:
    """(n_frames, n_targets) labels of one annotation file, NaN on invalid frames; problems appended
    with file:line."""
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    header = [h.strip() for h in lines[0].split(",")] if lines else []
    want = list(VA_TARGETS) if task == "va" else list(EXPR_CLASSES)
    if [h.lower() for h in header] != [w.lower() for w in want]:
        problems.append(f"{path}:1: header {lines[0] if lines else '(empty file)'!r} is not {','.join(want)}")
        return None
    body = [ln for ln in lines[1:]]
    while body and not body[-1].strip():
        body.pop()
    if not body:
        problems.append(f"{path}: no frame lines after the header")
        return None
    if task == "va":
        out = np.full((len(body), 2), np.nan)
        for i, ln in enumerate(body):
            parts = ln.split(",")
            try:
                v = [float(p) for p in parts]
            except ValueError:
                v = []
            if len(v) != 2 or not np.isfinite(v).all():
                problems.append(f"{path}:{i + 2}: {ln!r} is not two numbers valence,arousal")
            elif VA_INVALID in v:
                continue
            elif not all(-1.0 <= x <= 1.0 for x in v):
                problems.append(f"{path}:{i + 2}: {ln!r} outside [-1, 1] (and not the invalid mark -5)")
            else:
                out[i] = v
        return out
    out = np.full((len(body), len(EXPR_CLASSES)), np.nan)
    for i, ln in enumerate(body):
        s = ln.strip()
        if not re.fullmatch(r"-?\d+", s):
            problems.append(f"{path}:{i + 2}: {ln!r} is not an integer class")
            continue
        c = int(s)
        if c == EXPR_INVALID:
            continue
        if not 0 <= c < len(EXPR_CLASSES):
            problems.append(f"{path}:{i + 2}: class {c} is not in 0..{len(EXPR_CLASSES) - 1} (or -1)")
            continue
        out[i] = 0.0
        out[i, c] = 1.0
    return out


def _fingerprint(task: str, frames: pd.DataFrame, targets: list[str]) -> str:
    h = hashlib.sha256(f"{task}|{','.join(targets)}".encode())
    h.update(pd.util.hash_pandas_object(frames[[SPLIT_COL, *targets]].round(6), index=True).to_numpy().tobytes())
    return h.hexdigest()[:16]


def load_frame_dataset(root: Path | str, task: str, check_media: bool = True) -> FrameDataset:
    """Read and validate the `task` ("va" | "expr") annotations of an Aff-Wild2-layout dataset; raise
    DataError listing every problem with file and line."""
    if task not in CHALLENGE_DIR:
        raise ValueError(f"unknown Aff-Wild2 task {task!r}; known: {sorted(CHALLENGE_DIR)}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found (expected the Aff-Wild2 layout, docs/AFFWILD2.md)")
    problems: list[str] = []
    challenge = next((p for p in sorted(root.rglob(CHALLENGE_DIR[task])) if p.is_dir()), None)
    if challenge is None:
        raise DataError(f"{root}: no {CHALLENGE_DIR[task]}/ folder of annotations (docs/AFFWILD2.md)")
    targets = list(VA_TARGETS) if task == "va" else list(EXPR_CLASSES)
    videos = {p.stem: p for p in sorted((root / "videos").rglob("*")) if p.suffix.lower() in VIDEO_EXTS}
    audio = {p.stem: p for p in sorted((root / "audio").rglob("*.wav"))}

    names: dict[str, str] = {}     # name -> split
    labels: dict[str, np.ndarray] = {}
    for sub, split in SPLIT_DIRS.items():
        d = challenge / sub
        if not d.is_dir():
            problems.append(f"{d}: missing (expected annotation files of the {split} split)")
            continue
        for p in sorted(d.glob("*.txt")):
            name = p.stem
            if not is_plain_token(name):
                problems.append(f"{p}: annotation name {name!r} is not a plain token (letters, digits, _ -)")
                continue
            if name in names:
                problems.append(f"{p}: {name!r} is annotated in both {names[name]} and {split}")
                continue
            y = read_annotation(p, task, problems)
            if y is not None:
                names[name], labels[name] = split, y
    test_list = _find_test_list(root, task)
    if test_list is None:
        problems.append(f"{root}: no Test list (a .txt with 'test_set' and {TEST_LIST_WORDS[task]} in its name)")
    else:
        for i, ln in enumerate(test_list.read_text(encoding="utf-8-sig").splitlines()):
            name = ln.strip().removesuffix(".txt")
            if not name:
                continue
            if not is_plain_token(name):
                problems.append(f"{test_list}:{i + 1}: Test name {name!r} is not a plain token")
            elif name in names:
                problems.append(f"{test_list}:{i + 1}: {name!r} is listed for Test but has {names[name]} labels")
            else:
                names[name] = "Test"

    rows, frame_parts, paths, warns = [], [], {}, []
    for name, split in names.items():
        stem = video_stem(name)
        video, wav = videos.get(stem), audio.get(stem)
        aligned = root / "cropped_aligned" / name
        if check_media and video is None and not aligned.is_dir():
            problems.append(f"{root / 'videos'}: no video {stem}.mp4/.avi (nor cropped_aligned/{name}/) for "
                            f"{split} name {name!r}")
        fps, n_video = _video_timing(video, aligned)
        if video is None and aligned.is_dir():
            warns.append(f"{name}: no video; frames from cropped_aligned/ at an assumed {fps:g} fps"
                         + ("" if wav is not None else ", and no audio/ wav"))
        n = len(labels[name]) if name in labels else n_video
        if split == "Test" and n == 0:
            problems.append(f"{root}: Test name {name!r} has no video or aligned frames to count its frames")
            continue
        if name in labels and n_video and abs(n_video - n) > max(2, 0.01 * n):
            warns.append(f"{name}: {n} annotated frames but the video has {n_video}")
        paths[name] = {"mp4": video if video is not None else root / "videos" / f"{stem}.mp4",
                       "wav": wav if wav is not None else root / "audio" / f"{stem}.wav", "aligned": aligned}
        k = np.arange(1, n + 1)
        part = pd.DataFrame({"unit": name, "frame": k, "t": (k - 1) / fps, SPLIT_COL: split},
                            index=[frame_id(name, i) for i in k])
        y = labels.get(name)
        for j, tgt in enumerate(targets):
            part[tgt] = y[:, j] if y is not None else np.nan
        if y is not None:
            part = part[np.isfinite(y).all(1)]
            if part.empty:
                warns.append(f"{name}: no valid frame (all marked invalid)")
        frame_parts.append(part)
        summary = np.nanmean(y, 0) if y is not None and np.isfinite(y).all(1).any() else np.zeros(len(targets))
        rows.append({"id": name, SPLIT_COL: split, **dict(zip(targets, summary)), "video": stem, "fps": fps,
                     "n_frames": n})
    if not any(s != "Test" for s in names.values()):
        problems.append(f"{challenge}: no annotated Train/Validation video")
    if problems:
        raise DataError(f"{len(problems)} problem(s) in the {task} data under {root}:\n" + "\n".join(problems))

    frames = pd.concat(frame_parts)
    frames.index.name = "frame_id"
    table = pd.DataFrame(rows).set_index("id")
    fp = _fingerprint(task, frames, targets)
    units = UnitTable(root=root, table=table, emotions=targets, fingerprint=fp, warnings=warns)
    units.paths = paths
    return FrameDataset(root=root, task=task, targets=targets, units=units, frames=frames, fingerprint=fp,
                        warnings=warns)
