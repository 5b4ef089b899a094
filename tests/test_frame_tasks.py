"""The Aff-Wild2 tasks through the same commands as ERI (`--task va|expr`) on a small synthetic
Aff-Wild2-like set: folds by video -> features -> seed 003/004 models and a ridge baseline -> OOF ->
blend -> official per-frame submission that passes its checker. Scores are recomputed here from the
annotation files with independent formulas (CCC directly, macro-F1 with scikit-learn)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import f1_score

from competition.data.affwild2 import EXPR_CLASSES, load_frame_dataset
from competition.data.synth_affwild2 import generate_affwild2
from competition.submission import make as make_submission
from competition.folds import main as folds_main
from competition.core.io import read_json
from competition.data.task import get_task
from competition.pipeline.run_fold import main as run_fold_main

N_VIDEOS, SEED = 10, 1
FEATURES = ["expression", "pose", {"name": "mfcc", "params": {"n_mfcc": 20, "stack": 4}}]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return generate_affwild2(tmp_path_factory.mktemp("aw2") / "data", n_videos=N_VIDEOS, seed=SEED, jobs=1,
                             duration=(3.0, 4.0))


def _config(path: Path, task: str, name: str, model: str, window: float, **params) -> str:
    cfg = {"name": name, "task": task, "model": model, "features": FEATURES, "seed": 3,
           "window": {"before": window, "after": window}, "train_stride": 2, "params": params}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def _annotations(data: Path, task: str) -> dict[str, list[str]]:
    sub = "VA_Estimation_Challenge" if task == "va" else "EXPR_Recognition_Challenge"
    return {p.stem: p.read_text().splitlines()[1:] for p in sorted((data / "annotations" / sub).rglob("*.txt"))}


def _run(task: str, data: Path, work: Path, configs: list[str]) -> None:
    common = ["--task", task, "--data", str(data), "--workdir", str(work)]
    folds_main([*common, "--n-folds", "3"])
    run_fold_main([*common, "--all-folds", "--exp", *configs, "--jobs", "1", "--no-wandb"])
    assert make_submission([*common, "--no-wandb", "--name", "sub"]) == 0


@pytest.fixture(scope="module")
def va_run(data, tmp_path_factory):
    work = tmp_path_factory.mktemp("va_work")
    cfgs = [_config(work / "va_ridge.yaml", "va", "va_ridge", "ridge", 2.0, alpha=1000.0),
            _config(work / "va_xattn.yaml", "va", "va_xattn", "rnn_xattn", 2.0, grid_len=8, hidden=16,
                    modalities={"face": "expression", "audio": "mfcc", "pose": "pose"}, loss="ccc",
                    epochs=3, batch_size=64, progress=False)]
    _run("va", data, work, cfgs)
    return work


@pytest.fixture(scope="module")
def expr_run(data, tmp_path_factory):
    work = tmp_path_factory.mktemp("expr_work")
    cfgs = [_config(work / "expr_ridge.yaml", "expr", "expr_ridge", "ridge", 1.0, alpha=100.0),
            _config(work / "expr_te.yaml", "expr", "expr_te", "te", 1.0, hidden=16, heads=2, layers=1,
                    max_len=64, modalities={"frames": ["expression", "pose"]}, loss="ce+soft_f1", epochs=3,
                    batch_size=64, progress=False)]
    _run("expr", data, work, cfgs)
    return work


def test_folds_keep_every_video_whole(data, va_run):
    ds = load_frame_dataset(data, "va")
    folds = pd.read_csv(get_task("va").workdir(va_run).folds, dtype=str)
    assert set(folds.File_ID.str.strip("[]")) == set(ds.units.ids)  # one row per video, not per frame
    oof = pd.read_csv(va_run / "tasks" / "va" / "oof" / "va_ridge" / "oof.csv")
    exp = va_run / "tasks" / "va" / "oof" / "va_ridge"
    for k in range(3):
        held = pd.read_csv(exp / f"fold_{k}" / "val.csv").frame_id.str.split("/").str[0]
        trained = {line.split("/")[0] for line in (exp / f"fold_{k}" / "train_ids.txt").read_text().split()}
        assert not set(held) & trained
    assert len(oof) == len(ds.labelled_ids)


def test_va_oof_covers_valid_frames_and_its_ccc_recomputes(data, va_run):
    ann = _annotations(data, "va")
    truth = {f"{name}/{i + 1:05d}": tuple(map(float, line.split(",")))
             for name, lines in ann.items() for i, line in enumerate(lines)}
    valid = {fid: v for fid, v in truth.items() if -5.0 not in v}
    assert len(valid) < len(truth)  # the data has invalid frames, and they must not be scored
    for exp in ("va_ridge", "va_xattn"):
        oof = pd.read_csv(va_run / "tasks" / "va" / "oof" / exp / "oof.csv").set_index("frame_id")
        assert set(oof.index) == set(valid)
        p = oof[["valence", "arousal"]].to_numpy()
        y = np.array([valid[f] for f in oof.index])
        ccc = [2 * np.cov(p[:, j], y[:, j], bias=True)[0, 1]
               / (p[:, j].var() + y[:, j].var() + (p[:, j].mean() - y[:, j].mean()) ** 2) for j in range(2)]
        m = read_json(va_run / "tasks" / "va" / "oof" / exp / "metrics.json")
        assert m["task"] == "va"
        assert m["oof_mean_ccc"] == pytest.approx(np.mean(ccc), abs=1e-9)
        assert (np.abs(p) <= 1).all() and p.std(0).min() > 0


def test_va_submission_has_every_test_frame_and_passes_its_checker(data, va_run):
    task = get_task("va")
    ds = task.load(data)
    sub = va_run / "tasks" / "va" / "submissions" / "sub.txt"
    assert task.check_submission(sub, ds) == []
    assert task.check_submission(sub.with_suffix(".zip"), ds) == []
    lines = sub.read_text().splitlines()
    assert lines[0] == "image_location,valence,arousal"
    assert len(lines) - 1 == sum(ds.n_frames("Test").values()) == len(ds.test_ids)
    card = read_json(sub.with_name("sub.json"))
    assert card["task"] == "va" and "nested_oof_mean_ccc" in card
    # a broken file is refused with its name
    bad = sub.with_name("bad.txt")
    bad.write_text("\n".join(lines[:-1]) + "\n")
    problems = task.check_submission(bad, ds)
    assert problems and all("bad.txt" in p for p in problems)


def test_expr_oof_macro_f1_matches_sklearn_and_submission_is_official(data, expr_run):
    ann = _annotations(data, "expr")
    truth = {f"{name}/{i + 1:05d}": int(line) for name, lines in ann.items() for i, line in enumerate(lines)}
    valid = {fid: c for fid, c in truth.items() if c >= 0}
    for exp in ("expr_ridge", "expr_te"):
        d = expr_run / "tasks" / "expr" / "oof" / exp
        oof = pd.read_csv(d / "oof.csv").set_index("frame_id")
        assert set(oof.index) == set(valid)
        probs = oof[list(EXPR_CLASSES)].to_numpy()
        assert np.allclose(probs.sum(1), 1.0, atol=1e-5)  # class probabilities
        f1 = f1_score([valid[f] for f in oof.index], probs.argmax(1), average="macro", labels=range(8),
                      zero_division=0)
        assert read_json(d / "metrics.json")["oof_macro_f1"] == pytest.approx(f1, abs=1e-12)
    task = get_task("expr")
    ds = task.load(data)
    sub = expr_run / "tasks" / "expr" / "submissions" / "sub.txt"
    assert task.check_submission(sub, ds) == []
    lines = sub.read_text().splitlines()
    assert lines[0] == "image_location," + ",".join(EXPR_CLASSES)
    assert {int(line.rsplit(",", 1)[1]) for line in lines[1:]} <= set(range(8))
    assert len(lines) - 1 == len(ds.test_ids)


def test_frame_tasks_never_touch_the_eri_artifacts(va_run, expr_run):
    for work in (va_run, expr_run):
        assert not (work / "oof").exists() and not (work / "submissions").exists()
        assert not (work / "folds" / "folds.csv").exists()


def test_a_fourth_task_is_one_task_definition_and_its_reader(data, tmp_path, monkeypatch):
    """A made-up task (valence alone, scored by negative mean absolute error, its own submission CSV) runs
    folds -> training -> OOF -> blend -> submission with no change to the trainer or the blender."""
    from competition.data import task as task_module
    from competition.data.task import Task

    def load(root: Path, check_media: bool):
        ds = load_frame_dataset(root, "va", check_media)
        ds.targets = ["valence"]
        return ds

    def report(p: np.ndarray, y: np.ndarray, names: list[str]) -> dict:
        per = -np.abs(p - y).mean(0)
        return {"neg_mae": float(per.mean()), "neg_mae_per": dict(zip(names, per.tolist())), "n": len(y)}

    def write(path: Path, ds, ids, pred) -> Path:
        out = path.with_suffix(".csv")
        pd.DataFrame({"frame": ids, "valence": pred[:, 0]}).to_csv(out, index=False)
        return out

    new = Task(name="valence_mae", family="affwild2", granularity="frame", metric_name="neg_mae", metric_label="-MAE",
               per_target_key="neg_mae_per", score=lambda p, y: report(p, y, ["v"])["neg_mae"], report=report,
               default_loss="mse", output="sigmoid", value_range=(-1.0, 1.0), id_col="frame_id", load_fn=load,
               generate_fn=lambda out, jobs, size: None, write_fn=write,
               check_fn=lambda path, ds: [] if len(pd.read_csv(path)) == len(ds.test_ids) else [f"{path}: rows"],
               window={"before": 2.0, "after": 2.0}, group_col="video")
    monkeypatch.setitem(task_module.TASKS, new.name, new)
    work = tmp_path / "work"
    cfgs = [_config(tmp_path / f"{m}.yaml", new.name, f"v_{m}", m, 2.0, **params) for m, params in
            (("ridge", {"alpha": 1000.0}), ("lstm_head", {"hidden": 8, "epochs": 2, "progress": False}))]
    _run(new.name, data, work, cfgs)
    ann = _annotations(data, "va")
    valid = {f"{n}/{i + 1:05d}": float(line.split(",")[0]) for n, lines in ann.items()
             for i, line in enumerate(lines) if not line.startswith("-5")}
    for exp in ("v_ridge", "v_lstm_head"):
        d = work / "tasks" / new.name / "oof" / exp
        oof = pd.read_csv(d / "oof.csv").set_index("frame_id")
        assert list(oof.columns) == ["valence"] and set(oof.index) == set(valid)
        mae = np.abs(oof.valence.to_numpy() - np.array([valid[f] for f in oof.index])).mean()
        assert read_json(d / "metrics.json")["oof_neg_mae"] == pytest.approx(-mae, abs=1e-9)
    card = read_json(work / "tasks" / new.name / "submissions" / "sub.json")
    assert card["task"] == new.name and "nested_oof_neg_mae" in card
    assert len(pd.read_csv(work / "tasks" / new.name / "submissions" / "sub.csv")) == len(load(data, False).test_ids)


def test_scripts_run_a_frame_task_on_its_embedded_data(tmp_path):
    """TASK=va through the user's scripts: the embedded Aff-Wild2-like set is generated into the work
    directory, folds and every fold of a config run, and a checked submission is written. The config's
    face features are swapped for the voice's MFCCs (`--set`, passed on by the scripts): the face
    pipeline on these videos is tested by test_all_configs, this test is about the scripts."""
    import os
    import subprocess
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "TASK": "va", "WORKDIR": str(tmp_path), "JOBS": "1", "SYNTH_N": "6",
           "WANDB_MODE": "disabled"}
    out = subprocess.run(["bash", "scripts/run_all.sh", "va_ridge", "--", "--set", "features=[mfcc]"], cwd=repo,
                         env=env, check=True, capture_output=True, text=True).stderr
    assert "all folds done: OOF mean CCC" in out
    wd = get_task("va").workdir(tmp_path)
    assert (tmp_path / "data" / "affwild2" / "synth_affwild2_truth.json").exists()
    assert read_json(wd.folds.with_suffix(".json"))["groups"]["source"] == "column:video"
    assert (wd.oof / "va_ridge" / "metrics.json").exists() and not (tmp_path / "oof").exists()
    sub = subprocess.run([sys.executable, "make_submission.py", "--task", "va", "--workdir", str(tmp_path),
                          "--blend", "best_single"], cwd=repo, env=env, capture_output=True, text=True)
    assert sub.returncode == 0, sub.stderr
    assert (wd.submissions / "blend-best_single.txt").exists()
