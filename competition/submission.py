"""The last layer: make an official-format submission from a blend of finished experiments, and check one.
More: docs/PIPELINE.md, "Submissions: make_submission.py"."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from competition.core.io import remove_orphans, write_json
from competition.core.log import command, parse_and_log
from competition.data.subjects import known_subjects
from competition.folds import grouping
from competition.data.task import add_dataset_arguments, open_dataset
from competition.pipeline.ensembling.blend import build_card, choose, comparison_table, evaluate, nested_cv
from competition.pipeline.ensembling.caruana import CaruanaOptions
from competition.pipeline.ensembling.direct import DIRECT_METHODS
from competition.pipeline.ensembling.library import load_library
from competition.pipeline.ensembling.methods import METHODS
from competition.pipeline.ensembling.table import format_modalities, format_steps, modality_rows
from competition.pipeline.experiment import skipped_experiments
from competition.pipeline.tracking import start_run

log = logging.getLogger(__name__)


@command
def make(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blend", default="best",
                    help=f"best or one of {list(METHODS)} (mean PCC tasks), {list(DIRECT_METHODS)} (others)")
    ap.add_argument("--name", default=None, help="submission name (default: blend-<method>)")
    ap.add_argument("--exp", nargs="*", default=None, help="experiments to consider (default: all finished)")
    d = CaruanaOptions()
    ap.add_argument("--init", type=int, default=d.init, help="Caruana: start from the n best members")
    ap.add_argument("--max-steps", type=int, default=d.max_steps)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--no-wandb", action="store_true", help="do not record a W&B blend run")
    ap.add_argument("--no-subjects", action="store_true", help="no per-subject post-processing even with a "
                    "subjects file")
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    task, wd, ds = open_dataset(a, check_media=False)
    known = METHODS if task.moment_blends else DIRECT_METHODS
    if a.blend != "best" and a.blend not in known:
        ap.error(f"--blend must be best or one of {list(known)} for task {task.name}, not {a.blend!r}")
    opts = CaruanaOptions(a.init, a.max_steps, seed=a.seed)
    metric = task.metric_name
    remove_orphans(wd.submissions)  # temporary files of a killed run
    known = known_subjects(wd.subjects, ds.units) if task.moment_blends and not a.no_subjects else None
    subjects = None if known is None else known.groups  # per-subject post-processing: clip tasks only
    lib = load_library(wd.oof, ds, a.exp, task, subjects)
    print(f"library ({len(lib.names)} experiments, {len(lib.ids)} OOF samples, {len(lib.test_ids)} Test samples): "
          + ", ".join(f"{n} [{lib.modalities.get(n, '?')}] {s:.4f}"
                      for n, s in sorted(lib.scores.items(), key=lambda x: -x[1])))
    skipped = skipped_experiments(wd.oof, ds.fingerprint)
    for n, why in skipped.items():
        print(f"not in the library: {n} was skipped on this dataset ({why['reason']})")
    if subjects is not None:
        print(f"subjects from {wd.subjects}: per-subject post-processing is a candidate")
    grouped = grouping(wd.folds)
    print(f"folds: {grouped['line']}")
    if grouped["kind"] == "none":
        log.warning("the folds are NOT grouped by subject: a person can be on both sides of a split, so every "
                    "nested score below is optimistic for people the models never saw")
    cv = nested_cv(lib, task, opts)
    evals = evaluate(cv, a.blend)
    chosen = choose(evals, a.blend)
    print(f"\nin-sample vs nested CV (nested over {cv.note}):")
    print(comparison_table(evals, chosen.method, metric))
    print(f"\n{chosen.method} (in-sample steps):")
    print(format_steps(chosen.blender.steps, metric, lib.modalities))
    print("\nby modality (weight in the chosen blend):")
    print(format_modalities(modality_rows(chosen.blender.names, chosen.blender.weights, lib.scores, lib.modalities),
                            metric))
    card = build_card(lib, cv, evals, chosen, a.blend, opts, metric)
    card["skipped_experiments"] = skipped
    card["folds_grouped_by"] = {k: v for k, v in grouped.items() if k != "line"}
    print(f"\n{card['verdict']}")

    name = a.name or f"blend-{chosen.method}"
    wd.submissions.mkdir(parents=True, exist_ok=True)
    pred = chosen.blender.apply(lib.test, lib.test_subjects)
    path = task.write_submission(wd.submissions / name, ds, lib.test_ids, pred)
    card = {"name": name, "task": task.name, **card, "dataset": ds.fingerprint, "submission": path.name,
            "zip": path.with_suffix(".zip").name}
    write_json(wd.submissions / f"{name}.json", card)
    with start_run("blend", "blend", name, {"requested": a.blend, "task": task.name, **asdict(opts),
                                            "members": lib.names}, wd.root, no_wandb=a.no_wandb) as run:
        run.summary({"method": chosen.method, f"nested_{metric}": chosen.nested,
                     f"in_sample_{metric}": chosen.in_sample,
                     **{f"nested/{m}": ev.nested for m, ev in evals.items()},
                     **{f"in_sample/{m}": ev.in_sample for m, ev in evals.items()}})
    problems = task.check_submission(path, ds)
    for p in problems:
        log.error("%s", p)
    print(f"wrote {path} ({len(lib.test_ids)} Test samples), {path.with_suffix('.zip').name}, card {name}.json")
    print(f"claimed {card[f'claimed_{metric}']:.4f} (nested, the choice of {chosen.method}+{chosen.post} included; "
          f"its own nested {chosen.nested:.4f}, in-sample {chosen.in_sample:.4f}) on folds {grouped['line']}")
    return 1 if problems else 0


@command
def check(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m competition.submission check",
                                 description="validate a submission against a dataset's Test split")
    ap.add_argument("file", type=Path)
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    task, _, ds = open_dataset(a, check_media=False)
    problems = task.check_submission(a.file, ds)
    for p in problems:
        print(p)
    print(f"{a.file}: {'INVALID' if problems else 'OK'} ({len(ds.test_ids)} Test samples expected)")
    return 1 if problems else 0


@command
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:
        return check(argv[1:])
    return make(argv[1:] if argv[:1] == ["make"] else argv)


if __name__ == "__main__":
    sys.exit(main())
