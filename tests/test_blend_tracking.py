"""make_submission records a W&B `blend` run (offline by default) with the chosen method and scores."""
import json

import pytest
from test_blend_library import make_library
from test_tracking import finished_run_named, offline_runs

from competition.submission import make as main


def test_blend_run_is_logged_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    ds, wd = make_library(tmp_path, {"strong": 0.25, "medium": 0.35})
    assert main(["--blend", "best", "--name", "sub1", "--data", str(ds.root), "--workdir", str(wd.root)]) == 0
    logged = finished_run_named(wd.root, "sub1")
    card = json.loads((wd.submissions / "sub1.json").read_text())
    assert (logged.group, logged.job_type) == ("blend", "blend")
    assert logged.summary["method"] == card["method"]
    assert logged.summary["nested_mean_pcc"] == pytest.approx(card["nested_oof_mean_pcc"])
    assert set(logged.config["members"]) == {"strong", "medium"}


def test_no_wandb_flag_logs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    ds, wd = make_library(tmp_path, {"strong": 0.25, "medium": 0.35})
    assert main(["--no-wandb", "--data", str(ds.root), "--workdir", str(wd.root)]) == 0
    assert offline_runs(wd.root) == []
