"""One HTML page with PNG figures about a work directory (leaderboard, blends, predictions, labels,
tuning): <workdir>/reports/index.html (docs/TUNING.md, "Report")."""
from __future__ import annotations

import argparse
import html
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["axes.titlesize"] = 9
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from competition.data.contract import Dataset  # noqa: E402
from competition.pipeline.ensembling.caruana import caruana_select  # noqa: E402
from competition.pipeline.ensembling.library import finished_experiments, load_library  # noqa: E402
from competition.pipeline.experiment import experiment_modality, read_predictions, skipped_experiments  # noqa: E402
from competition.core.io import read_json, write_text  # noqa: E402
from competition.core.log import command, parse_and_log  # noqa: E402
from competition.core.metrics import pcc_per_column  # noqa: E402
from competition.pipeline.study_storage import DEFAULT_STORAGE, open_storage  # noqa: E402
from competition.data.task import add_dataset_arguments, open_dataset  # noqa: E402

N_LEVELS = 10  # seed 001 quantises intensities into 10 levels
TRUTH_JSON = "synth_truth.json"


def quantise(x: np.ndarray, levels: int = N_LEVELS) -> np.ndarray:
    """[0, 1] -> level 0..levels-1 (1.0 falls in the top level)."""
    return np.clip(np.floor(np.asarray(x) * levels), 0, levels - 1).astype(int)


def confusion(true: np.ndarray, pred: np.ndarray, levels: int = N_LEVELS) -> np.ndarray:
    """Row-normalised (levels, levels) matrix: row = true level, column = predicted level."""
    m = np.zeros((levels, levels))
    np.add.at(m, (quantise(true, levels), quantise(pred, levels)), 1)
    rows = m.sum(1, keepdims=True)
    return np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)


def oracle_ceiling(ds: Dataset) -> dict | None:
    """The embedded synthetic set's oracle ceiling (mean_pcc, pcc per emotion), None for real data."""
    p = ds.root / TRUTH_JSON
    return read_json(p).get("oracle_ceiling") if p.exists() else None


# ---- figures ----

def _grid(n: int, size: float = 2.6) -> tuple[plt.Figure, np.ndarray]:
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def _save(fig: plt.Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def fig_leaderboard(rows: list[dict], ceiling: dict | None, path: Path) -> str:
    rows = rows[::-1]  # best at the top
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    y = np.arange(len(rows))
    ax.barh(y, [r["oof_mean_pcc"] for r in rows], color="#4c78a8", label="OOF mean PCC")
    for i, r in enumerate(rows):
        folds = list(r["fold_mean_pcc"].values())
        ax.plot(folds, [i] * len(folds), "k|", ms=12, label="fold scores" if i == 0 else None)
    if ceiling:
        ax.axvline(ceiling["mean_pcc"], color="#e45756", ls="--", label=f"oracle ceiling {ceiling['mean_pcc']:.3f}")
    ax.set_yticks(y, [r["experiment"] for r in rows])
    ax.set_xlabel("mean PCC over emotions")
    ax.axvline(0, color="grey", lw=0.5)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def fig_heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], title: str, path: Path,
                vmin: float = -1, vmax: float = 1, cmap: str = "RdBu_r") -> str:
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 2.5, 0.5 * len(rows) + 1.8))
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)


def fig_scatter(pred: np.ndarray, true: np.ndarray, targets: list[str], path: Path) -> str:
    fig, axes = _grid(len(targets))
    r = pcc_per_column(pred, true)
    for j, (ax, t) in enumerate(zip(axes, targets)):
        ax.scatter(true[:, j], pred[:, j], s=6, alpha=0.5)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6)
        ax.set(xlim=(0, 1), ylim=(0, 1), title=f"{t}  r={r[j]:.2f}", xlabel="true", ylabel="predicted")
    return _save(fig, path)


