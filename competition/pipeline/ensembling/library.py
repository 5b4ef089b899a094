"""The blend library: the OOF and Test predictions of finished experiments, aligned by File_ID, and the
fold of every OOF clip (for nested CV). An experiment with incomplete OOF, or from another dataset or
fold file, is refused with a message that says what to run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from competition.data.contract import normalise_id
from competition.pipeline.config import config_hash
from competition.pipeline.experiment import ExperimentError, experiment_modality, read_predictions
from competition.core.io import read_json
from competition.data.task import ERI, Task


@dataclass
class Library:
    names: list[str]
    oof: np.ndarray        # (M, N, E) held-out predictions of N labelled clips
    test: np.ndarray       # (M, N_test, E)
    y: np.ndarray          # (N, E)
    ids: list[str]
    test_ids: list[str]
    targets: list[str]
    folds_fingerprint: str
    scores: dict[str, float]
    fold: np.ndarray       # (N,) the fold in which each OOF clip was held out
    modalities: dict[str, str] = field(default_factory=dict)  # member -> 'face', 'audio', 'face+audio', ...
    subjects: np.ndarray | None = None       # (N,) subject of each OOF clip, from the subjects file
    test_subjects: np.ndarray | None = None  # (N_test,)


def finished_experiments(oof_root: Path) -> list[str]:
    return sorted(p.parent.name for p in Path(oof_root).glob("*/metrics.json"))


def _refuse_unfinished(oof_root: Path, name: str) -> None:
    d = oof_root / name
    if not d.is_dir():
        raise ExperimentError(f"no experiment {name!r} under {oof_root}; finished ones: "
                              f"{finished_experiments(oof_root) or 'none'}")
    done = sorted(p.parent.name for p in d.glob("fold_*/fold.json"))
    raise ExperimentError(f"{d}: OOF incomplete (no metrics.json; folds done: {', '.join(done) or 'none'}); "
                          f"run its remaining folds first, e.g. bash scripts/run_all.sh {name}")


def held_out_fold(exp_dir: Path, ids: list[str], id_col: str = ERI.id_col) -> np.ndarray:
    """The fold of each id, read from the experiment's fold_<k>/val.csv files."""
    fold_of: dict[str, int] = {}
    for p in exp_dir.glob("fold_*/val.csv"):
        k = int(p.parent.name.split("_", 1)[1])
        fold_of.update({i: k for i in pd.read_csv(p, dtype={id_col: str})[id_col].map(normalise_id)})
    missing = [i for i in ids if i not in fold_of]
    if missing:
        raise ExperimentError(f"{exp_dir}: {len(missing)} OOF clip(s) in no fold_*/val.csv, e.g. {missing[:3]}")
    return np.array([fold_of[i] for i in ids], int)


def load_library(oof_root: Path, ds, names: list[str] | None = None, task: Task = ERI,
                 subjects: pd.Series | None = None) -> Library:
    """The finished experiments `names` (default: all) of `ds` (a dataset of `task`); with `subjects`
    (subject by id), the library carries each OOF and Test clip's subject for the post-processing."""
    oof_root = Path(oof_root)
    names = names or finished_experiments(oof_root)
    if not names:
        raise ExperimentError(f"no finished experiment under {oof_root} (each needs oof.csv and metrics.json); "
                              "run all folds first, e.g. bash scripts/run_all.sh")
    oofs, tests, scores, fps = [], [], {}, set()
    ids = None
    for name in names:
        d = oof_root / name
        if not (d / "metrics.json").exists():
            _refuse_unfinished(oof_root, name)
        m = read_json(d / "metrics.json")
        if m.get("dataset") != ds.fingerprint:
            raise ExperimentError(f"{d} was computed on dataset {m.get('dataset')}, not on {ds.root} "
                                  f"({ds.fingerprint}); refusing to blend artifacts of two datasets")
        dumped = d / "config.yaml"  # results of an older version (or an edited config) are another computation
        if dumped.exists() and m.get("config_hash") != config_hash(yaml.safe_load(dumped.read_text()),
                                                                   m.get("selects_on_validation")):
            raise ExperimentError(f"{d} was computed by an older version or another config: rerun it with --force")
        fps.add(m.get("folds_fingerprint"))
        if m.get("task", "eri") != task.name:
            raise ExperimentError(f"{d} holds {m.get('task', 'eri')} results, not {task.name}")
        oof = read_predictions(d / "oof.csv", ds.targets, task)
        ids = list(oof.index) if ids is None else ids
        if set(oof.index) != set(ids):
            raise ExperimentError(f"{d / 'oof.csv'}: covers {len(oof)} clips, others cover {len(ids)}; "
                                  "experiments to blend must share one fold file")
        test = read_predictions(d / "test.csv", ds.targets, task)
        if set(test.index) != set(ds.test_ids):
            raise ExperimentError(f"{d / 'test.csv'}: does not hold exactly the Test clips")
        for what, frame in (("oof.csv", oof), ("test.csv", test)):
            if frame.isna().any().any():
                raise ExperimentError(f"{d / what}: {int(frame.isna().any(axis=1).sum())} row(s) with missing "
                                      "predictions; rerun the experiment")
        oofs.append(oof.loc[ids].to_numpy())
        tests.append(test.loc[ds.test_ids].to_numpy())
        scores[name] = float(m[f"oof_{task.metric_name}"])
    if len(fps) > 1:
        raise ExperimentError(f"experiments {names} were trained on different fold files; rerun them on one")
    # C order: pandas hands out column-major blocks, and the blend code relies on (M, N, E) row order
    return Library(names=list(names), oof=np.ascontiguousarray(np.stack(oofs)),
                   test=np.ascontiguousarray(np.stack(tests)), y=ds.labels(ids), ids=ids,
                   test_ids=ds.test_ids, targets=ds.targets, folds_fingerprint=fps.pop(), scores=scores,
                   fold=held_out_fold(oof_root / names[0], ids, task.id_col),
                   modalities={n: experiment_modality(oof_root / n) for n in names},
                   subjects=None if subjects is None else _subjects_of(subjects, ids),
                   test_subjects=None if subjects is None else _subjects_of(subjects, ds.test_ids))


def _subjects_of(subjects: pd.Series, ids: list[str]) -> np.ndarray:
    got = subjects.reindex(ids)
    if got.isna().any():
        raise ExperimentError(f"the subjects file names no subject for {int(got.isna().sum())} clip(s), "
                              f"e.g. {list(got[got.isna()].index[:3])}")
    return got.astype(str).to_numpy()
