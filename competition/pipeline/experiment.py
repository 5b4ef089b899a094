"""The experiment directory contract, `oof/<exp>/`: what each file holds is in docs/PIPELINE.md,
"The experiment directory, oof/<exp>/"."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from competition.pipeline.config import config_hash, dump_config, selects_on_validation
from competition.data.contract import Dataset, normalise_id
from competition.features.presence import modality_label
from competition.folds import n_folds_of
from competition.core.io import read_json, remove_orphans, write_csv, write_json, write_text
from competition.core.log import UserError
from competition.core.provenance import run_card
from competition.data.task import ERI, Task, get_task


class ExperimentError(UserError, RuntimeError):
    pass


def folds_fingerprint(fold: pd.Series) -> str:
    blob = fold.sort_index().to_csv().encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def predictions_frame(ids: list[str], pred: np.ndarray, targets: list[str], task: Task = ERI) -> pd.DataFrame:
    df = pd.DataFrame(np.asarray(pred, dtype=np.float64), columns=targets)
    df.insert(0, task.id_col, [task.format_id(i) for i in ids])
    return df


def read_predictions(path: Path, targets: list[str], task: Task = ERI) -> pd.DataFrame:
    """Prediction CSV -> DataFrame indexed by bare id with exactly `targets` as columns."""
    df = pd.read_csv(path, dtype={task.id_col: str})
    missing = [t for t in [task.id_col, *targets] if t not in df.columns]
    if missing:
        raise ExperimentError(f"{path}: missing column(s) {missing}")
    df.index = df[task.id_col].map(normalise_id)
    return df[targets]


def experiment_modality(exp_dir: Path) -> str:
    """Which modalities an experiment read ('face', 'audio', 'face+audio'), from its resolved config.yaml;
    '?' when that is unreadable."""
    try:
        return modality_label(yaml.safe_load((Path(exp_dir) / "config.yaml").read_text())["features"])
    except (OSError, KeyError, TypeError, ValueError):
        return "?"


def skipped_experiments(oof_root: Path, dataset_fingerprint: str) -> dict[str, dict]:
    """{experiment: its `skipped` record} of the experiments the run skipped on this dataset."""
    out = {}
    for meta_path in sorted(Path(oof_root).glob("*/experiment.json")):
        meta = read_json(meta_path)
        if meta.get("skipped") and meta.get("dataset") == dataset_fingerprint:
            out[meta_path.parent.name] = meta["skipped"]
    return out


class Experiment:
    def __init__(self, root: Path, cfg: dict):
        self.cfg = cfg
        self.name = cfg["name"]
        self.task = get_task(cfg.get("task", "eri"))
        self.dir = Path(root) / self.name

    def fold_dir(self, k: int) -> Path:
        return self.dir / f"fold_{k}"

    def fold_done(self, k: int) -> bool:
        return (self.fold_dir(k) / "fold.json").exists()

    def bind(self, ds: Dataset, fold: pd.Series, force: bool = False) -> None:
        """Tie the directory to (config, dataset, folds). A directory holding results of another
        config or dataset is an error (or, with force, is cleared)."""
        ident = {"experiment": self.name, "config_hash": config_hash(self.cfg), "dataset": ds.fingerprint,
                 "folds": folds_fingerprint(fold), "targets": ds.emotions}
        meta_path = self.dir / "experiment.json"
        if meta_path.exists():
            old = read_json(meta_path)
            diff = [k for k in ident if old.get(k) != ident[k]]
            if diff and not force:
                raise ExperimentError(
                    f"{self.dir} holds results for a different {', '.join(diff)} "
                    f"({', '.join(f'{k}: {old.get(k)} != {ident[k]}' for k in diff)}); "
                    "rerun with --force to discard them, or give the experiment another name")
            if diff:
                shutil.rmtree(self.dir)
        for d in [self.dir, *self.dir.glob("fold_*")]:  # temporary files and staging folders of a killed run
            remove_orphans(d)
        write_json(meta_path, ident)
        write_text(self.dir / "config.yaml", dump_config(self.cfg))

    def record_skip(self, reason: str, modalities: list[str]) -> None:
        """Say in experiment.json that this experiment was skipped on the bound dataset, and why (a later
        bind clears it)."""
        meta = read_json(self.dir / "experiment.json")
        write_json(self.dir / "experiment.json", {**meta, "skipped": {"reason": reason, "modalities": modalities}})

    def write_fold(self, k: int, targets: list[str], train_ids: list[str], val_ids: list[str],
                   val_pred: np.ndarray, val_true: np.ndarray, test_ids: list[str], test_pred: np.ndarray,
                   info: dict) -> dict:
        d, task = self.fold_dir(k), self.task
        self.write_predictions(d, targets, val_ids, val_pred, test_ids, test_pred)
        write_text(d / "train_ids.txt", "\n".join(train_ids) + "\n")
        # scores are computed from the rounded values written to val.csv, so they recompute exactly
        val_written = read_predictions(d / "val.csv", targets, task).to_numpy()
        result = {"fold": k, "n_train": len(train_ids), "n_val": len(val_ids), "n_test": len(test_ids),
                  **task.report(val_written, val_true, targets), **info, "run": run_card()}
        write_json(d / "fold.json", result)
        return result

    def write_predictions(self, d: Path, targets: list[str], val_ids: list[str], val_pred: np.ndarray,
                   test_ids: list[str], test_pred: np.ndarray) -> None:
        """val.csv and test.csv into `d`: a fold's, or one seed's of a seed-averaged fold (`fold_<k>/seed_<s>/`)."""
        write_csv(d / "val.csv", predictions_frame(val_ids, val_pred, targets, self.task))
        write_csv(d / "test.csv", predictions_frame(test_ids, test_pred, targets, self.task))

    def seed_names(self, folds: range) -> list[str]:
        """Seeds whose predictions every fold kept (seed averaging), e.g. ['0', '1', '2']."""
        per_fold = [{p.parent.name[len("seed_"):] for p in self.fold_dir(k).glob("seed_*/val.csv")} for k in folds]
        return sorted(set.intersection(*per_fold), key=lambda s: (len(s), s)) if per_fold else []

    def finalize_seeds(self, ds: Dataset, folds: range, oof_ids: list[str]) -> dict[str, float]:
        """seeds/<s>/oof.csv and test.csv for every seed; returns each seed's OOF score."""
        targets, task, scores = ds.targets, self.task, {}
        for s in self.seed_names(folds):
            dirs = [self.fold_dir(k) / f"seed_{s}" for k in folds]
            oof = pd.concat([read_predictions(d / "val.csv", targets, task) for d in dirs]).reindex(oof_ids)
            test = sum(read_predictions(d / "test.csv", targets, task).reindex(ds.test_ids).to_numpy()
                       for d in dirs) / len(dirs)
            out = self.dir / "seeds" / s
            write_csv(out / "oof.csv", predictions_frame(oof_ids, oof.to_numpy(), targets, task))
            write_csv(out / "test.csv", predictions_frame(ds.test_ids, test, targets, task))
            written = read_predictions(out / "oof.csv", targets, task)
            scores[s] = float(task.score(written.to_numpy(), ds.labels(list(written.index))))
        return scores

    def finalize(self, ds: Dataset, fold: pd.Series) -> dict | None:
        """Assemble oof.csv, test.csv and metrics.json once every fold is done; else return None."""
        folds = range(n_folds_of(fold))
        if not all(self.fold_done(k) for k in folds):
            return None
        targets, task = ds.targets, self.task
        parts, tests, per_fold = [], [], {}
        for k in folds:
            d = self.fold_dir(k)
            val = read_predictions(d / "val.csv", targets, task)
            expected = set(fold.index[fold == k])
            if set(val.index) != expected:
                raise ExperimentError(f"{d / 'val.csv'} does not hold exactly the clips of fold {k}")
            trained_on = set((d / "train_ids.txt").read_text().split())
            leaked = trained_on & set(val.index)
            if ds.units is not ds:  # frames: no video may be on both sides
                leaked |= set(ds.unit_of(sorted(trained_on))) & set(ds.unit_of(list(val.index)))
            if leaked:
                raise ExperimentError(f"fold {k}: {len(leaked)} held-out clip(s) were also in its training "
                                      f"set, e.g. {sorted(leaked)[:3]}; OOF would be leaky")
            parts.append(val)
            tests.append(read_predictions(d / "test.csv", targets, task).reindex(ds.test_ids))
            per_fold[str(k)] = read_json(d / "fold.json")
        in_folds = set(fold.index[fold >= 0])
        oof = pd.concat(parts).reindex([i for i in ds.labelled_ids if i in in_folds])
        if oof.isna().any().any():
            raise ExperimentError(f"{self.dir}: OOF has missing predictions")
        test = sum(t.to_numpy() for t in tests) / len(tests)
        write_csv(self.dir / "oof.csv", predictions_frame(list(oof.index), oof.to_numpy(), targets, task))
        write_csv(self.dir / "test.csv", predictions_frame(ds.test_ids, test, targets, task))
        oof_written = read_predictions(self.dir / "oof.csv", targets, task)
        report = task.report(oof_written.to_numpy(), ds.labels(list(oof_written.index)), targets)
        m = task.metric_name
        fold_scores = [per_fold[str(k)][m] for k in folds]
        seed_scores = self.finalize_seeds(ds, folds, list(oof.index))
        metrics = {
            "experiment": self.name, "model": self.cfg["model"], "task": task.name,
            f"oof_{m}": report[m], **{f"oof_{key}": v for key, v in report.items() if key not in (m, "n")},
            "n_oof": report["n"], "n_test": len(ds.test_ids),
            **({f"oof_{m}_seeds": seed_scores} if seed_scores else {}),
            f"fold_{m}": {str(k): s for k, s in zip(folds, fold_scores)},
            f"fold_{m}_mean": float(np.mean(fold_scores)), f"fold_{m}_std": float(np.std(fold_scores)),
            "folds": {k: {kk: v[kk] for kk in (m, task.per_target_key, "n_train", "n_val", "seconds")
                          if kk in v} for k, v in per_fold.items()},
            "seconds_total": float(sum(v.get("seconds", {}).get("total", 0.0) for v in per_fold.values())),
            "dataset": ds.fingerprint, "folds_fingerprint": folds_fingerprint(fold),
            "config_hash": config_hash(self.cfg), "selects_on_validation": selects_on_validation(self.cfg),
            "targets": targets,
        }
        write_json(self.dir / "metrics.json", metrics)
        return metrics
