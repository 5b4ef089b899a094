"""Train one fold of one or more experiments and write their fold results; finalize an experiment
(oof.csv, test.csv, metrics.json) once all its folds are done.
More: docs/PIPELINE.md, "Training folds: run_fold"."""
from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from competition.data.subjects import known_subjects
from competition.pipeline import tracking
from competition.pipeline.config import default_experiments, load_config
from competition.pipeline.experiment import Experiment, ExperimentError, skipped_experiments
from competition.features.presence import (Presence, audio_presence, face_params_of, face_presence,
                                           feature_modalities)
from competition.features.registry import get_extractor, parse_feature_spec
from competition.features.store import extract
from competition.folds import FoldsError, fold_ids, inner_split, load_groups, n_folds_of, read_folds
from competition.core.io import atomic_files
from competition.core.log import command, parse_and_log, progress_disabled
from competition.features.bank import FeatureBank, Windows
from competition.models.base import Model
from competition.models.distributed import barrier, init_from_env, is_main, shutdown, world
from competition.models.registry import build_model, model_class
from competition.core.paths import Workdir
from competition.data.task import Task, add_dataset_arguments, get_task, open_dataset

log = logging.getLogger(__name__)
Reporter = Callable[[int, dict[str, float]], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    import torch  # a requirement (requirements.txt), imported only by the processes that train
    torch.manual_seed(seed)
    # what torch.use_deterministic_algorithms(True, warn_only=True) sets, without the Inductor import it
    # also does for torch.compile's flag (~2 s per process; nothing here compiles)
    torch._C._set_deterministic_algorithms(True, warn_only=True)


@dataclass
class FoldFit:
    """A model trained on fold k's training clips and its predictions (nothing written to disk)."""
    model: Model
    seed: int
    train_ids: list[str]
    val_ids: list[str]
    test_ids: list[str]
    val_pred: np.ndarray
    test_pred: np.ndarray
    seconds: dict[str, float]   # features, fit, predict


def task_of(cfg: dict) -> Task:
    return get_task(cfg.get("task", "eri"))


def subjects_for(cfg: dict, ds, wd: Workdir) -> pd.Series | None:
    """The subject of every unit (all splits) from the work directory's subjects file when the config
    asks for within-subject feature standardisation (`subject_norm: true`) and there is one, else None."""
    subjects = known_subjects(wd.subjects, ds.units) if cfg.get("subject_norm") else None
    return None if subjects is None else subjects.groups


def selection_groups(cfg: dict, ds, wd: Workdir) -> pd.Series | None:
    """What a model choosing on validation data groups its split of the training fold by (folds.load_groups)."""
    return load_groups(ds.units, task_of(cfg), wd.subjects)[0] if model_class(cfg["model"]).selects_on_validation \
        else None


def feature_bank(cfg: dict, ds, features_root: Path, subjects: pd.Series | None = None) -> FeatureBank:
    """The experiment's features, read per sample (clips, or frames in their context window); with
    `subjects`, standardised within subject."""
    return FeatureBank(features_root, cfg["features"], Windows.of(ds, cfg.get("window") or task_of(cfg).window),
                       None if subjects is None else subjects.reindex(ds.units.ids).to_dict())


def seeds_of(cfg: dict) -> list[int]:
    """The config's seeds: `seeds: [...]` (seed averaging) or the single `seed` (default 42)."""
    seeds = cfg.get("seeds") or [cfg.get("seed", 42)]
    return [int(s) for s in seeds]


def fit_fold(cfg: dict, k: int, ds, fold: pd.Series, features_root: Path, jobs: int = 1,
             progress: bool = True, reporter: Reporter | None = None,
             extract_features: bool = True, seed: int | None = None,
             subjects: pd.Series | None = None, groups: pd.Series | None = None) -> FoldFit:
    """Extract the config's features (cached), train fold k's model and predict its held-out and Test
    samples. `reporter(epoch, row)` receives the per-epoch metrics of iterative models (it may raise,
    e.g. optuna.TrialPruned, which propagates). Shared by run_fold and the tuner. `ds` is a clip
    dataset or a frame dataset of the config's task; models see targets in [0, 1] (task.to_unit).
    Configs with `subject_norm: true` need `subjects` (see subjects_for); `groups` group the split
    a model choosing on validation data makes of the training fold (see selection_groups)."""
    task = task_of(cfg)
    t0 = time.perf_counter()
    if extract_features:
        if is_main():  # under torchrun the other ranks wait for rank 0's features
            extract(ds.units, cfg["features"], features_root, jobs=jobs, progress=progress, require=True)
        barrier()
    t_feat = time.perf_counter() - t0

    train_ids, val_ids = fold_ids(fold, k)
    fit_ids = train_ids[::max(1, int(cfg.get("train_stride", 1)))]
    test_ids = ds.test_ids
    if cfg.get("subject_norm") and subjects is None:
        raise ValueError(f"{cfg['name']}: subject_norm is set but no subjects were given")
    bank = feature_bank(cfg, ds, features_root, subjects)
    seed = (seeds_of(cfg)[0] if seed is None else int(seed)) + k

    def new_model(chosen: dict) -> Model:
        seed_everything(seed)
        model = build_model(cfg["model"], {**cfg.get("params", {}), **chosen}, len(ds.targets), seed=seed, task=task)
        model.reporter = reporter
        model.unlabelled_ids = list(test_ids)  # for models that can pseudo-label them
        return model

    model = new_model({})
    # One BLAS/OpenMP thread: scikit-learn's results (e.g. gradient-boosting histograms) depend on the thread
    # count, so a fold gives the same numbers alone or beside other folds (run_all.sh runs them in parallel).
    with threadpool_limits(limits=1):
        t1 = time.perf_counter()
        if model.selects_on_validation:  # choose (e.g. the epoch count) on a split of the training fold, then
            part, select_ids = inner_split(ds, fit_ids, groups, seed)  # refit on all of it with those choices
            model.fit(bank, part, task.to_unit(ds.labels(part)), select_ids, task.to_unit(ds.labels(select_ids)))
            chose, model = model, new_model(model.chosen_params())
        model.fit(bank, fit_ids, task.to_unit(ds.labels(fit_ids)), [], task.to_unit(ds.labels([])))
        if model.selects_on_validation:
            model.history = chose.history + model.history  # the choosing fit's epochs, then the refit's
        t_fit = time.perf_counter() - t1
        t2 = time.perf_counter()
        val_pred = task.from_unit(model.predict(bank, val_ids))
        test_pred = task.from_unit(model.predict(bank, test_ids)) if test_ids else np.zeros((0, len(ds.targets)))
        t_pred = time.perf_counter() - t2
    return FoldFit(model, seed, train_ids, val_ids, test_ids, val_pred, test_pred,
                   {"features": t_feat, "fit": t_fit, "predict": t_pred})


class EpochLogger:
    """Per-epoch hook for Model.reporter: logs the row to W&B and advances an epoch progress bar (opened
    on the first epoch, so models that do not iterate show none)."""

    def __init__(self, run: tracking.Run, desc: str, total: int | None, progress: bool):
        self.run, self.desc, self.total, self.progress = run, desc, total, progress
        self.bar: tqdm | None = None

    def __call__(self, epoch: int, row: dict[str, float]) -> None:
        self.run.log(row)
        if self.bar is None:
            self.bar = tqdm(total=self.total, desc=self.desc, unit="epoch",
                            disable=progress_disabled(self.progress), leave=False)
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "epoch"}, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_PRESENCE: dict[tuple, Presence] = {}  # per process: every fold and experiment of a run asks the same


