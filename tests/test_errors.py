"""Loud failures (issue 24): an experiment named with --exp that cannot run, a feature that failed on every
clip, a typo in a config's top-level keys, and every command's expected errors: one line `error: ...`, exit
code 2, a traceback only with -v."""
from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib

import pytest

from competition.data.contract import load_dataset
from competition.folds import make_folds, write_folds
from competition.core.paths import REPO_ROOT, Workdir
from competition.pipeline import run_fold
from competition.pipeline.config import ConfigError, load_config
from tiny_data import write_audio_dataset, write_config


@pytest.fixture
def tiny(tmp_path):
    data = write_audio_dataset(tmp_path / "data", n_train=8, n_val=4, n_test=2, seconds=0.5)  # 0-byte mp4s
    wd = Workdir(tmp_path / "w")
    ds = load_dataset(data)
    write_folds(ds, make_folds(ds, n_folds=2, seed=0), wd.folds, {"n_folds": 2})
    return data, wd


def _run(data, wd, *argv: str) -> int:
    return run_fold.main(["--fold", "0", "--data", str(data), "--workdir", str(wd.root), "--no-wandb", "-q", *argv])


def test_an_experiment_named_with_exp_that_cannot_run_exits_non_zero_with_the_reason(tiny, capsys, monkeypatch):
    data, wd = tiny
    monkeypatch.delenv("ERI_SPEECH_MODEL", raising=False)  # te_wav2vec2 then has no model folder
    assert _run(data, wd, "--exp", "te_wav2vec2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: named with --exp but cannot run on this dataset: te_wav2vec2: ")
    assert "ERI_SPEECH_MODEL" in err[-1]
    # the same experiment in a run that did not name it (the default set) is skipped, with a warning
    assert run_fold.run_fold(load_config("te_wav2vec2"), 0, load_dataset(data), wd, no_wandb=True) is None


def test_a_feature_that_failed_on_every_clip_is_an_error_not_an_absent_face(tiny, capsys):
    data, wd = tiny  # every mp4 is an empty file: the face crops fail on every clip
    cfg = write_config(wd.root / "face_only.yaml", "face_only", features=("pose",))
    assert _run(data, wd, "--exp", str(cfg)) == 2
    err = capsys.readouterr().err
    assert "error: feature faces-" in err and "failed on every one of the 14 clip(s)" in err
    assert "failures.csv" in err and "no face in any clip" not in err
    assert not (wd.experiment("face_only") / "fold_0").exists()


def test_a_typo_in_a_top_level_config_key_is_an_error_naming_it(tiny, tmp_path, capsys):
    bad = write_config(tmp_path / "typo.yaml", "typo")
    bad.write_text(bad.read_text() + "subjct_norm: true\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'subjct_norm' \(did you mean 'subject_norm'\?\)"):
        load_config(bad)
    with pytest.raises(ConfigError, match="unknown key 'sed'"):
        load_config("ridge_audio", ["sed=3"])
    data, wd = tiny
    assert _run(data, wd, "--exp", "ridge_audio", "--set", "subjct_norm=true") == 2
    assert "error: " in capsys.readouterr().err


def test_a_command_error_is_one_line_and_exit_code_2_with_a_traceback_only_under_v(tmp_path):
    argv = [sys.executable, "-m", "competition.folds", "--data", str(tmp_path / "nowhere"), "--workdir", str(tmp_path)]
    res = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert errors == [f"error: {tmp_path / 'nowhere' / 'data_info.csv'}: file not found "
                      "(expected the Hume-Reaction data_info.csv)"]
    res = subprocess.run([*argv, "-v"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert res.returncode != 0 and "Traceback" in res.stderr and "DataError" in res.stderr


def test_every_command_line_tool_reports_errors_the_same_way():
    """Each console script's main is wrapped by competition.core.log.command."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, func = target.split(":")
        assert getattr(getattr(importlib.import_module(module), func), "__wrapped__", None), name