def fig_confusions(pred: np.ndarray, true: np.ndarray, targets: list[str], path: Path) -> str:
    fig, axes = _grid(len(targets), size=3.0)
    ticks = np.arange(N_LEVELS)
    for j, (ax, t) in enumerate(zip(axes, targets)):
        ax.imshow(confusion(true[:, j], pred[:, j]), cmap="Blues", vmin=0, vmax=1, origin="lower")
        ax.set_xticks(ticks, [f"{k / N_LEVELS:.1f}" for k in ticks], fontsize=5, rotation=90)
        ax.set_yticks(ticks, [f"{k / N_LEVELS:.1f}" for k in ticks], fontsize=5)
        ax.set(title=t, xlabel="predicted level", ylabel="true level")
    return _save(fig, path)


def fig_label_levels(y: np.ndarray, targets: list[str], path: Path) -> str:
    fig, axes = _grid(len(targets))
    for j, (ax, t) in enumerate(zip(axes, targets)):
        counts = np.bincount(quantise(y[:, j]), minlength=N_LEVELS)
        ax.bar(np.arange(N_LEVELS) / N_LEVELS + 0.05, counts, width=0.09, color="#72b7b2")
        ax.set(title=f"{t} (mean {y[:, j].mean():.2f})", xlabel="intensity level", ylabel="clips", xlim=(0, 1))
    return _save(fig, path)


def fig_blend_steps(steps: list[dict], title: str, path: Path) -> str:
    """Blend score after each forward step, annotated with the step's gain; grey = tried, not kept."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    x = np.arange(len(steps))
    scores = [s["score"] for s in steps]
    ax.plot(x, scores, color="#4c78a8", lw=1)
    ax.scatter(x, scores, c=["#4c78a8" if s.get("kept", True) else "#bbbbbb" for s in steps], zorder=3)
    for i, s in enumerate(steps):
        ax.annotate(f"{s['score']:.4f}" + (f" ({s['gain']:+.4f})" if i else ""), (i, s["score"]),
                    textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xticks(x, [f"+{s['member']}" if i else s["member"] for i, s in enumerate(steps)], rotation=30,
                  ha="right", fontsize=7)
    pad = max(0.01, 0.15 * (max(scores) - min(scores)))
    ax.set_ylim(min(scores) - pad, max(scores) + 2 * pad)
    ax.set_xlim(-0.5, len(steps) - 0.5)
    ax.set(ylabel="mean PCC", title=title)
    return _save(fig, path)


def fig_history(study: optuna.Study, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED and t.intermediate_values]
    ax.scatter([t.number for t in done], [t.value for t in done], s=14, label="complete")
    if pruned:
        ax.scatter([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                   marker="x", color="grey", s=14, label="pruned (last report)")
    if done:
        order = sorted(done, key=lambda t: t.number)
        best = np.maximum.accumulate([t.value for t in order])
        ax.step([t.number for t in order], best, where="post", color="#e45756", label="best so far")
    base = next((t for t in done if t.user_attrs.get("baseline")), None)
    if base is not None:
        ax.axhline(base.value, color="k", ls=":", lw=1, label=f"config as written {base.value:.4f}")
    ax.set(xlabel="trial", ylabel="objective (CV mean PCC)", title=study.study_name)
    ax.legend(fontsize=7)
    return _save(fig, path)


def fig_importances(importances: dict[str, float], title: str, path: Path) -> str:
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.4))
    ax.barh(names, [importances[n] for n in names], color="#f58518")
    ax.set(xlabel="importance (fANOVA, normalised)", title=title, xlim=(0, 1))
    return _save(fig, path)


# ---- data gathering ----

@dataclass
class StudyInfo:
    study: optuna.Study
    storage: str


def find_studies(oof_root: Path, extra_storages: list[str]) -> list[StudyInfo]:
    """Every study in the experiments' default storages (oof/*/tune/optuna.journal) and the given ones."""
    specs = [str(p) for p in sorted(Path(oof_root).glob(f"*/{DEFAULT_STORAGE}"))] + list(extra_storages)
    out = []
    for spec in specs:
        st = open_storage(spec)
        for name in optuna.study.get_all_study_names(st.storage):
            out.append(StudyInfo(optuna.load_study(study_name=name, storage=st.storage), st.url))
    return out