def presence(ds, features_root: Path, modality: str, face_params: dict, jobs: int) -> Presence:
    key = (ds.fingerprint, str(features_root), modality, repr(sorted(face_params.items())))
    if key not in _PRESENCE:
        _PRESENCE[key] = (face_presence(ds, features_root, face_params, jobs) if modality == "face"
                          else audio_presence(ds))
    return _PRESENCE[key]


def skip_reason(cfg: dict, ds, features_root: Path, jobs: int = 1, subjects: pd.Series | None = None
                ) -> tuple[str, list[str]] | None:
    """(why, modalities) when the experiment cannot learn anything on this dataset, else None. `subjects`:
    what subjects_for gives."""
    if cfg.get("subject_norm") and subjects is None:
        return ("subject_norm needs the subjects of every clip and the work directory has no subjects file "
                "(folds made with --groups none, or an unusable estimate: see competition.folds)", [])
    unset = [name for name, params in map(parse_feature_spec, cfg["features"])
             if get_extractor(name).resolve(params).get("model") == ""]
    if unset:
        return (f"feature(s) {unset} need a local model folder and none was given (set ERI_SPEECH_MODEL to a "
                "folder written by save_pretrained, or --set the feature's model)", [])
    modalities = feature_modalities(cfg["features"])
    if not modalities or not modalities <= {"face", "audio"}:
        return None
    evidence = []
    for m in sorted(modalities):
        checks = [presence(ds, features_root, m, p, jobs) for p in (face_params_of(cfg["features"]) or [{}])] \
            if m == "face" else [presence(ds, features_root, m, {}, jobs)]
        if any(c.present for c in checks):
            return None
        evidence.append(checks[0].evidence)
    what = " and ".join(f"no {m} in any clip" for m in sorted(modalities))
    return f"reads only {'+'.join(sorted(modalities))} features, {what}: " + "; ".join(evidence), sorted(modalities)


