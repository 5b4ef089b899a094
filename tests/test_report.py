"""competition.pipeline.report: the page renders (every <img> is a non-blank PNG next to it), its numbers come from
the experiment directories, and the quantisation / confusion / tuned-vs-untuned helpers are right."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import optuna
import pytest

from competition.data.contract import load_dataset
from competition.features.store import extract
from competition.folds import make_folds, write_folds
from competition.core.io import read_json
from competition.core.paths import Workdir
from competition.pipeline.report import at_edge, build_report, confusion, main, quantise, tuned_vs_untuned
from competition.pipeline.run_fold import run_fold
from competition.pipeline.tune import tune
from tests.tiny_data import write_audio_dataset


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data) -> None:
        self.text.append(data)


def cfg(name: str, alpha: float) -> dict:
    return {"name": name, "model": "ridge", "features": ["mfcc_stats"], "params": {"alpha": alpha}, "seed": 7,
            "search_space": {"params.alpha": {"type": "float", "low": 0.01, "high": 1000.0, "log": True}}}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> tuple[Workdir, Path]:
    """Two finished experiments, a tuned one, a study and an oracle ceiling as the synthetic set has."""
    root = tmp_path_factory.mktemp("report")
    data = write_audio_dataset(root / "data", n_train=30, n_val=10, n_test=6, seconds=1.0)
    ceiling = {"mean_pcc": 0.8, "pcc": {e: 0.8 for e in load_dataset(data).emotions}}
    (data / "synth_truth.json").write_text(json.dumps({"oracle_ceiling": ceiling}))
    ds = load_dataset(data)
    wd = Workdir.of(root)
    write_folds(ds, make_folds(ds, n_folds=3, seed=0), wd.folds, {"n_folds": 3})
    extract(ds, ["mfcc_stats"], wd.features, jobs=1, progress=False)
    res = tune(cfg("rsmall", 300.0), ds, wd, n_trials=5, seed=0, out=root / "rsmall_tuned.yaml", progress=False,
               no_wandb=True)
    from competition.pipeline.config import load_config
    for c in (cfg("rsmall", 300.0), cfg("rbig", 3.0), load_config(res.config_path)):
        for k in range(3):
            run_fold(c, k, ds, wd, progress=False, no_wandb=True)
    return wd, data


def test_report_renders_every_figure(workdir):
    wd, data = workdir
    out = wd.root / "reports"
    assert main(["--data", str(data), "--workdir", str(wd.root)]) == 0
    page = Page()
    page.feed((out / "index.html").read_text())
    expected = {"leaderboard.png", "per_emotion.png", "blend_steps.png", "scatter.png", "confusion.png",
                "label_levels.png", "label_corr.png", "tune_0_history.png", "tune_0_importance.png"}
    assert expected <= set(page.images)
    for src in page.images:
        img = mpimg.imread(out / src)
        assert img.shape[0] > 100 and img.shape[1] > 100, src
        assert img[..., :3].std() > 0.02, f"{src} is blank"
    assert sorted(p.name for p in out.glob("*.png")) == sorted(page.images)  # nothing stale, nothing missing

    text = " ".join(page.text)
    metrics = {n: read_json(wd.experiment(n) / "metrics.json") for n in ("rsmall", "rbig", "rsmall_tuned")}
    for name, m in metrics.items():
        assert name in text and f"{m['oof_mean_pcc']:.4f}" in text
        assert f"{100 * m['oof_mean_pcc'] / 0.8:.1f} %" in text  # fraction of the oracle ceiling
    assert "rsmall_tuned" in text and "Run through every fold" in text


def test_report_without_experiments_still_renders_labels(tmp_path):
    data = write_audio_dataset(tmp_path / "data", n_train=12, n_val=4, n_test=2, seconds=0.2)
    page_path = build_report(load_dataset(data), tmp_path / "oof", tmp_path / "submissions", tmp_path / "r")
    page = Page()
    page.feed(page_path.read_text())
    assert set(page.images) == {"label_levels.png", "label_corr.png"}
    assert "No finished experiment" in " ".join(page.text)


def test_quantise_and_confusion():
    assert list(quantise(np.array([0.0, 0.05, 0.1, 0.99, 1.0]))) == [0, 0, 1, 9, 9]
    true = np.array([0.05, 0.05, 0.55, 0.95])
    m = confusion(true, np.array([0.05, 0.35, 0.55, 0.15]))
    assert m[0, 0] == 0.5 and m[0, 3] == 0.5 and m[5, 5] == 1.0 and m[9, 1] == 1.0
    assert np.allclose(m.sum(1)[[0, 5, 9]], 1.0) and m.sum() == 3.0  # rows without clips stay empty


def study_with(values: list[float]) -> optuna.Study:
    s = optuna.create_study(direction="maximize")
    s.set_user_attr("experiment", "e")
    for i, v in enumerate(values):
        t = s.ask()
        if i == 0:
            t.set_user_attr("baseline", True)
        s.tell(t, v)
    return s


def test_tuned_vs_untuned_says_by_how_much_and_why():
    a = {"oof_mean_pcc": 0.30, "fold_mean_pcc": {"0": 0.28, "1": 0.32}, "fold_mean_pcc_std": 0.02}
    b = {"oof_mean_pcc": 0.31, "fold_mean_pcc": {"0": 0.30, "1": 0.31}, "fold_mean_pcc_std": 0.005}
    text = tuned_vs_untuned({"e": a, "e_tuned": b}, study_with([0.29, 0.31, 0.30]))
    assert "0.2900" in text and "best trial (1) 0.3100 (+0.0200)" in text
    assert "e_tuned beats e: OOF mean PCC 0.3100 vs 0.3000 (+0.0100)" in text
    assert "+0.0050 ± 0.0150 (1 of 2 folds better)" in text
    assert "within fold-to-fold noise" in text and "optimistic" in text
    worse = tuned_vs_untuned({"e": b, "e_tuned": a}, study_with([0.31, 0.29]))
    assert "No sampled trial beat" in worse and "does NOT beat" in worse
    assert "scripts/run_all.sh e_tuned" in tuned_vs_untuned({}, study_with([0.3]))


def test_best_trial_at_the_edge_of_the_space_is_flagged():
    s = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for alpha in (0.5, 990.0, 20.0):
        s.enqueue_trial({"params.alpha": alpha, "params.depth": 5})
    s.optimize(lambda t: t.suggest_float("params.alpha", 0.1, 1000.0, log=True)
               + 0 * t.suggest_int("params.depth", 1, 9), n_trials=3)
    assert at_edge(s.best_trial) == ["params.alpha=990 (range 0.1..1000)"]
    assert at_edge(s.trials[2]) == []
    assert "edge of the search space (params.alpha=990" in tuned_vs_untuned({}, s)
