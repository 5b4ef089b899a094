"""Blend finished experiments into an official submission, judged by nested CV.

    python make_submission.py --blend best|METHOD [--name NAME] [--exp EXP ...] [--data DIR] [--task eri|va|expr]

Every method is scored twice: in-sample (fitted and scored on all OOF clips) and nested (fitted on the
other folds, scored on the held-out fold). `best` takes the method with the best nested score; when no
blend beats the best single model there, the single model is the submission and the card says so.
Writes submissions/<name>.csv (+ .zip holding only it) and a JSON card <name>.json. Tasks whose metric
is not mean PCC (VA: CCC, EXPR: macro-F1) blend by scoring their metric directly (direct.py) and write
their own submission format under tasks/<task>/submissions/. With a subjects file in the work directory
(subjects.csv), per-subject post-processing is a candidate too (postprocess.py); --no-subjects leaves it out.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from competition.data.subjects import read_subjects
from competition.ensembling.caruana import CaruanaOptions
from competition.ensembling.direct import DIRECT_METHODS, DirectNestedCV
from competition.ensembling.library import Library, load_library
from competition.ensembling.methods import METHODS
from competition.ensembling.nested import Evaluation, NestedCV
from competition.ensembling.table import format_steps
from competition.provenance import git_commit
from competition.io import remove_orphans, write_json
from competition.paths import Workdir
from competition.task import Task, add_task_argument, get_task
from competition.tracking import start_run

BASELINE = "best_single"


def nested_cv(lib: Library, task: Task, opts: CaruanaOptions) -> NestedCV | DirectNestedCV:
    """The fast moment-based blends for mean PCC, direct scoring of the task metric otherwise."""
    return NestedCV(lib, opts=opts) if task.moment_blends else DirectNestedCV(lib, task.score, opts=opts)


def evaluate(cv: NestedCV | DirectNestedCV, requested: str) -> dict[str, Evaluation]:
    """All methods for `best`, else the requested one and the single-model baseline."""
    if requested != "best" and requested not in cv.methods:
        raise ValueError(f"unknown blend method {requested!r}; known: best or one of {list(cv.methods)}")
    methods = list(cv.methods) if requested == "best" else list(dict.fromkeys([BASELINE, requested]))
    return {m: cv.evaluate(m) for m in tqdm(methods, desc="blend methods", unit="method", leave=False)}


def choose(evals: dict[str, Evaluation], requested: str) -> Evaluation:
    """The requested method, or for `best` the best nested score (ties go to the simpler method; the
    method lists start with best_single)."""
    if requested != "best":
        return evals[requested]
    order = list(evals)
    return max(evals.values(), key=lambda ev: (round(ev.nested, 10), -order.index(ev.method)))


def comparison_table(evals: dict[str, Evaluation], chosen: str, metric: str) -> str:
    lines = [f"  {'method':<20} {'in-sample':>10} {'nested':>8} {'optimism':>9}  {'post':<14} folds "
             f"({metric})"]
    for ev in evals.values():
        folds = " ".join(f"{s:.3f}" for s in ev.nested_per_fold.values())
        mark = "*" if ev.method == chosen else " "
        lines.append(f"{mark} {ev.method:<20} {ev.in_sample:>10.4f} {ev.nested:>8.4f} "
                     f"{round(ev.in_sample - ev.nested, 4) + 0.0:>+9.4f}  {ev.post:<14} {folds}")
    return "\n".join(lines)


def verdict(chosen: Evaluation, baseline: Evaluation, requested: str) -> tuple[bool, str]:
    gain = chosen.nested - baseline.nested
    if chosen.method == BASELINE:
        blends = "no blend method" if requested == "best" else "the requested blend"
        return False, (f"{blends} beats the best single model under nested CV (nested {baseline.nested:.4f}); "
                       f"the submission is the single model {baseline.blender.members[0]}")
    if gain > 0:
        return True, (f"{chosen.method} beats the best single model under nested CV: {chosen.nested:.4f} vs "
                      f"{baseline.nested:.4f} ({gain:+.4f})")
    return False, (f"{chosen.method} does NOT beat the best single model under nested CV: {chosen.nested:.4f} vs "
                   f"{baseline.nested:.4f} ({gain:+.4f}); `--blend best` would fall back to the single model")


def build_card(lib: Library, cv: NestedCV | DirectNestedCV, evals: dict[str, Evaluation], chosen: Evaluation,
               requested: str, opts: CaruanaOptions, metric: str = "mean_pcc") -> dict:
    b = chosen.blender
    beats, note = verdict(chosen, evals[BASELINE], requested)
    return {
        "method": chosen.method, "requested": requested, "post": b.post, "transform": b.transform,
        "members": b.members,
        "weights": ({n: float(w) for n, w in zip(b.names, b.weights[0]) if w > 0} if b.shared else None),
        "weights_by_target": b.weights_by_target(lib.targets),
        f"in_sample_oof_{metric}": chosen.in_sample, f"nested_oof_{metric}": chosen.nested,
        "nested_per_fold": {str(k): v for k, v in chosen.nested_per_fold.items()},
        "nested_over": cv.note,
        "best_single": {"member": evals[BASELINE].blender.members[0],
                        f"in_sample_oof_{metric}": evals[BASELINE].in_sample,
                        f"nested_oof_{metric}": evals[BASELINE].nested},
        "beats_best_single": beats, "verdict": note,
        "caveat": ("picking the best of several methods (and each method's post-processing) by nested score is "
                   "itself a selection: the chosen nested score is slightly optimistic, the more so the closer "
                   "the runners-up"),
        "methods": {m: {"in_sample": ev.in_sample, "nested": ev.nested, "post": ev.post,
                        "by_post": {p: {"in_sample": s[0], "nested": s[1]} for p, s in ev.by_post.items()}}
                    for m, ev in evals.items()},
        "steps": [asdict(s) for s in b.steps],
        f"member_oof_{metric}": lib.scores, "targets": lib.targets, "caruana_options": asdict(opts),
        "folds_fingerprint": lib.folds_fingerprint, "commit": git_commit(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blend", default="best",
                    help=f"best or one of {list(METHODS)} (mean PCC tasks), {list(DIRECT_METHODS)} (others)")
    ap.add_argument("--name", default=None, help="submission name (default: blend-<method>)")
    ap.add_argument("--exp", nargs="*", default=None, help="experiments to consider (default: all finished)")
    ap.add_argument("--data", type=Path, default=None, help="dataset root (default: the embedded dataset)")
    ap.add_argument("--workdir", type=Path, default=None)
    d = CaruanaOptions()
    ap.add_argument("--init", type=int, default=d.init, help="Caruana: start from the n best members")
    ap.add_argument("--max-steps", type=int, default=d.max_steps)
    ap.add_argument("--min-gain", type=float, default=d.min_gain, help="Caruana: smallest gain that counts")
    ap.add_argument("--patience", type=int, default=d.patience)
    ap.add_argument("--bags", type=int, default=d.bags, help="bags of caruana_bagged (0: its default)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--no-wandb", action="store_true", help="do not record a W&B blend run")
    ap.add_argument("--no-subjects", action="store_true", help="no per-subject post-processing even with a "
                    "subjects file")
    add_task_argument(ap)
    a = ap.parse_args(argv)
    task = get_task(a.task)
    known = METHODS if task.moment_blends else DIRECT_METHODS
    if a.blend != "best" and a.blend not in known:
        ap.error(f"--blend must be best or one of {list(known)} for task {task.name}, not {a.blend!r}")
    opts = CaruanaOptions(a.init, a.max_steps, a.min_gain, a.patience, a.bags, seed=a.seed)
    metric = task.metric_name
    wd = Workdir.of(a.workdir, task)
    remove_orphans(wd.submissions)  # temporary files of a killed run
    ds = task.load(a.data or wd.embedded_data, check_media=False)
    use_subjects = wd.subjects.exists() and task.moment_blends and not a.no_subjects  # clip tasks only
    subjects = read_subjects(wd.subjects, ds.units).groups if use_subjects else None
    lib = load_library(wd.oof, ds, a.exp, task, subjects)
    print(f"library ({len(lib.names)} experiments, {len(lib.ids)} OOF samples, {len(lib.test_ids)} Test samples): "
          + ", ".join(f"{n} {s:.4f}" for n, s in sorted(lib.scores.items(), key=lambda x: -x[1])))
    if subjects is not None:
        print(f"subjects from {wd.subjects}: per-subject post-processing is a candidate")
    cv = nested_cv(lib, task, opts)
    evals = evaluate(cv, a.blend)
    chosen = choose(evals, a.blend)
    print(f"\nin-sample vs nested CV (nested over {cv.note}):")
    print(comparison_table(evals, chosen.method, metric))
    print(f"\n{chosen.method} (in-sample steps):")
    print(format_steps(chosen.blender.steps, metric))
    card = build_card(lib, cv, evals, chosen, a.blend, opts, metric)
    print(f"\n{card['verdict']}")

    name = a.name or f"blend-{chosen.method}"
    wd.submissions.mkdir(parents=True, exist_ok=True)
    path = task.write_submission(wd.submissions / name, ds, lib.test_ids, chosen.blender.apply(lib.test, lib.test_subjects))
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
        print(p, file=sys.stderr)
    print(f"wrote {path} ({len(lib.test_ids)} Test samples), {path.with_suffix('.zip').name}, card "
          f"{name}.json; nested {chosen.nested:.4f}, in-sample {chosen.in_sample:.4f}")
    return 1 if problems else 0