def run_fold(cfg: dict, k: int, ds, wd: Workdir, jobs: int = 1, force: bool = False,
             progress: bool = True, no_wandb: bool = False) -> dict | None:
    """Train fold k of the experiment `cfg`; return the experiment metrics if this completed it (None
    also when the experiment is skipped on this dataset: see skip_reason)."""
    fold = read_folds(wd.folds, ds)
    if not 0 <= k < n_folds_of(fold):
        raise FoldsError(f"fold {k} does not exist; {wd.folds} has {n_folds_of(fold)} fold(s)")
    exp = Experiment(wd.oof, cfg)
    main = is_main()  # under torchrun only rank 0 writes
    if main:
        exp.bind(ds, fold, force=force)
    barrier()
    subjects = subjects_for(cfg, ds, wd)
    skip = skip_reason(cfg, ds, wd.features, jobs, subjects)
    if skip:
        if main:
            exp.record_skip(*skip)
            log.warning("[%s] skipped (fold %d), nothing trained: %s", exp.name, k, skip[0])
        return None
    if exp.fold_done(k):
        if main:
            log.info("[%s] fold %d already done, skipping", exp.name, k)
        return exp.finalize(ds, fold) if main else None

    with tracking.start_run(group=exp.name, job_type="fold", name=f"{exp.name}-f{k}",
                            config={**cfg, "fold": k}, workdir=wd.root, no_wandb=no_wandb or not main) as run:
        t0 = time.perf_counter()
        epochs = cfg.get("params", {}).get("epochs")
        logger = EpochLogger(run, f"{exp.name} f{k}", int(epochs) if epochs else None, progress and main)
        fits = []
        try:
            groups = selection_groups(cfg, ds, wd)
            for s in seeds_of(cfg):
                fits.append(fit_fold(cfg, k, ds, fold, wd.features, jobs=jobs, progress=progress, reporter=logger,
                                     seed=s, subjects=subjects, groups=groups))
        finally:
            logger.close()
        if not main:
            barrier()  # rank 0 writes the fold
            return None
        fit = fits[0]
        val_pred = np.mean([f.val_pred for f in fits], axis=0)
        test_pred = np.mean([f.test_pred for f in fits], axis=0)
        with atomic_files(exp.fold_dir(k)) as staging:  # no half-written checkpoint survives a kill
            if len(fits) == 1:
                fit.model.save(staging)
            for s, f in zip(seeds_of(cfg), fits if len(fits) > 1 else []):
                exp.write_predictions(staging / f"seed_{s}", ds.targets, f.val_ids, f.val_pred, f.test_ids, f.test_pred)
                f.model.save(staging / f"seed_{s}")
        seconds = {key: sum(f.seconds[key] for f in fits) for key in fit.seconds}
        info = {"seed": fit.seed, "seconds": {**seconds, "total": time.perf_counter() - t0},
                "processes": world()[1], "history": fit.model.history}
        if len(fits) > 1:
            y_val = ds.labels(fit.val_ids)
            info["seeds"] = {str(s): {"seed": f.seed, exp.task.metric_name: float(exp.task.score(f.val_pred, y_val)),
                                      "history": f.model.history} for s, f in zip(seeds_of(cfg), fits)}
        res = exp.write_fold(k, ds.targets, fit.train_ids, fit.val_ids, val_pred, ds.labels(fit.val_ids),
                             fit.test_ids, test_pred, info)
        run.summary(tracking.fold_summary(res, exp.task))
        m, label = exp.task.metric_name, exp.task.metric_label
        log.info("[%s] fold %d: val %s %.4f (n_train %d, n_val %d, %.1fs)", exp.name, k, label, res[m],
                 len(fit.train_ids), len(fit.val_ids), info["seconds"]["total"])
        metrics = exp.finalize(ds, fold)
        if metrics:
            run.summary({f"oof_{m}": metrics[f"oof_{m}"], f"fold_{m}_std": metrics[f"fold_{m}_std"]})
            log.info("[%s] all folds done: OOF %s %.4f -> %s", exp.name, label, metrics[f"oof_{m}"], exp.dir)
    barrier()
    return metrics


