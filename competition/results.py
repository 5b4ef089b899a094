"""The results table of every finished experiment, written to docs/RESULTS.md:

    python -m competition.results [--workdir W] [--data DIR] [--out docs/RESULTS.md]

One row per experiment directory with a metrics.json made on this dataset: OOF mean PCC, its fraction of
the oracle ceiling (read from <data>/synth_truth.json when the data is the synthetic set), per-emotion
OOF PCC and the wall-clock seconds per fold on this machine (features + fit + predict, mean over folds).
A constant predictor row anchors the table (its correlation is undefined; the metric scores it 0).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from competition.data.contract import load_dataset
from competition.io import read_json, write_text
from competition.paths import REPO_ROOT, Workdir

TRUTH_FILE = "synth_truth.json"


@dataclass
class Row:
    experiment: str
    model: str
    mean_pcc: float
    pcc: dict[str, float]
    seconds_per_fold: float | None
    fit_seconds_per_fold: float | None


def oracle_ceiling(data: Path) -> dict | None:
    """{'mean_pcc': float, 'pcc': {emotion: float}} from the synthetic generator's truth file."""
    path = Path(data) / TRUTH_FILE
    if not path.exists():
        return None
    ceiling = read_json(path).get("oracle_ceiling")
    return ceiling if isinstance(ceiling, dict) and "mean_pcc" in ceiling else None


def _mean_seconds(metrics: dict, key: str) -> float | None:
    vals = [f.get("seconds", {}).get(key) for f in metrics.get("folds", {}).values()]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def collect(oof_dir: Path, fingerprint: str | None) -> tuple[list[Row], list[str]]:
    """Rows of the experiments made on the dataset `fingerprint` (all if None), and the names skipped."""
    rows, skipped = [], []
    for path in sorted(Path(oof_dir).glob("*/metrics.json")):
        m = read_json(path)
        if fingerprint is not None and m.get("dataset") != fingerprint:
            skipped.append(path.parent.name)
            continue
        rows.append(Row(m["experiment"], m["model"], float(m["oof_mean_pcc"]), m["oof_pcc"],
                        _mean_seconds(m, "total"), _mean_seconds(m, "fit")))
    rows.sort(key=lambda r: -r.mean_pcc)
    return rows, skipped


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def render(rows: list[Row], emotions: list[str], ceiling: dict | None, data_label: str,
           skipped: list[str]) -> str:
    head = ["experiment", "model", "OOF mean PCC", "of ceiling", *emotions, "s/fold", "fit s/fold"]
    lines = ["# Results", "",
             f"Out-of-fold (OOF) scores of every finished experiment on {data_label}, best first. "
             "Regenerate with `python -m competition.results` (see its --help).", "",
             "- OOF mean PCC: the official metric on the held-out predictions of all folds together.",
             "- of ceiling: OOF mean PCC / the oracle's mean PCC (the synthetic generator's expected "
             "intensities against the written labels), when the data has one.",
             "- s/fold: wall-clock seconds per fold on this machine (feature loading/extraction + fit + "
             "predict), mean over folds; fit s/fold: the fit alone.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def line(name: str, model: str, mean: float, pcc: dict, secs: float | None, fit: float | None) -> str:
        frac = mean / ceiling["mean_pcc"] if ceiling and ceiling["mean_pcc"] else None
        cells = [name, model, _num(mean), _num(frac, ".0%") if frac is not None else "–",
                 *[_num(pcc.get(e)) for e in emotions], _num(secs, ".1f"), _num(fit, ".1f")]
        return "| " + " | ".join(cells) + " |"

    if ceiling:
        lines.append(line("*oracle ceiling*", "truth", ceiling["mean_pcc"], ceiling.get("pcc", {}), None, None))
    for r in rows:
        lines.append(line(r.experiment, r.model, r.mean_pcc, r.pcc, r.seconds_per_fold, r.fit_seconds_per_fold))
    lines.append(line("*constant predictor*", "constant", 0.0, {e: 0.0 for e in emotions}, None, None))
    if skipped:
        lines += ["", f"Not shown (made on another dataset): {', '.join(skipped)}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None, help="dataset root (default: the embedded dataset)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "RESULTS.md")
    a = ap.parse_args(argv)
    wd = Workdir.of(a.workdir)
    data = a.data or wd.embedded_data
    ds = load_dataset(data) if (Path(data) / "data_info.csv").exists() else None
    rows, skipped = collect(wd.oof, ds.fingerprint if ds else None)
    emotions = ds.emotions if ds else (list(rows[0].pcc) if rows else [])
    label = f"the dataset at `{data}` (fingerprint {ds.fingerprint})" if ds else "all datasets"
    write_text(a.out, render(rows, emotions, oracle_ceiling(data), label, skipped))
    print(f"wrote {a.out}: {len(rows)} experiment(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