def at_edge(trial: optuna.trial.FrozenTrial, margin: float = 0.02) -> list[str]:
    """Numeric params of `trial` within `margin` of an end of their range (log scale when searched so)."""
    out = []
    for name, d in trial.distributions.items():
        if not isinstance(d, (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution)):
            continue
        f = np.log if d.log else float
        pos = (f(trial.params[name]) - f(d.low)) / (f(d.high) - f(d.low))
        if pos < margin or pos > 1 - margin:
            out.append(f"{name}={trial.params[name]:.4g} (range {d.low:g}..{d.high:g})")
    return out


def tuned_vs_untuned(metrics: dict[str, dict], study: optuna.Study) -> str:
    """What tuning bought, in words: inside the study (baseline trial vs best) and, when both were run
    through every fold, the finished experiments <exp> vs <exp>_tuned."""
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not done:
        return "no completed trial yet."
    best = max(done, key=lambda t: t.value)
    base = next((t for t in done if t.user_attrs.get("baseline")), None)
    parts = []
    if base is not None:
        parts.append(f"In the study, the config as written scores {base.value:.4f} and the best trial "
                     f"({best.number}) {best.value:.4f} ({best.value - base.value:+.4f}).")
        if best.number == base.number:
            parts.append("No sampled trial beat the config's own values: the config is already at a good point "
                         "of this search space, or the budget was too small to find a better one.")
    edge = at_edge(best)
    if edge:
        parts.append(f"The best trial sits at the edge of the search space ({', '.join(edge)}): widen the "
                     "range in search_space, the optimum may lie outside it.")
    exp = study.user_attrs.get("experiment")
    a, b = metrics.get(exp or ""), metrics.get(f"{exp}_tuned")
    if a and b:
        diff = np.array([b["fold_mean_pcc"][k] - a["fold_mean_pcc"][k] for k in a["fold_mean_pcc"]
                         if k in b["fold_mean_pcc"]])
        gain = b["oof_mean_pcc"] - a["oof_mean_pcc"]
        verb = "beats" if gain > 0 else "does NOT beat"
        parts.append(f"Run through every fold, {exp}_tuned {verb} {exp}: OOF mean PCC {b['oof_mean_pcc']:.4f} vs "
                     f"{a['oof_mean_pcc']:.4f} ({gain:+.4f}); per-fold differences {diff.mean():+.4f} ± "
                     f"{diff.std():.4f} ({int((diff > 0).sum())} of {len(diff)} folds better).")
        if abs(gain) < max(a["fold_mean_pcc_std"], 1e-12):
            parts.append(f"The difference is smaller than the spread of {exp}'s fold scores "
                         f"(std {a['fold_mean_pcc_std']:.4f}): within fold-to-fold noise.")
        parts.append("The tuned values were selected on these same folds, so this gain is optimistic; "
                     "an untouched split (or nested CV) would measure it without that bias.")
    elif exp:
        parts.append(f"Run `bash scripts/run_all.sh {exp}_tuned` to compare the tuned config with {exp} "
                     "over every fold.")
    return " ".join(parts)


