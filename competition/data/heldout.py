"""Score a submission on an imported corpus's held-out Test clips, from the importer's truth file.
More: docs/IMPORT.md, "Held-out score: heldout.py"."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from competition.core.io import read_json
from competition.data.contract import ID_COL, SPLIT_COL, SUBJECT_COL, DataError, normalise_id
from competition.data.importer import TRUTH_CSV
from competition.core.log import command, parse_and_log
from competition.core.metrics import score_report


def heldout_score(submission: Path | str, data: Path | str) -> dict:
    """score_report (mean_pcc, per-emotion pcc, ...) of a submission CSV against DIR/import_truth.csv's
    Test rows; DataError if the truth file is missing or the submission misses Test clips or emotions."""
    submission, truth_path = Path(submission), Path(data) / TRUTH_CSV
    if not truth_path.exists():
        raise DataError(f"{truth_path}: no truth file (only datasets made by competition.data.importer have one)")
    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False)  # a subject named NA is a name
    truth = truth[truth[SPLIT_COL] == "Test"]
    truth.index = truth[ID_COL].map(normalise_id)
    emotions = [c for c in truth.columns if c not in {ID_COL, SPLIT_COL, SUBJECT_COL, "source"}]
    sub = pd.read_csv(submission, dtype={ID_COL: str})
    sub.index = sub[ID_COL].map(normalise_id)
    missing_cols = [e for e in emotions if e not in sub.columns]
    missing_ids = sorted(set(truth.index) - set(sub.index))
    if missing_cols or missing_ids:
        raise DataError(f"{submission}: misses emotion column(s) {missing_cols} and/or {len(missing_ids)} Test "
                        f"clip(s) of {truth_path}, e.g. {missing_ids[:5]}")
    y = truth[emotions].apply(pd.to_numeric).to_numpy(float)
    rep = score_report(sub.loc[truth.index, emotions].to_numpy(float), y, emotions)
    if SUBJECT_COL in truth.columns:
        rep["subjects"] = sorted(truth[SUBJECT_COL].unique())
    return rep


@command
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("submission", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    a = parse_and_log(ap, argv)
    rep = heldout_score(a.submission, a.data)
    who = f" (held-out subjects {', '.join(rep['subjects'])})" if "subjects" in rep else ""
    print(f"{a.submission}: Test mean PCC {rep['mean_pcc']:.4f} on {rep['n']} clips{who}")
    print("  " + " ".join(f"{e}={v:.3f}" for e, v in rep["pcc"].items()))
    card_path = a.submission.with_suffix(".json")
    card = read_json(card_path) if card_path.exists() else {}
    if "claimed_mean_pcc" in card:
        claimed, grouped = card["claimed_mean_pcc"], card.get("folds_grouped_by", {})
        print(f"  {'claimed (nested, choice included)':<36} {'held-out Test':>13} {'held-out - claimed':>19}")
        print(f"  {claimed:<36.4f} {rep['mean_pcc']:>13.4f} {rep['mean_pcc'] - claimed:>+19.4f}")
        how = ("NOT grouped by subject" if grouped.get("kind") == "none" else
               f"grouped by {grouped.get('kind', '?')} subjects ({grouped.get('n_groups')} groups)")
        print(f"  claimed on {grouped.get('n_folds', '?')} folds {how} ({card_path.name})")
    else:
        print(f"  no card {card_path.name} with a claimed score beside the submission (make_submission writes one)")


if __name__ == "__main__":
    raise SystemExit(main())
