"""K-fold assignment, written once to folds/folds.csv and read by every model.

    python -m competition.folds --data DIR [--n-folds 5] [--seed 42] [--groups auto|subjects|estimate|none]
                                [--subjects FILE] [--scheme kfold|official] [--workdir W] [--jobs N] [--force]

Groups: stratified and grouped by the subjects file (StratifiedGroupKFold: no subject on both sides of a split),
which `--groups auto` first writes from data_info.csv's `Subject` column or else estimates; modes and fallbacks:
docs/SUBJECTS.md. folds.json records where the groups came from and any fallback.

folds.csv has `File_ID,fold`: 0..K-1 for Train+Val clips, -1 for Test clips, and (scheme official only)
-2 for Train clips that always train and are never validated. folds.json beside it records the dataset
fingerprint and the parameters, so a fold file is never silently reused with another dataset.

Frame tasks (`--task va|expr`) fold their units (annotated videos), grouped by source video, so the frames
of one video are never split; `read_folds` hands every frame its video's fold.
"""
from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from competition.core.io import read_json, write_csv, write_json
from competition.core.log import UserError, command, parse_and_log
from competition.data.contract import ID_COL, SUBJECT_COL, Dataset, bracket_id, normalise_id
from competition.data.subjects import (from_column, given_sources, known_subjects, read_subjects,
                                       write_subjects)
from competition.data.task import add_dataset_arguments, open_dataset

log = logging.getLogger(__name__)

TEST_FOLD = -1
ALWAYS_TRAIN = -2
MIN_FOLDS = 3          # grouped folds fall back to no fewer than this
MAX_FOLD_RATIO = 1.5   # a fold larger than this times the mean fold size is unbalanced
GROUP_MODES = ("auto", "subjects", "estimate", "none")


class FoldsError(UserError, ValueError):
    pass


def stratification_key(ds: Dataset, ids: list[str], min_count: int, n_bins: int = 3) -> np.ndarray:
    """Multi-label intensities -> one stratum per clip: Country x dominant emotion x binned overall
    intensity. Each clip gets the finest stratum that still has `min_count` clips, so small datasets
    stratify on what they can (Country first, then the dominant emotion, then the intensity level)."""
    y = ds.labels(ids)
    total = y.sum(1)
    edges = np.quantile(total, np.linspace(0, 1, n_bins + 1)[1:-1]) if len(total) else []
    country = (ds.table.loc[ids, "Country"].astype(str).to_numpy() if "Country" in ds.table.columns
               else np.full(len(ids), "-"))
    parts = [country, y.argmax(1).astype(str), np.digitize(total, edges).astype(str)]
    key = np.full(len(ids), "rare", dtype=object)
    finer = np.full(len(ids), "", dtype=object)
    for part in parts:
        finer = finer + "|" + part.astype(object)
        counts = pd.Series(finer).value_counts()
        key = np.where(counts.reindex(finer).to_numpy() >= min_count, finer, key)
    return key.astype(str)


def make_folds(ds: Dataset, n_folds: int = 5, seed: int = 42, groups: pd.Series | None = None,
               scheme: str = "kfold") -> pd.DataFrame:
    """Return a DataFrame File_ID (bare), fold for every clip in the dataset."""
    labelled = ds.labelled_ids
    fold = pd.Series(TEST_FOLD, index=ds.ids, dtype=int)
    if scheme == "official":
        fold[ds.ids_in("Train")] = ALWAYS_TRAIN
        fold[ds.ids_in("Val")] = 0
    elif scheme == "kfold":
        for k, val_idx in enumerate(kfold_splits(ds, labelled, n_folds, seed, groups)):
            fold[[labelled[i] for i in val_idx]] = k
    else:
        raise FoldsError(f"unknown scheme {scheme!r}; use 'kfold' or 'official'")
    return pd.DataFrame({ID_COL: fold.index, "fold": fold.to_numpy()})


def kfold_splits(ds: Dataset, ids: list[str], n_folds: int, seed: int, groups: pd.Series | None = None
                 ) -> list[np.ndarray]:
    """Held-out positions in `ids` of n_folds splits, stratified and (with groups) grouped: a group on one side."""
    if len(ids) < n_folds:
        raise FoldsError(f"{len(ids)} labelled clips cannot make {n_folds} folds")
    key = stratification_key(ds, ids, min_count=n_folds)
    x = np.zeros(len(ids))
    if groups is not None:
        g = groups.reindex(ids)
        if g.isna().any():
            missing = list(g[g.isna()].index[:5])
            raise FoldsError(f"group value missing for {int(g.isna().sum())} clip(s), e.g. {missing}")
        if g.nunique() < n_folds:
            raise FoldsError(f"{g.nunique()} groups cannot make {n_folds} folds: every fold needs its own "
                             f"subjects; use --n-folds {g.nunique()} or fewer")
        splits = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(
            x, key, groups=g.to_numpy())
    else:
        splits = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x, key)
    with warnings.catch_warnings():  # strata smaller than K are expected on small data
        warnings.filterwarnings("ignore", message="The least populated class")
        return [val for _, val in splits]


