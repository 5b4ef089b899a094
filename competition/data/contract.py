"""The Hume-Reaction data contract, the one place that knows a dataset's layout: data_info.csv (bracketed
File_IDs; emotion columns = whatever is not metadata) and {train,val,test}/{mp4,wav}/<id>."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from competition.core.log import UserError

HUME_EMOTIONS: tuple[str, ...] = (
    "Adoration", "Amusement", "Anxiety", "Disgust", "Empathic-Pain", "Fear", "Surprise",
)
ID_COL = "File_ID"
SPLIT_COL = "Split"
# Optional columns that are not emotions. `Subject` (who is in the clip) is not in Hume-Reaction's file;
# other corpora carry it, and competition.data.subjects turns it into the subjects file.
SUBJECT_COL = "Subject"
META_COLS: tuple[str, ...] = ("Age", "Country", SUBJECT_COL)
SPLITS: tuple[str, ...] = ("Train", "Val", "Test")
LABELLED_SPLITS: tuple[str, ...] = ("Train", "Val")
MEDIA_KINDS: dict[str, str] = {"mp4": ".mp4", "wav": ".wav"}
DATA_INFO = "data_info.csv"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class DataError(UserError, ValueError):
    """A dataset that breaks the contract; the message lists every problem with file and row."""


def normalise_id(raw: object) -> str:
    """'[00042]', ' 00042 ', 42 -> '00042'-style bare token (numbers keep their written digits)."""
    s = str(raw).strip()
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1].strip()
    return s


def bracket_id(clip_id: object) -> str:
    """Bare or bracketed id -> the bracketed form written in data_info.csv and submissions."""
    return f"[{normalise_id(clip_id)}]"


def is_plain_token(clip_id: str) -> bool:
    """True for ids that are safe as file names: letters, digits, '_' and '-' only (no paths)."""
    return bool(_TOKEN.match(clip_id)) and clip_id not in {".", ".."}


def split_dir(split: str) -> str:
    return split.lower()


def media_path(root: Path | str, split: str, clip_id: str, kind: str) -> Path:
    """Path of one clip's media file, e.g. media_path(root, 'Train', '00042', 'wav')."""
    if kind not in MEDIA_KINDS:
        raise ValueError(f"unknown media kind {kind!r}; expected one of {sorted(MEDIA_KINDS)}")
    return Path(root) / split_dir(split) / kind / f"{normalise_id(clip_id)}{MEDIA_KINDS[kind]}"


def emotions_of(columns: list[str] | pd.Index) -> list[str]:
    """Emotion columns of a data_info table: every column that is not id, split or metadata."""
    skip = {ID_COL, SPLIT_COL, *META_COLS}
    return [str(c) for c in columns if str(c) not in skip]


class SplitSamples:
    """Sample ids by split and their labels, read from `samples` (indexed by sample id, with a Split
    column and one column per name in `targets`); shared by clip datasets and frame datasets."""

    samples: pd.DataFrame
    targets: list[str]

    @property
    def ids(self) -> list[str]:
        return list(self.samples.index)

    def ids_in(self, *splits: str) -> list[str]:
        return list(self.samples.index[self.samples[SPLIT_COL].isin(splits)])

    @property
    def labelled_ids(self) -> list[str]:
        return self.ids_in(*LABELLED_SPLITS)

    @property
    def test_ids(self) -> list[str]:
        return self.ids_in("Test")

    def labels(self, ids: list[str] | None = None) -> np.ndarray:
        ids = self.labelled_ids if ids is None else ids
        return self.samples.loc[ids, self.targets].to_numpy(np.float64)


@dataclass
class Dataset(SplitSamples):
    """A validated data_info.csv. `table` is indexed by bare id, in file order."""

    root: Path
    table: pd.DataFrame
    emotions: list[str]
    fingerprint: str
    warnings: list[str] = field(default_factory=list)

    @property
    def samples(self) -> pd.DataFrame:
        return self.table

    @cached_property
    def _splits(self) -> dict[str, str]:  # split_of runs per clip and per media file: no pandas lookup each time
        return {str(k): str(v) for k, v in self.table[SPLIT_COL].items()}

    def split_of(self, clip_id: str) -> str:
        return self._splits[normalise_id(clip_id)]

    def media(self, clip_id: str, kind: str) -> Path:
        return media_path(self.root, self.split_of(clip_id), clip_id, kind)

    # A clip task's samples are its clips; frame tasks (data/affwild2.py) have frames within units.
    @property
    def targets(self) -> list[str]:  # type: ignore[override]
        return self.emotions

    @property
    def units(self) -> "Dataset":
        return self

    def unit_of(self, ids: list[str]) -> list[str]:
        return list(ids)

    def aligned_frames(self, clip_id: str) -> tuple[Path | None, float | None]:
        """(folder of aligned face crops, their frame rate); Hume-Reaction has none."""
        return None, None


