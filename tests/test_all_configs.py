"""Every shipped experiment config runs all its folds end to end on a tiny embedded dataset of its task
(Hume-layout for ERI, Aff-Wild2-layout for VA/EXPR), with the real extractors it names, and leaves a
complete experiment directory (sequence models at a tiny size)."""
import json

import numpy as np
import pandas as pd
import pytest

from competition.pipeline.config import CONFIG_DIR, load_config
from competition.data.synth import generate
from competition.data.synth_affwild2 import generate_affwild2
from competition.folds import make_folds, write_folds
from competition.data.subjects import from_csv, write_subjects
from competition.models.registry import _MODELS, list_models
from competition.data.task import get_task
from competition.pipeline.run_fold import run_fold
from competition.models.trainer import TorchSequenceModel

CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
FRAME_CONFIGS = [c for c in CONFIGS if load_config(c)["task"] != "eri"]
TINY = ["params.epochs=2", "params.patience=2", "params.progress=false", "params.amp=false",
        "seeds=[0]"]  # one seed: configs that average seeds (dual_branch) train each fold once here


@pytest.fixture(scope="module")
def hume_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("allcfg_hume") / "data", n=20, seed=5, jobs=2, duration=(2.0, 2.5))


@pytest.fixture(scope="module")
def affwild2_data(tmp_path_factory):
    return generate_affwild2(tmp_path_factory.mktemp("allcfg_aw2") / "data", n_videos=6, seed=1, jobs=2,
                             duration=(2.5, 3.0))


@pytest.fixture(scope="module")
def tiny(request, tmp_path_factory):
    """task -> (dataset, work dir); the datasets are module fixtures, made before the first test that
    needs one (the parametrisation puts the frame tasks' configs last)."""
    made: dict = {}

    def get(task_name: str):
        if task_name not in made:
            task = get_task(task_name)
            ds = task.load(request.getfixturevalue(f"{task.family}_data"))
            wd = task.workdir(tmp_path_factory.mktemp(f"allcfg_{task.name}") / "work")
            groups = ds.units.table[task.group_col] if task.group_col else None
            write_folds(ds.units, make_folds(ds.units, n_folds=2, seed=0, groups=groups), wd.folds, {"n_folds": 2})
            if task.family == "hume":  # the subject_norm twins need the subjects of every clip
                truth = from_csv(ds.units.root / "synth_truth.csv")
                write_subjects(wd.subjects, truth, "file:synth_truth.csv", ds.units)
            made[task_name] = (ds, wd)
        return made[task_name]
    return get


@pytest.mark.parametrize("name", [c for c in CONFIGS if c not in FRAME_CONFIGS] + FRAME_CONFIGS)
def test_config_runs_every_fold(tiny, hume_data, name, monkeypatch, tmp_path):
    if "${ERI_SPEECH_MODEL}" in (CONFIG_DIR / f"{name}.yaml").read_text():  # a local speech-model folder
        from tests.test_features_models import _tiny_encoder
        monkeypatch.setenv("ERI_SPEECH_MODEL", str(_tiny_encoder("wavlm", tmp_path / "wavlm")))
    cfg = load_config(name)
    task = get_task(cfg["task"])
    ds, wd = tiny(task.name)
    assert cfg["model"] in list_models()
    neural = issubclass(_MODELS[cfg["model"]], TorchSequenceModel)
    cfg = load_config(name, TINY if neural else [])
    metrics = None
    for k in range(2):
        metrics = run_fold(cfg, k, ds, wd, jobs=2, progress=False, no_wandb=True)
    assert metrics is not None, f"{name}: experiment not finalised after its last fold"
    exp = wd.experiment(cfg["name"])
    oof = pd.read_csv(exp / "oof.csv", dtype={task.id_col: str})
    test = pd.read_csv(exp / "test.csv", dtype={task.id_col: str})
    assert len(oof) == len(ds.labelled_ids) and len(test) == len(ds.test_ids)
    values = oof[ds.targets].to_numpy()
    lo, hi = task.value_range
    assert np.isfinite(values).all() and (values >= lo).all() and (values <= hi).all()
    ids = oof[task.id_col].str.strip("[]")
    score = metrics[f"oof_{task.metric_name}"]
    assert score == pytest.approx(task.score(values, ds.labels(list(ids))), abs=1e-9)
    assert json.loads((exp / "metrics.json").read_text())["experiment"] == cfg["name"]


def typo(key: str) -> str:
    """A one-letter slip of `key` (two letters swapped, or a letter doubled for one-letter keys)."""
    return key[1] + key[0] + key[2:] if len(key) > 1 and key[0] != key[1] else key + key[-1]


@pytest.mark.parametrize("name", list_models())
def test_every_model_rejects_a_mistyped_key_and_type(name):
    """For every registered model: an unknown key fails naming the config and the key, with the
    declared key it was closest to; a value of another type than the declared default's fails."""
    from competition.models.registry import ParamError, build_model
    defaults = _MODELS[name].param_defaults()
    assert defaults, f"model {name} declares no parameters"
    key = sorted(defaults)[0]
    with pytest.raises(ParamError, match=rf"configs/x\.yaml: unknown param '{typo(key)}' for model '{name}' "
                                         rf"\(did you mean '{key}'\?\)"):
        build_model(name, {typo(key): defaults[key]}, 3, source="configs/x.yaml")
    typed = sorted(k for k, v in defaults.items()
                   if isinstance(v, (int, float, str)) and k not in _MODELS[name].param_types)
    assert typed, f"model {name} declares no typed parameter"
    wrong = [1] if isinstance(defaults[typed[0]], str) else "text"
    with pytest.raises(ParamError, match=f"param '{typed[0]}' of model '{name}' must be"):
        build_model(name, {typed[0]: wrong}, 3)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_validates_and_names_itself_in_errors(name):
    cfg = load_config(name)
    key = sorted(cfg["params"] or _MODELS[cfg["model"]].param_defaults())[0]
    with pytest.raises(ValueError, match=rf"{name}\.yaml: unknown param '{typo(key)}' .*did you mean '{key}'"):
        load_config(name, [f"params.{typo(key)}=1"])
    for spec in cfg.get("search_space", {}):   # tuning can only set declared parameters
        section, _, param = spec.partition(".")
        assert section != "params" or param in _MODELS[cfg["model"]].param_defaults(), spec
