"""The official ERI submission (`File_ID,<targets...>`, one row per Test clip, bracketed sorted ids, values
in [0, 1]): writer and checker; the command is `competition.submission`."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from competition.data.contract import ID_COL, Dataset, bracket_id, normalise_id
from competition.core.io import write_csv, write_zip_beside

FLOAT_FORMAT = "%.6f"


def submission_frame(ids: list[str], pred: np.ndarray, targets: list[str]) -> pd.DataFrame:
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape != (len(ids), len(targets)):
        raise ValueError(f"predictions {pred.shape} do not match {len(ids)} clips x {len(targets)} targets")
    if not np.isfinite(pred).all():
        raise ValueError("predictions contain NaN or inf")
    df = pd.DataFrame(np.clip(pred, 0.0, 1.0), columns=targets)
    df.insert(0, ID_COL, [bracket_id(i) for i in ids])
    return df.sort_values(ID_COL, kind="stable").reset_index(drop=True)


def write_submission(path: Path, ids: list[str], pred: np.ndarray, targets: list[str],
                     zip_it: bool = True) -> Path:
    """Write the CSV (and a zip holding only it); returns the CSV path."""
    path = Path(path)
    write_csv(path, submission_frame(ids, pred, targets), float_format=FLOAT_FORMAT)
    if zip_it:
        write_zip_beside(path)
    return path


def _read_zipped_csv(path: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """The one CSV inside a submission zip; the zip must hold exactly that file."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if len(names) != 1 or not names[0].endswith(".csv"):
                return None, [f"{path}: a submission zip must hold exactly one .csv file, holds {names}"]
            with zf.open(names[0]) as fh:
                return pd.read_csv(fh, dtype={ID_COL: str}, keep_default_na=True), []
    except zipfile.BadZipFile as exc:
        return None, [f"{path}: not a readable zip ({exc})"]
    except Exception as exc:
        return None, [f"{path}: not a readable CSV inside the zip ({exc})"]


def check_submission(path: Path, ds: Dataset) -> list[str]:
    """Every problem of a submission file (.csv, or a .zip holding only it), each naming the file;
    empty list = valid."""
    path = Path(path)
    if not path.exists():
        return [f"{path}: file not found"]
    if path.suffix == ".zip":
        df, problems = _read_zipped_csv(path)
        if df is None:
            return problems
    else:
        try:
            df = pd.read_csv(path, dtype={ID_COL: str}, keep_default_na=True)
        except Exception as exc:
            return [f"{path}: not a readable CSV ({exc})"]
    problems = []
    header = [ID_COL, *ds.emotions]
    if list(df.columns) != header:
        problems.append(f"{path}: header {list(df.columns)} != official {header}")
    if ID_COL not in df.columns:
        return problems
    raw = df[ID_COL].astype(str)
    unbracketed = raw[~raw.str.fullmatch(r"\[[^\[\]]+\]")]
    if len(unbracketed):
        problems.append(f"{path}: {len(unbracketed)} id(s) not bracketed, e.g. {unbracketed.iloc[0]!r}")
    ids = raw.map(normalise_id)
    dups = ids[ids.duplicated()]
    if len(dups):
        problems.append(f"{path}: {len(dups)} duplicate id(s), e.g. {dups.iloc[0]!r}")
    want = set(ds.test_ids)
    missing, extra = want - set(ids), set(ids) - want
    if missing:
        problems.append(f"{path}: {len(missing)} Test clip(s) missing, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{path}: {len(extra)} id(s) not in the Test split, e.g. {sorted(extra)[:3]}")
    cols = [c for c in ds.emotions if c in df.columns]
    vals = df[cols].apply(pd.to_numeric, errors="coerce")
    nan_rows = vals.isna().any(axis=1)
    if nan_rows.any():
        problems.append(f"{path}: {int(nan_rows.sum())} row(s) with empty/NaN/non-numeric values, "
                        f"e.g. line {int(np.flatnonzero(nan_rows)[0]) + 2}")
    out = ((vals < 0) | (vals > 1)).any(axis=1)
    if out.any():
        problems.append(f"{path}: {int(out.sum())} row(s) with values outside [0, 1], "
                        f"e.g. line {int(np.flatnonzero(out)[0]) + 2}")
    if not problems and list(ids) != sorted(ids):
        problems.append(f"{path}: rows are not sorted by File_ID")
    return problems
