"""`python make_submission.py --blend ...` end to end on finished experiments written through the real
experiment contract: official CSV, zip, card, nested-CV choice and the single-model fallback."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_blend_library import make_library

from competition.submission import make as main
from competition.data.submission_format import check_submission

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_artifacts.py"


def run(ds, wd, *args) -> int:
    return main([*args, "--data", str(ds.root), "--workdir", str(wd.root)])


def test_best_blend_writes_official_files_and_an_honest_card(tmp_path, capsys):
    ds, wd = make_library(tmp_path, {"strong": 0.25, "medium": 0.35, "weak": 0.5, "noise": -1})
    assert run(ds, wd, "--blend", "best") == 0
    out = capsys.readouterr().out
    assert "in-sample" in out and "nested" in out and "mean_pcc" in out
    card_path = next(wd.submissions.glob("*.json"))
    card = json.loads(card_path.read_text())
    csv = wd.submissions / card["submission"]
    assert check_submission(csv, ds) == []
    df = pd.read_csv(csv, dtype={"File_ID": str})
    assert list(df.columns) == ["File_ID", *ds.emotions] and len(df) == len(ds.test_ids)
    assert df.File_ID.is_monotonic_increasing and df.File_ID.str.fullmatch(r"\[\d+\]").all()
    assert all(len(v.split(".")[1]) == 6 for v in csv.read_text().splitlines()[1].split(",")[1:])
    with zipfile.ZipFile(wd.submissions / card["zip"]) as zf:
        assert zf.namelist() == [csv.name]
    # every method reported with both scores, and `best` is the best nested one
    assert set(card["methods"]) >= {"best_single", "caruana", "caruana_per_emotion", "nnls", "rank_mean"}
    assert card["nested_oof_mean_pcc"] == max(m["nested"] for m in card["methods"].values())
    assert card["method"] in card["methods"] and card["requested"] == "best"
    for key in ("members", "weights_by_target", "in_sample_oof_mean_pcc", "commit", "verdict", "steps"):
        assert key in card
    assert card["commit"] and card["nested_per_fold"] and "noise" not in card["members"]
    # three members with independent errors: a blend beats the best single model under nested CV
    assert card["beats_best_single"] and card["method"] != "best_single"
    assert card["nested_oof_mean_pcc"] > card["best_single"]["nested_oof_mean_pcc"]
    assert card["best_single"]["member"] == "strong"
    # the CSV is the blend the card describes, recomputed from the experiments' test.csv
    tests = {n: pd.read_csv(wd.oof / n / "test.csv", dtype={"File_ID": str}).set_index("File_ID")
             for n in card["members"]}
    if card["transform"] == "raw" and card["post"] == "none":
        for t in ds.emotions:
            want = sum(w * tests[n][t] for n, w in card["weights_by_target"][t].items())
            assert np.allclose(df.set_index("File_ID")[t], want.loc[df.File_ID], atol=2e-6)
    if CHECKER.exists():
        res = subprocess.run([sys.executable, str(CHECKER), str(wd.root), "--data", str(ds.root),
                              "--what", "submission,oof"], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr


def test_best_falls_back_to_the_single_model_when_no_blend_beats_it(tmp_path, capsys):
    ds, wd = make_library(tmp_path, {"good": 0.3, **{f"noise{i}": -(i + 1) / 10 for i in range(5)}})
    assert run(ds, wd, "--blend", "best") == 0
    card = json.loads((wd.submissions / "blend-best_single.json").read_text())
    assert card["method"] == "best_single" and card["members"] == ["good"]
    assert not card["beats_best_single"] and "the submission is the single model good" in card["verdict"]
    assert card["nested_oof_mean_pcc"] >= max(m["nested"] for m in card["methods"].values())
    assert "the single model good" in capsys.readouterr().out
    assert run(ds, wd, "--blend", "mean", "--name", "my_mean") == 0
    card = json.loads((wd.submissions / "my_mean.json").read_text())
    assert card["method"] == "mean" and set(card["methods"]) == {"best_single", "mean"}
    assert not card["beats_best_single"] and "does NOT beat" in card["verdict"]
    assert card["in_sample_oof_mean_pcc"] < card["best_single"]["in_sample_oof_mean_pcc"]


def test_explicit_method_and_its_table(tmp_path, capsys):
    ds, wd = make_library(tmp_path, {"strong": 0.25, "medium": 0.35})
    assert run(ds, wd, "--blend", "caruana", "--name", "car", "--init", "2", "--max-steps", "0") == 0
    out = capsys.readouterr().out
    card = json.loads((wd.submissions / "car.json").read_text())
    assert [s["member"] for s in card["steps"]] == ["strong", "medium"]
    assert card["weights"] == {"medium": 0.5, "strong": 0.5}
    assert "+ medium" in out and "weight" in out and "gain" in out
    with pytest.raises(SystemExit):
        run(ds, wd, "--blend", "magic")


def test_unfinished_experiment_is_refused_with_a_message(tmp_path, capsys):
    ds, wd = make_library(tmp_path, {"strong": 0.25, "medium": 0.35})
    (wd.oof / "medium" / "metrics.json").unlink()
    assert run(ds, wd, "--blend", "best", "--exp", "strong", "medium") == 2
    assert "OOF incomplete" in capsys.readouterr().err


def test_the_card_says_how_the_folds_were_grouped_and_what_is_claimed(tmp_path, capsys):
    from competition.core.io import read_json, write_json
    ds, wd = make_library(tmp_path, {"strong": 0.25, "medium": 0.35})
    assert run(ds, wd, "--blend", "best", "--name", "plain") == 0
    captured = capsys.readouterr()
    card = json.loads((wd.submissions / "plain.json").read_text())
    assert card["folds_grouped_by"]["kind"] == "none"
    assert "NOT grouped by subject" in captured.out and "WARNING" in captured.err
    assert set(card["chosen_per_fold"]) == {"0", "1", "2", "3"}
    assert f"claimed {card['claimed_mean_pcc']:.4f}" in captured.out
    meta = read_json(wd.folds.with_suffix(".json"))
    meta["groups"] = {"source": "subjects", "subject_source": "estimated:face_identity+scene", "n_groups": 31}
    write_json(wd.folds.with_suffix(".json"), meta)
    assert run(ds, wd, "--blend", "best", "--name", "grouped") == 0
    captured = capsys.readouterr()
    card = json.loads((wd.submissions / "grouped.json").read_text())
    assert card["folds_grouped_by"] == {"kind": "estimated", "n_groups": 31, "n_folds": 4, "fallback": None,
                                        "source": "estimated:face_identity+scene"}
    assert "grouped by estimated subjects (estimated:face_identity+scene, 31 groups)" in captured.out
    assert "WARNING" not in captured.err
