"""Choosing the default experiment set on real and embedded data together (issue 14; docs/RESULTS_REAL.md,
section 'Default set on real and embedded data').

    python bench/real_defaults.py --embedded-workdir . --real-data DIR --real-workdir W [--sets NAME ...]

Both work directories must hold the finished experiments (every fold). The real corpus is one made by
`python -m competition.data.importer` (speaker-held-out Test, truth in import_truth.csv) with folds grouped
by speaker. For every candidate set, on each dataset: `make_submission.py --blend best --exp <the set's
experiments finished there>` (nested CV score from its card), and on the real corpus the held-out-speaker
Test score of that submission (competition.data.heldout). Experiments a dataset skipped (face-only ones on a
faceless corpus) are simply not in its library. Prints one markdown table; the set to ship is the one with
the best mean of the two nested scores.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from competition import submission  # noqa: E402
from competition.data.heldout import heldout_score  # noqa: E402
from competition.pipeline.experiment import experiment_modality  # noqa: E402

CURRENT = ["ridge_audio", "ridge_appearance", "gbm_appearance", "te_appearance", "attn_fusion"]
# the pooled part of the current set (what the shared machine could re-run for this benchmark)
BASE = ["ridge_audio", "ridge_appearance", "gbm_appearance"]
CHOSEN = BASE + ["svr_audio", "te_logmel", "lstm_head_egemaps_lld"]
SETS: dict[str, list[str]] = {
    "current (embedded-only choice)": CURRENT,
    "chosen = base + svr_audio + te_logmel + lstm_head_egemaps_lld": CHOSEN,
    "chosen + te_appearance": CHOSEN + ["te_appearance"],
    "current - attn_fusion + svr_audio + te_logmel": BASE + ["te_appearance", "svr_audio", "te_logmel"],
    "current + svr_audio + te_logmel": CURRENT + ["svr_audio", "te_logmel"],
    "base": BASE,
    "base + svr_audio": BASE + ["svr_audio"],
    "base + te_logmel": BASE + ["te_logmel"],
    "base + svr_audio + te_logmel": BASE + ["svr_audio", "te_logmel"],
    "base + gbm_audio + te_logmel": BASE + ["gbm_audio", "te_logmel"],
    "base + svr_audio + lstm_head_egemaps_lld": BASE + ["svr_audio", "lstm_head_egemaps_lld"],
    "base + svr_audio + gbm_audio + te_logmel + lstm_head_egemaps_lld":
        BASE + ["svr_audio", "gbm_audio", "te_logmel", "lstm_head_egemaps_lld"],
}


def finished(workdir: Path, names: list[str]) -> list[str]:
    return [n for n in names if (workdir / "oof" / n / "metrics.json").exists()]


def blend_set(data: Path, workdir: Path, names: list[str], tag: str) -> dict:
    """--blend best over `names` on one dataset: its card (nested score, members, modality weights)."""
    with contextlib.redirect_stdout(io.StringIO()):
        rc = submission.main(["--blend", "best", "--data", str(data), "--workdir", str(workdir), "--exp", *names,
                         "--name", f"bench-{tag}", "--no-wandb"])
    if rc:
        raise SystemExit(f"blend of {names} on {data} failed its submission check")
    return json.loads((workdir / "submissions" / f"bench-{tag}.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedded-workdir", type=Path, default=Path("."))
    ap.add_argument("--embedded-data", type=Path, default=None, help="default: <embedded-workdir>/data/embedded")
    ap.add_argument("--real-data", type=Path, required=True)
    ap.add_argument("--real-workdir", type=Path, required=True)
    ap.add_argument("--sets", nargs="*", default=None, help="names of SETS to evaluate (default: all)")
    a = ap.parse_args(argv)
    emb_data = a.embedded_data or a.embedded_workdir / "data" / "embedded"
    rows = []
    for i, (name, members) in enumerate(SETS.items()):
        if a.sets and name not in a.sets:
            continue
        missing = [n for n in members if n not in finished(a.embedded_workdir, members)]
        real = finished(a.real_workdir, members)
        if missing or not real:
            print(f"skip set {name!r}: not finished on the embedded set: {missing}" if missing else
                  f"skip set {name!r}: nothing finished on the real corpus", file=sys.stderr)
            continue
        emb = blend_set(emb_data, a.embedded_workdir, members, f"set{i}")
        rc = blend_set(a.real_data, a.real_workdir, real, f"set{i}")
        held = heldout_score(a.real_workdir / "submissions" / rc["submission"], a.real_data)["mean_pcc"]
        rows.append({"set": name, "emb": emb["nested_oof_mean_pcc"], "real": rc["nested_oof_mean_pcc"],
                     "held": held, "emb_members": emb["members"], "real_members": rc["members"],
                     "not_on_real": [n for n in members if n not in real]})
    rows.sort(key=lambda r: -(r["emb"] + r["real"]))
    print("| candidate set | nested, embedded | nested, EmoDB | mean | held-out speakers (EmoDB Test) | "
          "blend members, embedded | blend members, EmoDB | not in the EmoDB library |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['emb']:.4f} | {r['real']:.4f} | {(r['emb'] + r['real']) / 2:.4f} | {r['held']:.4f} | "
              f"{', '.join(r['emb_members'])} | {', '.join(r['real_members'])} | "
              f"{', '.join(r['not_on_real']) or '–'} |")
    print("\nsingle experiments (OOF mean PCC; held-out-speaker Test of their fold-averaged Test predictions):")
    print("| experiment | modality | OOF, embedded | OOF, EmoDB (speaker-grouped) | held-out speakers (EmoDB Test) |")
    print("|---|---|---|---|---|")
    done = {d.parent.name for wd in (a.embedded_workdir, a.real_workdir) for d in (wd / "oof").glob("*/metrics.json")}
    for n in sorted(done | {n for m in SETS.values() for n in m}):
        cells = []
        for wd in (a.embedded_workdir, a.real_workdir):
            p = wd / "oof" / n / "metrics.json"
            cells.append(f"{json.loads(p.read_text())['oof_mean_pcc']:.4f}" if p.exists() else "–")
        t = a.real_workdir / "oof" / n / "test.csv"
        held = f"{heldout_score(t, a.real_data)['mean_pcc']:.4f}" if t.exists() else "–"
        print(f"| {n} | {experiment_modality(a.embedded_workdir / 'oof' / n)} | {cells[0]} | {cells[1]} | {held} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
