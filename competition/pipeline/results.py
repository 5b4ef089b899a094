"""The results table of every finished experiment (docs/RESULTS.md); hand-written text after the line
`<!-- notes -->` is kept when it is regenerated."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from competition.data.contract import DataError
from competition.pipeline.experiment import experiment_modality
from competition.core.io import read_json, write_text
from competition.core.log import command, parse_and_log
from competition.core.paths import REPO_ROOT
from competition.data.task import ERI, Task, add_dataset_arguments, get_task


@dataclass
class Row:
    experiment: str
    model: str
    modality: str          # what it reads: face, audio, face+audio (features.presence.modality_label)
    score: float
    per_target: dict[str, float]
    seconds_per_fold: float | None
    fit_seconds_per_fold: float | None


def _mean_seconds(metrics: dict, key: str) -> float | None:
    vals = [f.get("seconds", {}).get(key) for f in metrics.get("folds", {}).values()]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def collect(oof_dir: Path, fingerprint: str | None, task: Task = ERI) -> tuple[list[Row], list[str]]:
    """Rows of the experiments made on the dataset `fingerprint` (all if None), and the names skipped."""
    rows, skipped = [], []
    for path in sorted(Path(oof_dir).glob("*/metrics.json")):
        m = read_json(path)
        if fingerprint is not None and m.get("dataset") != fingerprint:
            skipped.append(path.parent.name)
            continue
        rows.append(Row(m["experiment"], m["model"], experiment_modality(path.parent),
                        float(m[f"oof_{task.metric_name}"]),
                        m[f"oof_{task.per_target_key}"], _mean_seconds(m, "total"), _mean_seconds(m, "fit")))
    rows.sort(key=lambda r: -r.score)
    return rows, skipped


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def render(rows: list[Row], emotions: list[str], ceiling: dict | None, data_label: str,
           skipped: list[str], task: Task = ERI) -> str:
    metric = task.metric_label
    head = ["experiment", "model", "modality", f"OOF {metric}", "of ceiling", *emotions, "s/fold", "fit s/fold"]
    title = "# Results" if task.name == "eri" else f"# Results: {task.name}"
    lines = [title, "",
             f"Out-of-fold (OOF) scores of every finished experiment on {data_label}, best first. "
             "Regenerate with `python -m competition.pipeline.results"
             f"{'' if task.name == 'eri' else ' --task ' + task.name}` "
             "(see its --help).", "",
             "- modality: what the experiment reads (face, audio or both).",
             f"- OOF {metric}: the official metric on the held-out predictions of all folds together.",
             f"- of ceiling: OOF {metric} / the oracle's (the synthetic generator's noise-free labels "
             "against the written labels), when the data has one.",
             "- s/fold: wall-clock seconds per fold on this machine (feature loading/extraction + fit + "
             "predict), mean over folds; fit s/fold: the fit alone.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def line(name: str, model: str, modality: str, mean: float, pcc: dict, secs: float | None,
             fit: float | None) -> str:
        frac = mean / ceiling["score"] if ceiling and ceiling["score"] else None
        cells = [name, model, modality, _num(mean), _num(frac, ".0%") if frac is not None else "–",
                 *[_num(pcc.get(e)) for e in emotions], _num(secs, ".1f"), _num(fit, ".1f")]
        return "| " + " | ".join(cells) + " |"

    if ceiling:
        lines.append(line("*oracle ceiling*", "truth", "–", ceiling["score"], ceiling["per_target"], None, None))
    for r in rows:
        lines.append(line(r.experiment, r.model, r.modality, r.score, r.per_target, r.seconds_per_fold,
                          r.fit_seconds_per_fold))
    if task.metric_name != "macro_f1":  # a constant class is not 0 macro-F1
        lines.append(line("*constant predictor*", "constant", "–", 0.0, {e: 0.0 for e in emotions}, None, None))
    best = {}
    for r in rows:  # rows are best first
        best.setdefault(r.modality, r)
    if len(best) > 1:
        lines += ["", "Best per modality: " + ", ".join(f"{m} {r.experiment} {_num(r.score)}" for m, r in best.items())
                  + "."]
    if skipped:
        lines += ["", f"Not shown (made on another dataset): {', '.join(skipped)}."]
    return "\n".join(lines) + "\n"


NOTES_MARKER = "<!-- notes -->"


def kept_notes(path: Path) -> str:
    """The hand-written part of an existing results file: from NOTES_MARKER on ('' if none)."""
    if not path.exists():
        return ""
    text = path.read_text()
    i = text.find(NOTES_MARKER)
    return "" if i < 0 else "\n" + text[i:]


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help="default: docs/RESULTS.md (eri), docs/RESULTS_<TASK>.md (other tasks)")
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    task = get_task(a.task)
    out = a.out or REPO_ROOT / "docs" / ("RESULTS.md" if task.name == "eri" else f"RESULTS_{task.name.upper()}.md")
    wd = task.workdir(a.workdir, a.data)
    data = a.data or wd.embedded_data
    try:
        ds = task.load(data, check_media=False)
    except DataError:
        ds = None
    rows, skipped = collect(wd.oof, ds.fingerprint if ds else None, task)
    targets = ds.targets if ds else (list(rows[0].per_target) if rows else [])
    label = f"the dataset at `{data}` (fingerprint {ds.fingerprint})" if ds else "all datasets"
    table = render(rows, targets, task.oracle_ceiling(data), label, skipped, task)
    write_text(out, table + kept_notes(out))
    print(f"wrote {out}: {len(rows)} experiment(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