def _fingerprint(table: pd.DataFrame, emotions: list[str]) -> str:
    """Identifies a dataset by its ids, splits and labels (not by where it lies on disk)."""
    h = hashlib.sha256()
    h.update(",".join(emotions).encode())
    cols = [SPLIT_COL, *emotions]
    h.update(table[cols].to_csv(float_format="%.6g").encode())
    return h.hexdigest()[:16]


def read_data_info(path: Path | str) -> pd.DataFrame:
    """Read data_info.csv tolerantly (BOM, CRLF, spaces around names and values)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found (expected the Hume-Reaction data_info.csv)")
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False,
                         skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    return df.apply(lambda col: col.str.strip())


def load_dataset(root: Path | str, emotions: list[str] | None = None,
                 check_media: bool = True) -> Dataset:
    """Load and validate `<root>/data_info.csv`; raise DataError listing every problem at once. `emotions`
    pins the emotion columns (default: the file's); `check_media` wants every clip's mp4 and wav on disk."""
    root = Path(root)
    path = root / DATA_INFO
    df = read_data_info(path)
    problems: list[str] = []
    warnings: list[str] = []

    for col in (ID_COL, SPLIT_COL):
        if col not in df.columns:
            problems.append(f"{path}: missing column {col!r}")
    found = emotions_of(df.columns)
    if emotions is not None:
        missing = [e for e in emotions if e not in found]
        extra = [c for c in found if c not in emotions]
        if missing:
            problems.append(f"{path}: missing emotion column(s) {missing}")
        if extra:
            problems.append(f"{path}: unexpected column(s) {extra}")
        found = [e for e in emotions if e in df.columns]
    if not found:
        problems.append(f"{path}: no emotion columns (expected e.g. {list(HUME_EMOTIONS)})")
    dup_cols = df.columns[df.columns.duplicated()].tolist()
    if dup_cols:
        problems.append(f"{path}: duplicated column(s) {dup_cols}")
    if problems:
        raise DataError("\n".join(problems))

    def where(i: int) -> str:
        return f"{path}:{i + 2}"  # header is line 1

    ids = df[ID_COL].map(normalise_id)
    for i, (raw, cid) in enumerate(zip(df[ID_COL], ids)):
        if not is_plain_token(cid):
            problems.append(f"{where(i)}: File_ID {raw!r} is not a plain token (letters, digits, _ -)")
    for cid, rows in ids[ids.duplicated(keep=False)].groupby(ids).groups.items():
        lines = ", ".join(str(r + 2) for r in rows)
        problems.append(f"{path}: duplicate File_ID {cid!r} on lines {lines}")
    bad_split = ~df[SPLIT_COL].isin(SPLITS)
    for i in np.flatnonzero(bad_split.to_numpy()):
        problems.append(f"{where(i)}: Split {df[SPLIT_COL].iat[i]!r} is not one of {list(SPLITS)}")

    values = df[found].replace("", np.nan)
    numeric = values.apply(pd.to_numeric, errors="coerce")
    labelled = df[SPLIT_COL].isin(LABELLED_SPLITS).to_numpy()
    for i in np.flatnonzero(labelled):
        for emo in found:
            raw, num = values[emo].iat[i], numeric[emo].iat[i]
            if pd.isna(raw):
                problems.append(f"{where(i)}: {emo} is empty in a {df[SPLIT_COL].iat[i]} row")
            elif pd.isna(num):
                problems.append(f"{where(i)}: {emo} value {raw!r} is not a number")
            elif not 0.0 <= num <= 1.0:
                problems.append(f"{where(i)}: {emo} value {num} is outside [0, 1]")
    test_rows = (df[SPLIT_COL] == "Test").to_numpy()
    for i in np.flatnonzero(test_rows):
        present = [e for e in found if not pd.isna(values[e].iat[i])]
        if present:
            problems.append(f"{where(i)}: Test row has labels in {present} (Test labels must be empty)")
    if labelled.any():
        for emo in found:
            col = numeric[emo][labelled]
            if col.notna().all() and col.nunique() == 1:
                warnings.append(f"{path}: {emo} has the same value ({col.iat[0]}) in every labelled row; "
                                "its PCC is undefined and is scored 0")

    if check_media and not problems:
        for i, (cid, split) in enumerate(zip(ids, df[SPLIT_COL])):
            for kind in MEDIA_KINDS:
                p = media_path(root, split, cid, kind)
                if not p.exists():
                    problems.append(f"{where(i)}: {split} clip {cid!r} is listed but {p} is missing")
    if problems:
        raise DataError(f"{len(problems)} problem(s) in {path}:\n" + "\n".join(problems))

    table = pd.DataFrame({SPLIT_COL: df[SPLIT_COL].to_numpy()}, index=pd.Index(ids, name=ID_COL))
    for emo in found:
        table[emo] = numeric[emo].to_numpy(np.float64)
    for col in META_COLS:
        if col in df.columns:
            table[col] = df[col].to_numpy()
    return Dataset(root=root, table=table, emotions=list(found),
                   fingerprint=_fingerprint(table, list(found)), warnings=warnings)
