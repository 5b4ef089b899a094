"""Subjects (who is in each clip) as data: one file per work directory, the one source of truth for
everything that uses subjects. Format, command, API and the `shrunk_statistics` rule: docs/SUBJECTS.md."""
from __future__ import annotations

import argparse
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from competition.data.contract import DATA_INFO, ID_COL, Dataset, bracket_id, normalise_id
from competition.core.io import read_json, write_csv, write_json
from competition.core.log import UserError, command, parse_and_log

COLUMNS = (ID_COL, "subject", "source", "confidence")
_SOURCE = re.compile(r"^(column|file|estimated):.+$")
SHRINK = 2.0       # clips: the weight of the pooled variance in a subject's (docs/SUBJECTS.md)
STD_FLOOR = 1e-6   # a (shrunk) std below this is taken as 1: a constant column is centred, not blown up


class SubjectsError(UserError, ValueError):
    """A subjects file or input that does not fit the dataset; the message names the file and the problem."""


@dataclass
class Subjects:
    path: Path
    table: pd.DataFrame   # indexed by bare id: subject, source, confidence
    sha256: str

    @property
    def groups(self) -> pd.Series:
        """subject per bare id."""
        return self.table["subject"]

    def record(self) -> dict:
        """What an artifact built from these subjects records about them (e.g. folds.json)."""
        sources = self.table["source"].value_counts()
        return {"file": str(self.path.resolve()), "sha256": self.sha256,
                "source": sources.index[0] if len(sources) == 1 else sources.to_dict(),
                "n_groups": int(self.groups.nunique()),
                "mean_confidence": round(float(self.table["confidence"].mean()), 4)}


def meta_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def _examples(ids) -> str:
    ids = sorted(ids)
    return ", ".join(map(repr, ids[:5])) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")


def _check(frame: pd.DataFrame, dataset: Dataset, where: str) -> list[str]:
    """Every problem of a subjects table (indexed by bare id) against `dataset`."""
    problems = []
    dup = frame.index[frame.index.duplicated()].unique()
    if len(dup):
        problems.append(f"{where}: {len(dup)} File_ID(s) listed more than once: {_examples(dup)}")
    ids, known = set(frame.index), set(dataset.ids)
    if known - ids:
        problems.append(f"{where}: misses {len(known - ids)} clip(s) of the dataset {dataset.root}: "
                        f"{_examples(known - ids)}")
    if ids - known:
        problems.append(f"{where}: names {len(ids - known)} clip(s) not in the dataset {dataset.root}: "
                        f"{_examples(ids - known)}")
    empty = frame.index[frame["subject"].isna() | (frame["subject"].astype(str).str.strip() == "")]
    if len(empty):
        problems.append(f"{where}: empty subject for {len(empty)} clip(s): {_examples(empty)}")
    conf = pd.to_numeric(frame["confidence"], errors="coerce")
    bad = frame.index[conf.isna() | (conf < 0) | (conf > 1)]
    if len(bad):
        problems.append(f"{where}: confidence not a number in [0, 1] for {len(bad)} clip(s): {_examples(bad)}")
    bad = frame.index[~frame["source"].astype(str).str.match(_SOURCE)]
    if len(bad):
        problems.append(f"{where}: source is not column:<name>, file:<path> or estimated:<method> for "
                        f"{len(bad)} clip(s): {_examples(bad)}")
    return problems


def write_subjects(path: Path | str, frame: pd.DataFrame, source: str, dataset: Dataset,
                   confidence: float = 1.0) -> Subjects:
    """Validate `frame` (File_ID, subject[, source][, confidence]) against `dataset` and write `path` and its
    json; raise SubjectsError listing every problem. Returns what `read_subjects` would return."""
    path = Path(path)
    if ID_COL not in frame.columns or "subject" not in frame.columns:
        raise SubjectsError(f"subjects for {path}: need columns {ID_COL!r} and 'subject', got {list(frame.columns)}")
    table = pd.DataFrame({
        "subject": frame["subject"].astype(str).str.strip().to_numpy(),
        "source": frame["source"].to_numpy() if "source" in frame.columns else source,
        "confidence": frame["confidence"].to_numpy() if "confidence" in frame.columns else confidence,
    }, index=pd.Index(frame[ID_COL].map(normalise_id), name=ID_COL))
    problems = _check(table, dataset, f"subjects for {path}")
    if problems:
        raise SubjectsError("\n".join(problems))
    table = table.loc[dataset.ids]
    table["confidence"] = pd.to_numeric(table["confidence"]).round(4)
    out = table.reset_index()
    out[ID_COL] = out[ID_COL].map(bracket_id)
    write_csv(path, out[list(COLUMNS)], float_format="%.4f")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    write_json(meta_path(path), {"dataset": dataset.fingerprint, "data_root": str(Path(dataset.root).resolve()),
                                 "n_clips": len(table), "n_subjects": int(table["subject"].nunique()),
                                 "sources": table["source"].value_counts().to_dict(), "sha256": sha})
    return Subjects(path, table, sha)


