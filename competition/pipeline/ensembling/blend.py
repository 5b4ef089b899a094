"""Choose a blend of finished experiments, judged by nested CV (the submission command is
`python make_submission.py`, competition/submission.py).
More: docs/PIPELINE.md, "Choosing the blend: blend.py"."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict

import numpy as np
from tqdm.auto import tqdm

from competition.pipeline.ensembling.caruana import CaruanaOptions
from competition.pipeline.ensembling.direct import DirectNestedCV
from competition.pipeline.ensembling.library import Library
from competition.pipeline.ensembling.nested import Evaluation, NestedCV, pick_post
from competition.pipeline.ensembling.table import modality_rows
from competition.core.log import progress_disabled
from competition.core.provenance import git_commit
from competition.data.task import Task

BASELINE = "best_single"


def nested_cv(lib: Library, task: Task, opts: CaruanaOptions) -> NestedCV | DirectNestedCV:
    """The fast moment-based blends for mean PCC, direct scoring of the task metric otherwise."""
    return NestedCV(lib, opts=opts) if task.moment_blends else DirectNestedCV(lib, task.score, opts=opts)


def evaluate(cv: NestedCV | DirectNestedCV, requested: str) -> dict[str, Evaluation]:
    """All methods for `best`, else the requested one and the single-model baseline."""
    if requested != "best" and requested not in cv.methods:
        raise ValueError(f"unknown blend method {requested!r}; known: best or one of {list(cv.methods)}")
    methods = list(cv.methods) if requested == "best" else list(dict.fromkeys([BASELINE, requested]))
    return {m: cv.evaluate(m) for m in tqdm(methods, desc="blend methods", unit="method", leave=False,
                                         disable=progress_disabled())}


def pick_method(nested: dict[str, float]) -> str:
    """The best nested score; ties go to the simpler method (the method lists start with best_single)."""
    order = list(nested)
    return max(order, key=lambda m: (round(nested[m], 10), -order.index(m)))


def choose(evals: dict[str, Evaluation], requested: str) -> Evaluation:
    """The requested method, or for `best` the best nested score."""
    return evals[requested if requested != "best" else pick_method({m: ev.nested for m, ev in evals.items()})]


def choice_score(cv: NestedCV | DirectNestedCV, evals: dict[str, Evaluation], requested: str
                 ) -> tuple[float, dict[int, str]]:
    """(score, fold -> chosen 'method+post'): for each fold, the choice `choose` makes (method for `best`,
    and its post-processing) made on the held-out predictions of the other folds only, scored on the
    fold's held-out predictions of that choice; pooled over folds like the nested score."""
    y, blocks = cv.lib.y, cv.blocks
    candidates = evals if requested == "best" else {requested: evals[requested]}
    pred, chosen = np.empty_like(y), {}
    for k in np.unique(blocks):
        rest = blocks != k
        posts = {m: pick_post({p: cv.score(h[rest], y[rest]) for p, h in ev.held.items()})
                 for m, ev in candidates.items()}
        m = pick_method({m: cv.score(candidates[m].held[posts[m]][rest], y[rest]) for m in candidates})
        pred[~rest] = candidates[m].held[posts[m]][~rest]
        chosen[int(k)] = f"{m}+{posts[m]}"
    return cv.score(pred, y), chosen


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
    claim, per_fold = choice_score(cv, evals, requested)
    n_candidates = sum(len(ev.held) for m, ev in evals.items() if requested == "best" or m == requested)
    return {
        f"claimed_{metric}": claim,
        "claim": (f"nested CV with the choice among {n_candidates} candidates (method x post-processing) made "
                  "without the fold it is scored on"),
        "chosen_per_fold": {str(k): v for k, v in per_fold.items()},
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
        "caveat": (f"nested_oof_{metric} is the chosen candidate's own nested score: picking it among the others "
                   f"is a selection, which claimed_{metric} accounts for"),
        "methods": {m: {"in_sample": ev.in_sample, "nested": ev.nested, "post": ev.post,
                        "by_post": {p: {"in_sample": s[0], "nested": s[1]} for p, s in ev.by_post.items()}}
                    for m, ev in evals.items()},
        "steps": [asdict(s) for s in b.steps],
        f"member_oof_{metric}": lib.scores, "member_modality": lib.modalities,
        "by_modality": modality_rows(b.names, b.weights, lib.scores, lib.modalities),
        "targets": lib.targets, "caruana_options": asdict(opts),
        "folds_fingerprint": lib.folds_fingerprint, "commit": git_commit(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