def claim(path: Path) -> bool:
    """True for the one process that creates `path` first (O_EXCL)."""
    with suppress(FileExistsError):
        path.touch(exist_ok=False)
        return True
    return False


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fold", type=int, action="append", default=None, help="fold index (repeatable)")
    ap.add_argument("--all-folds", action="store_true")
    ap.add_argument("--exp", nargs="*", default=None, help="config names or paths (default: default configs)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    ap.add_argument("--jobs", type=int, default=2, help="parallel clips during feature extraction")
    ap.add_argument("--force", action="store_true", help="discard results of a changed config/dataset")
    ap.add_argument("--no-wandb", action="store_true", help="no W&B run (same as WANDB_MODE=disabled)")
    ap.add_argument("--features-only", action="store_true", help="extract the experiments' features, train nothing")
    ap.add_argument("--claim-dir", type=Path, default=None, help="share the (experiment, fold) pairs with the "
                    "processes given the same folder: each trains the next one none has claimed (run_all.sh)")
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    init_from_env()  # under torchrun: join the process group
    task, wd, ds = open_dataset(a)
    for w in ds.warnings:
        log.warning("%s", w)
    names = a.exp or default_experiments(task.name)
    if not names:
        ap.error(f"no --exp given and no {task.name} config is flagged `default: true`")
    folds = list(range(n_folds_of(read_folds(wd.folds, ds)))) if a.all_folds else (a.fold or [])
    if not folds:
        ap.error("give --fold K (repeatable) or --all-folds")
    jobs = [(load_config(name, a.overrides, wd.tuned, task.name), k) for name in names for k in folds]
    if a.features_only:  # with --jobs workers, before processes sharing the fits would extract the same clips
        for cfg in {c["name"]: c for c, _ in jobs}.values():
            if not skip_reason(cfg, ds, wd.features, a.jobs, subjects_for(cfg, ds, wd)):
                extract(ds.units, cfg["features"], wd.features, jobs=a.jobs, progress=not a.quiet, require=True)
        return 0
    if a.claim_dir:  # the models that fit twice (inner split, then refit) first: the last pairs left are short
        jobs.sort(key=lambda job: not model_class(job[0]["model"]).selects_on_validation)
    for cfg, k in tqdm(jobs, desc="folds", unit="fold", disable=progress_disabled(len(jobs) > 1 and not a.quiet)):
        if a.claim_dir is None or claim(a.claim_dir / f"{cfg['name']}-{k}"):
            run_fold(cfg, k, ds, wd, jobs=a.jobs, force=a.force, progress=not a.quiet, no_wandb=a.no_wandb)
    shutdown()
    named = {c["name"] for c, _ in jobs} if a.exp else set()  # the default set may skip; a named one may not
    cannot = {n: why for n, why in skipped_experiments(wd.oof, ds.fingerprint).items() if n in named}
    if cannot:
        raise ExperimentError("named with --exp but cannot run on this dataset: " +
                              "; ".join(f"{n}: {why['reason']}" for n, why in cannot.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