def read_subjects(path: Path | str, dataset: Dataset) -> Subjects:
    """The subjects file `path`, validated against `dataset` (SubjectsError otherwise)."""
    path = Path(path)
    if not path.exists():
        raise SubjectsError(f"{path}: subjects file not found; write it with "
                            f"`python -m competition.data.subjects --data {dataset.root} --column COL | --csv FILE`")
    meta = meta_path(path)
    if not meta.exists():
        raise SubjectsError(f"{path}: no {meta.name} beside it recording which dataset it was made for; "
                            "write subjects with `python -m competition.data.subjects` (--csv FILE takes a "
                            "hand-written File_ID,subject file)")
    m = read_json(meta)
    if m.get("dataset") != dataset.fingerprint:
        raise SubjectsError(f"{path}: made for dataset {m.get('dataset')} ({m.get('data_root')}), not for "
                            f"{dataset.root} ({dataset.fingerprint}); rewrite it for this dataset")
    df = _read_table(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SubjectsError(f"{path}: missing column(s) {missing}; expected {list(COLUMNS)}")
    table = df.set_index(df[ID_COL].map(normalise_id).rename(ID_COL))[["subject", "source", "confidence"]]
    problems = _check(table, dataset, str(path))
    if problems:
        raise SubjectsError("\n".join(problems))
    table = table.loc[dataset.ids].astype({"confidence": float})
    return Subjects(path, table, hashlib.sha256(path.read_bytes()).hexdigest())


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SubjectsError(f"{path}: not a readable CSV ({exc})") from exc


def known_subjects(path: Path | str, dataset: Dataset) -> Subjects | None:
    """The subjects of the work directory when its file exists (validated), else None. The one place that
    decides whether subjects are used: folds, subject-normalised experiments and the blend all ask here."""
    return read_subjects(path, dataset) if Path(path).exists() else None


def given_sources(path: Path | str) -> list[str]:
    """Sources of an existing subjects file that are not estimates (which a new estimate may replace)."""
    if not Path(path).exists():
        return []
    sources = _read_table(Path(path)).get("source", pd.Series(dtype=str))
    return sorted({s for s in sources if not s.startswith("estimated:")})


def shrunk_statistics(n: np.ndarray, mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per subject (S,) clip counts `n` and (S, D) means and variances -> (S, D) shrunk means and stds
    (the rule in docs/SUBJECTS.md, "One rule"). Label-free: only the statistics given are read."""
    n = np.asarray(n, np.float64)[:, None]
    mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    g_mean = (n * mean).sum(0) / n.sum()
    within = (n * var).sum(0) / n.sum()                    # pooled within-subject variance
    between = np.clip(mean.var(0) - (within / n).mean(0), 0.0, None) if len(n) > 1 else np.zeros_like(within)
    w_mean = np.divide(n * between, n * between + within, out=np.zeros_like(mean), where=n * between + within > 0)
    w_var = n / (n + SHRINK)
    std = np.sqrt(w_var * var + (1 - w_var) * within)
    return w_mean * mean + (1 - w_mean) * g_mean, np.where(std > STD_FLOOR, std, 1.0)


def within_subject(x: np.ndarray, subjects: np.ndarray, scale: bool = True) -> np.ndarray:
    """(n, D) rows standardised within their subject (shrunk statistics over the rows given; with
    `scale` False only centred) and mapped back to the overall mean and spread of each column."""
    x = np.asarray(x, np.float64)
    groups = list(pd.Series(np.arange(len(x))).groupby(np.asarray(subjects)).indices.values())
    means, stds = shrunk_statistics([len(r) for r in groups], [x[r].mean(0) for r in groups],
                                    [x[r].var(0) for r in groups])
    out, centre, spread = np.empty_like(x), x.mean(0), x.std(0)
    for rows, m, sd in zip(groups, means, stds):
        out[rows] = (x[rows] - m) / sd * spread + centre if scale else x[rows] - m + centre
    return out


def from_column(dataset: Dataset, column: str) -> pd.DataFrame:
    """File_ID, subject from a column of the dataset's table (data_info.csv; frame tasks: the unit table)."""
    if column not in dataset.table.columns:
        raise SubjectsError(f"{Path(dataset.root) / DATA_INFO}: no column {column!r} to take subjects from; "
                            f"columns: {list(dataset.table.columns)}")
    return pd.DataFrame({ID_COL: dataset.table.index, "subject": dataset.table[column].astype(str).to_numpy()})


def from_csv(path: Path | str, column: str | None = None) -> pd.DataFrame:
    """File_ID, subject from a CSV with a File_ID column and a subject column (`column`, default: the one
    named 'subject' in any case)."""
    path = Path(path)
    if not path.exists():
        raise SubjectsError(f"{path}: file not found")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    df.columns = [str(c).strip() for c in df.columns]
    col = column or next((c for c in df.columns if c.lower() == "subject"), None)
    if ID_COL not in df.columns or col not in df.columns:
        raise SubjectsError(f"{path}: needs columns {ID_COL!r} and {column or 'subject'!r}, has {list(df.columns)}")
    return pd.DataFrame({ID_COL: df[ID_COL], "subject": df[col]})


@command
def main(argv: list[str] | None = None) -> None:
    from competition.data.task import add_dataset_arguments, open_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--column", help="a data_info.csv column naming the subject, e.g. Subject")
    src.add_argument("--csv", type=Path, help="a CSV File_ID,subject")
    ap.add_argument("--csv-column", default=None, help="the subject column of --csv (default: 'subject')")
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    task, wd, ds = open_dataset(a, check_media=False)
    ds = ds.units
    if a.column:
        frame, source = from_column(ds, a.column), f"column:{a.column}"
    else:
        frame, source = from_csv(a.csv, a.csv_column), f"file:{a.csv.resolve()}"
    subjects = write_subjects(wd.subjects, frame, source, ds)
    print(f"wrote {wd.subjects}: {subjects.groups.nunique()} subjects over {len(subjects.table)} clips ({source})")


if __name__ == "__main__":
    raise SystemExit(main())