# ---- page ----

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:13px}h2{border-bottom:2px solid #4c78a8;padding-bottom:4px;margin-top:2em}"""


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(name: str, alt: str) -> str:
    return f'<p><img src="{html.escape(name)}" alt="{html.escape(alt)}"></p>'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def build_report(ds: Dataset, oof_root: Path, submissions: Path, out: Path,
                 storages: list[str] | None = None) -> Path:
    """Write out/index.html and its figures; return the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    targets = ds.emotions
    ceiling = oracle_ceiling(ds)
    y_all = ds.labels()
    about = f"dataset {ds.root} ({ds.fingerprint}): {len(ds.labelled_ids)} labelled, {len(ds.test_ids)} Test clips"
    parts = [f"<h1>ERI report</h1>{_note(about)}"]

    # leaderboard
    names = finished_experiments(oof_root)
    metrics = {n: read_json(oof_root / n / "metrics.json") for n in names}
    metrics = {n: m for n, m in metrics.items() if m.get("dataset") == ds.fingerprint}
    rows = sorted(metrics.values(), key=lambda m: -m["oof_mean_pcc"])
    parts.append("<h2>Leaderboard</h2>")
    if rows:
        header = ["experiment", "model", "modality", "OOF mean PCC", "fold mean", "fold std", "fold min", "fold max"]
        header += ["% of ceiling"] if ceiling else []
        header += [*targets, "seconds"]
        table = []
        for m in rows:
            f = list(m["fold_mean_pcc"].values())
            r = [m["experiment"], m["model"], experiment_modality(oof_root / m["experiment"]), m["oof_mean_pcc"],
                 float(np.mean(f)), m["fold_mean_pcc_std"],
                 float(min(f)), float(max(f))]
            r += [f"{100 * m['oof_mean_pcc'] / ceiling['mean_pcc']:.1f} %"] if ceiling else []
            r += [m["oof_pcc"][t] for t in targets] + [f"{m.get('seconds_total', 0):.1f}"]
            table.append(r)
        parts.append(_table(header, table))
        if ceiling:
            parts.append(_note(f"Oracle ceiling of the embedded synthetic set (the expected label given the "
                               f"latent intensities, synth_truth.json): mean PCC {ceiling['mean_pcc']:.4f}."))
        parts.append(_img(fig_leaderboard(rows, ceiling, out / "leaderboard.png"), "leaderboard"))
        mat = np.array([[m["oof_pcc"][t] for t in targets] for m in rows])
        labels = [m["experiment"] for m in rows]
        if ceiling:
            mat = np.vstack([mat, [ceiling["pcc"][t] for t in targets]])
            labels.append("oracle ceiling")
        parts.append(_img(fig_heatmap(mat, labels, targets, "OOF PCC per emotion", out / "per_emotion.png"),
                          "per-emotion PCC"))
    else:
        parts.append(_note("No finished experiment on this dataset yet: run every fold, e.g. "
                           "bash scripts/run_all.sh."))
    for name, why in skipped_experiments(oof_root, ds.fingerprint).items():
        parts.append(_note(f"{name} was skipped on this dataset: {why['reason']}"))

    # blends
    parts.append("<h2>Blend: what each model adds</h2>")
    cards = sorted(Path(submissions).glob("*.json")) if Path(submissions).exists() else []
    cards = [(p, read_json(p)) for p in cards]
    cards = [(p, c) for p, c in cards if c.get("dataset") in (None, ds.fingerprint)]
    for i, (p, c) in enumerate(cards):
        parts.append(f"<h3>{html.escape(c.get('name', p.stem))}</h3>")
        if c.get("verdict"):
            parts.append(_note(c["verdict"]))
        if c.get("methods"):
            parts.append(_table(["method", "in-sample OOF mean PCC", "nested CV mean PCC"],
                                [[k, v.get("in_sample", float("nan")), v.get("nested", float("nan"))]
                                 for k, v in c["methods"].items()]))
        if c.get("by_modality"):
            parts.append(_table(["modality", "weight in the blend", "members in the blend", "best single member",
                                 "its OOF mean PCC"],
                                [[r["modality"], r["weight"], ", ".join(r["members_in_blend"]) or "–",
                                  r["best_single"], r["best_single_score"]] for r in c["by_modality"]]))
        if c.get("steps"):
            parts.append(_img(fig_blend_steps(c["steps"], f"{c.get('method', '')} steps (in-sample)",
                                              out / f"blend_{i}.png"), "blend steps"))
    if len(metrics) >= 2 and not any(c.get("steps") for _, c in cards):
        lib = load_library(oof_root, ds, list(metrics))
        sel = caruana_select(lib.names, lib.oof, lib.y)
        steps = [{"member": s.member, "score": s.score, "gain": s.gain, "kept": s.kept} for s in sel.steps]
        parts.append(_note("No blend card with steps found (python make_submission.py --blend best writes one); "
                           "Caruana forward selection recomputed on the finished experiments, in-sample:"))
        parts.append(_img(fig_blend_steps(steps, "Caruana steps (in-sample)", out / "blend_steps.png"),
                          "blend steps"))
    elif not cards:
        parts.append(_note("Blending needs at least two finished experiments."))

    # predictions of the best experiment
    if rows:
        best = rows[0]["experiment"]
        oof = read_predictions(oof_root / best / "oof.csv", targets)
        pred, true = oof.to_numpy(), ds.labels(list(oof.index))
        parts.append(f"<h2>Predictions of {html.escape(best)} (out of fold)</h2>")
        parts.append(_img(fig_scatter(pred, true, targets, out / "scatter.png"), "predicted vs true"))
        parts.append(_note(f"Rows: true intensity level, columns: predicted level ({N_LEVELS} levels of 0.1), "
                           "each row normalised to 1 (seed 001 Figs 2-3)."))
        parts.append(_img(fig_confusions(pred, true, targets, out / "confusion.png"), "confusion matrices"))

    # labels
    parts.append("<h2>Labels</h2>")
    parts.append(_note(f"Quantised intensities of the {len(y_all)} labelled clips (seed 001 Fig 4)."))
    parts.append(_img(fig_label_levels(y_all, targets, out / "label_levels.png"), "label distributions"))
    corr = np.corrcoef(y_all.T) if len(y_all) > 1 else np.eye(len(targets))
    parts.append(_img(fig_heatmap(corr, targets, targets, "correlation between emotions (seed 000 Fig 1)",
                                  out / "label_corr.png"), "label correlation"))

    # tuning
    parts.append("<h2>Tuning</h2>")
    studies = find_studies(oof_root, storages or [])
    if not studies:
        parts.append(_note("No Optuna study found: python -m competition.pipeline.tune EXP --trials N."))
    for i, info in enumerate(studies):
        s = info.study
        states = {st.name: sum(t.state == st for t in s.trials) for st in TrialState if
                  any(t.state == st for t in s.trials)}
        parts.append(f"<h3>{html.escape(s.study_name)}</h3>")
        parts.append(_note(f"storage {info.storage}; trials {states}"))
        parts.append(_note(tuned_vs_untuned(metrics, s)))
        parts.append(_img(fig_history(s, out / f"tune_{i}_history.png"), "optimisation history"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(s)
            parts.append(_img(fig_importances(imp, f"{s.study_name}: parameter importances",
                                              out / f"tune_{i}_importance.png"), "parameter importances"))
        except (RuntimeError, ValueError) as exc:
            parts.append(_note(f"parameter importances not available yet: {exc}"))
    page = out / "index.html"
    write_text(page, f"<!doctype html><html><head><meta charset='utf-8'><title>ERI report</title>"
                     f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    page.chmod(0o644)  # atomic writes create 0600 files; a page is for others to read
    return page


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="output folder (default <workdir>/reports)")
    ap.add_argument("--storage", action="append", default=[], help="extra Optuna storage (repeatable)")
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    if a.task != "eri":
        ap.error("--task eri only: the Aff-Wild2 tasks have their tables from `python -m competition.pipeline.results "
                 "--task va|expr`")
    _, wd, ds = open_dataset(a, check_media=False)
    page = build_report(ds, wd.oof, wd.submissions, a.out or wd.root / "reports", a.storage)
    print(f"wrote {page} ({len(list(page.parent.glob('*.png')))} figures); open it in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