INNER_SPLITS = 4  # the inner validation split is a quarter of the training fold


def inner_split(ds, train_ids: list[str], groups: pd.Series | None, seed: int) -> tuple[list[str], list[str]]:
    """(fit ids, selection ids): a training fold split again by unit, stratified and grouped like the folds, for
    what a model chooses on validation data, so that no choice reads the labels of the fold that becomes OOF."""
    units = ds.unit_of(train_ids)
    unit_ids = list(dict.fromkeys(units))
    n_groups = len(unit_ids) if groups is None else groups.reindex(unit_ids).nunique()
    if n_groups < 2:
        log.warning("the training fold has %d group(s): its selection split is not grouped", n_groups)
        groups, n_groups = None, len(unit_ids)
    held = {unit_ids[i] for i in kfold_splits(ds.units, unit_ids, min(INNER_SPLITS, n_groups), seed, groups)[0]}
    return [i for i, u in zip(train_ids, units) if u not in held], [i for i, u in zip(train_ids, units) if u in held]


def _components(*labels: pd.Series) -> pd.Series:
    """Units sharing any label (a subject, a source video) end in one group: connected components."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    index = labels[0].index
    for i, keys in zip(index, zip(*(lab.reindex(index) for lab in labels))):
        for n, k in enumerate(keys):
            parent[find(f"u:{i}")] = find(f"{n}:{k}")
    return pd.Series([find(f"u:{i}") for i in index], index=index)


def ensure_subjects(ds: Dataset, task, wd, mode: str = "auto", jobs: int = 1) -> str | None:
    """Write the work directory's subjects file when it has none and `mode` asks for it (module docstring);
    return the one line that says what was done, or None. Clip tasks only: a frame task's units are
    grouped by their source video."""
    if mode == "estimate" and given_sources(wd.subjects):
        raise FoldsError(f"{wd.subjects} holds given subjects ({', '.join(given_sources(wd.subjects))}); "
                         "--groups estimate would not use them: use another --workdir, or --groups auto")
    if mode not in ("auto", "estimate") or task.group_col or wd.subjects.exists():
        return None
    if mode == "auto" and SUBJECT_COL in ds.table.columns:
        subjects = write_subjects(wd.subjects, from_column(ds, SUBJECT_COL), f"column:{SUBJECT_COL}", ds)
        return f"subjects: {subjects.groups.nunique()} given in data_info.csv's {SUBJECT_COL} column -> {wd.subjects}"
    from competition.features.subjects import DIAGNOSTICS, estimate_into
    try:
        est, why, seconds = estimate_into(ds, wd, jobs=jobs, progress=False)
    except ValueError as exc:  # nothing to cluster (no face and no voice in any clip, say)
        log.warning("subjects NOT estimated: %s; the folds are not grouped by people", exc)
        return None
    d = est.diagnostics
    what = (f"{d['n_clusters']} people estimated from {'+'.join(d['modalities'])} over {d['n_clips']} clips "
            f"in {seconds:.0f} s (embeddings cached in {wd.features})")
    if why:
        log.warning("estimated subjects NOT used: %s, but %s (%s); the folds are not grouped by people",
                    what, why, wd.subjects.with_name(DIAGNOSTICS))
        return None
    return f"subjects: {what} -> {wd.subjects}; --groups none to skip"


def load_groups(ds: Dataset, task, subjects_path: Path, mode: str | None = None) -> tuple[pd.Series | None, dict]:
    """(group per unit id or None, what folds.json records about it).

    mode None / "auto" / "estimate": the subjects file when it exists; "subjects": it must exist; "none": no
    subjects. Frame tasks always keep a source video's units together (`task.group_col`), also when subjects
    are used."""
    structural = ds.table[task.group_col].astype(str) if task.group_col else None
    subjects = None if mode == "none" else \
        read_subjects(subjects_path, ds) if mode == "subjects" else known_subjects(subjects_path, ds)
    if subjects is None:
        if structural is None:
            return None, {"source": "none"}
        return structural, {"source": f"column:{task.group_col}", "n_groups": int(structural.nunique())}
    rec = subjects.record()
    record = {"source": "subjects", "subject_source": rec.pop("source"), **rec}
    groups = subjects.groups
    if structural is not None:
        groups = _components(groups, structural)
        record["also_grouped_by"] = f"column:{task.group_col}"
    record["n_groups"] = int(groups.nunique())
    return groups, record


def balanced_folds(ds: Dataset, n_folds: int, seed: int, groups: pd.Series | None, record: dict
                   ) -> tuple[pd.DataFrame, dict]:
    """K-fold folds with `groups`, else with fewer folds (down to MIN_FOLDS), else (groups from subjects)
    without them; `record` (what folds.json says about the groups) gains a `fallback` saying what happened."""
    if groups is None:
        return make_folds(ds, n_folds, seed), record
    have = int(groups.reindex(ds.labelled_ids).nunique())
    tried = []
    for k in range(n_folds, min(MIN_FOLDS, n_folds) - 1, -1):
        if have < k:
            tried.append(f"{k} folds: only {have} groups")
            continue
        folds = make_folds(ds, k, seed, groups)
        sizes = folds.fold[folds.fold >= 0].value_counts().reindex(range(k), fill_value=0)
        if sizes.min() > 0 and sizes.max() <= MAX_FOLD_RATIO * sizes.mean():  # balanced
            if k < n_folds:
                record = {**record, "fallback": f"{n_folds} folds asked, {k} made ({'; '.join(tried)})"}
                log.warning("grouped folds: %s", record["fallback"])
            return folds, record
        tried.append(f"{k} folds: fold sizes {' / '.join(map(str, sizes))}")
    if record["source"] != "subjects" or "also_grouped_by" in record:
        raise FoldsError(f"{have} groups cannot make {n_folds} balanced folds ({'; '.join(tried)}); "
                         "use --n-folds with fewer folds")
    fallback = {"source": "none", "fallback": f"subjects not used for the folds: {'; '.join(tried)}",
                "subjects_not_used": record}
    log.warning("the folds are NOT grouped by subject: %s groups cannot make balanced folds (%s); every "
                "score will be optimistic for new people", have, "; ".join(tried))
    return make_folds(ds, n_folds, seed), fallback


def _check_same_groups(path: Path, record: dict) -> None:
    """An existing fold file made with other subjects (or none) than there are now must not be reused."""
    old = read_json(path.with_suffix(".json")).get("groups", {"source": "none"})
    if record["source"] == "subjects":  # subjects that could not make balanced folds: still these?
        old = old.get("subjects_not_used", old)
    if "subjects" in (old["source"], record["source"]) and \
            (old["source"], old.get("sha256")) != (record["source"], record.get("sha256")):
        raise FoldsError(f"{path} was made with groups {old['source']} ({old.get('file', '-')}), but the groups "
                         f"now are {record['source']} ({record.get('file', '-')}); rerun with --force "
                         "(experiments made with the old folds will then refuse to mix)")


def write_folds(ds: Dataset, folds: pd.DataFrame, path: Path, params: dict) -> None:
    out = folds.copy()
    out[ID_COL] = out[ID_COL].map(bracket_id)
    write_csv(path, out, float_format=None)
    write_json(path.with_suffix(".json"), {"dataset": ds.fingerprint, "data_root": str(ds.root.resolve()),
                                           **params, "counts": out.fold.value_counts().sort_index().to_dict()})


def grouping(path: Path) -> dict:
    """What the fold file's folds.json says its folds were grouped by: `kind` given | estimated | none (frame
    tasks: video), n_groups, source, n_folds and any fallback; and `line`, the same in words."""
    meta = read_json(path.with_suffix(".json")) if path.with_suffix(".json").exists() else {}
    g = meta.get("groups", {"source": "none"})
    src = str(g.get("subject_source", g["source"]))
    kind = ("none" if g["source"] == "none" else "video" if g["source"] != "subjects" else
            "estimated" if src.startswith("estimated:") else "given")
    what = {"none": "NOT grouped by subject", "video": f"grouped by source video ({g.get('n_groups')} videos)"}.get(
        kind, f"grouped by {kind} subjects ({src}, {g.get('n_groups')} groups)")
    fallback = g.get("fallback")
    line = f"{meta.get('n_folds', '?')} folds {what}" + (f"; {fallback}" if fallback else "")
    return {"kind": kind, "n_groups": g.get("n_groups"), "source": src, "n_folds": meta.get("n_folds"),
            "fallback": fallback, "line": line}


def read_folds(path: Path, ds) -> pd.Series:
    """fold per sample id (clips, or frames of a frame task: their unit's fold); raise FoldsError if the
    file belongs to another dataset or misses clips."""
    fold = _read_unit_folds(path, ds.units)
    if ds.units is ds:
        return fold
    return pd.Series(fold.reindex(ds.unit_of(ds.ids)).to_numpy(int), index=pd.Index(ds.ids))


def _read_unit_folds(path: Path, ds: Dataset) -> pd.Series:
    meta_path = path.with_suffix(".json")
    if not path.exists():
        raise FoldsError(f"{path} not found: run `python -m competition.folds --data {ds.root}` first")
    if meta_path.exists():
        meta = read_json(meta_path)
        if meta.get("dataset") != ds.fingerprint:
            raise FoldsError(f"{path} was made for dataset {meta.get('dataset')} ({meta.get('data_root')}), "
                             f"not for {ds.root} ({ds.fingerprint}); rerun competition.folds with --force")
    df = pd.read_csv(path, dtype={ID_COL: str})
    fold = pd.Series(df["fold"].to_numpy(int), index=df[ID_COL].map(normalise_id))
    missing = set(ds.labelled_ids) - set(fold.index)
    if missing:
        raise FoldsError(f"{path}: {len(missing)} labelled clip(s) have no fold, e.g. {sorted(missing)[:3]}")
    if (fold.reindex(ds.test_ids).fillna(TEST_FOLD) >= 0).any():
        raise FoldsError(f"{path}: Test clips were given a fold")
    return fold.reindex(ds.ids).fillna(TEST_FOLD).astype(int)


def fold_ids(fold: pd.Series, k: int) -> tuple[list[str], list[str]]:
    """(train ids, validation ids) of fold k; Test clips are never in either."""
    train = list(fold.index[((fold >= 0) & (fold != k)) | (fold == ALWAYS_TRAIN)])
    val = list(fold.index[fold == k])
    return train, val


def n_folds_of(fold: pd.Series) -> int:
    return int(fold.max()) + 1


@command
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--groups", choices=GROUP_MODES, default="auto",
                    help="auto: the subjects file, else data_info.csv's Subject column, else estimated subjects; "
                         "estimate: estimated even with a Subject column; subjects: the file must exist; none")
    ap.add_argument("--subjects", type=Path, default=None, help="subjects file (default: the work directory's)")
    ap.add_argument("--scheme", choices=["kfold", "official"], default="kfold")
    ap.add_argument("--force", action="store_true", help="overwrite an existing folds.csv")
    ap.add_argument("--jobs", type=int, default=2, help="parallel clips when estimating subjects")
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    task, wd, ds = open_dataset(a)
    ds = ds.units
    path = wd.folds
    if a.force or not path.exists():
        note = None if a.subjects else ensure_subjects(ds, task, wd, a.groups, a.jobs)
        if note:
            log.info("%s", note)
    groups, record = load_groups(ds, task, a.subjects or wd.subjects, a.groups)
    where = (f"subjects from {record['file']} ({record['subject_source']}, {record['n_groups']} groups)"
             if record["source"] == "subjects" else
             f"{record['source']} ({record['n_groups']} groups)" if "n_groups" in record else
             "none (each clip on its own)")
    if path.exists() and not a.force:
        _read_unit_folds(path, ds)  # validates it belongs to this dataset
        _check_same_groups(path, record)
        log.info("%s exists and matches the dataset (groups: %s); --force to rewrite", path, where)
        return
    log.info("groups: %s", where)
    if a.scheme == "kfold":
        folds, record = balanced_folds(ds, a.n_folds, a.seed, groups, record)
        unused = record.get("subjects_not_used", {})
        if str(unused.get("subject_source")).startswith("estimated:") and not a.subjects:
            # an estimate that cannot even group the folds is not used for anything else either
            for p in (wd.subjects, wd.subjects.with_suffix(".json")):
                p.replace(p.with_name(f"{p.stem}_unused{p.suffix}"))
            log.warning("estimated subjects not used at all: moved to %s", wd.subjects.with_name("subjects_unused.csv"))
    else:
        folds = make_folds(ds, a.n_folds, a.seed, groups, a.scheme)
    write_folds(ds, folds, path, {"scheme": a.scheme, "n_folds": int(folds.fold.max()) + 1, "seed": a.seed,
                                  "groups": record, "task": task.name})
    print(f"wrote {path}: " + ", ".join(f"fold {k}: {n}" for k, n in
                                         folds.fold.value_counts().sort_index().items()))


if __name__ == "__main__":
    raise SystemExit(main())
