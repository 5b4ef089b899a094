"""Every registered neural model, at a tiny size on synthetic stored features: output shape and range,
padding invariance, one optimisation step lowers the loss, and a checkpoint round trip."""
import numpy as np
import pytest
import torch

from competition.pipeline.config import load_config
from competition.models.registry import _MODELS, build_model, list_models
from competition.core.paths import CONFIG_DIR
from competition.features.batching import ModalityInput, collate, resolve_modalities
from competition.models.losses import build_loss
from competition.models.trainer import TRAINER_DEFAULTS, TorchSequenceModel
from synthetic_features import synthetic_bank

torch.set_num_threads(1)

TINY = {"epochs": 2, "batch_size": 8, "progress": False, "grid_len": 8, "hidden": 8}
# modalities per model on the synthetic features; a model not listed gets face + audio
PARAMS = {
    "te": {"modalities": {"frames": ["syn_face", "syn_vec"]}},
    "lstm_head": {"modalities": {"frames": ["syn_face", "syn_pose"]}},
    "muse_lstm": {"modalities": {"frames": "syn_audio"}},
    "rnn_xattn": {"modalities": {"face": "syn_face", "audio": "syn_audio", "pose": "syn_pose"}},
    "mctn": {"modalities": {"visual": "syn_face", "audio": "syn_audio"}},
    "dual_branch": {"modalities": {"visual": "syn_crops", "audio": "syn_audio"}, "image_size": 16,
                    "spatial_dim": 8, "temporal_dim": 8, "tcn_layers": 2},
    "te_crops": {"modalities": {"visual": "syn_crops"}, "image_size": 16, "backbone": "test_efficientnet",
                 "pretrained_file": None},
}
GENERIC = {"modalities": {"face": "syn_face", "audio": "syn_audio"}}


def neural_models() -> list[str]:
    return [n for n in list_models() if issubclass(_MODELS[n], TorchSequenceModel)]


def params_for(name: str) -> dict:
    """Tiny sizes; size keys a model does not have (e.g. `hidden`) are left out."""
    known = set(TRAINER_DEFAULTS) | set(_MODELS[name].default_params)
    return {k: v for k, v in {**TINY, **PARAMS.get(name, GENERIC)}.items() if k in known}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_bank(tmp_path_factory.mktemp("features"), n=36, seed=3)


@pytest.fixture(scope="module")
def fitted(data):
    bank, ids, y = data
    cache = {}

    def get(name: str) -> TorchSequenceModel:
        if name not in cache:
            torch.manual_seed(0)
            m = build_model(name, params_for(name), 7, seed=0)
            m.fit(bank, ids[:28], y[:28], ids[28:], y[28:])
            cache[name] = m
        return cache[name]

    return get


def test_all_seed_models_are_registered():
    assert {"te", "dual_branch", "lstm_head", "muse_lstm", "rnn_xattn", "attn_fusion", "mfn",
            "mctn"} <= set(neural_models())


@pytest.mark.parametrize("name", neural_models())
def test_shape_range_and_reports(name, data, fitted):
    bank, ids, _ = data
    m = fitted(name)
    pred = m.predict(bank, ids)  # includes clips without a face and clips whose audio failed
    assert pred.shape == (len(ids), 7)
    assert np.isfinite(pred).all() and pred.min() >= 0 and pred.max() <= 1
    assert len(m.history) >= 1 and all({"train_loss", "val_mean_pcc"} <= set(h) for h in m.history)


def _extend(clip: dict[str, ModalityInput], extra: int) -> dict[str, ModalityInput]:
    """The same clip with `extra` masked rows appended: a longer clip to pad the others against."""
    return {k: ModalityInput(np.concatenate([v.x, np.zeros((extra, v.x.shape[1]), v.x.dtype)]),
                             np.concatenate([v.mask, np.zeros(extra, bool)])) for k, v in clip.items()}


@pytest.mark.parametrize("name", neural_models())
def test_padding_does_not_change_the_prediction(name, data, fitted):
    bank, ids, _ = data
    m = fitted(name)
    clips = m._standardise(m._load(bank, ids[:4]))  # clip 3 has no face
    with torch.no_grad():
        m.module.eval()
        alone = [m.module(collate([c])).numpy() for c in clips]
        padded = m.module(collate(clips + [_extend(clips[0], 9)])).numpy()
    np.testing.assert_allclose(np.concatenate(alone), padded[:4], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", neural_models())
def test_one_step_lowers_the_loss(name, data, fitted):
    bank, ids, y = data
    m = fitted(name)
    torch.manual_seed(1)
    module = m.build_module(dict(m.dims)).eval()  # eval: no dropout, so the loss is a fixed function
    batch = collate(m._standardise(m._load(bank, ids[:16])))
    target = torch.from_numpy(y[:16])
    loss_fn = build_loss(m.cfg["loss"] or m.default_loss)

    def loss() -> torch.Tensor:
        out = module(batch)
        return loss_fn(out[0] if isinstance(out, tuple) else out, target)

    opt = torch.optim.SGD(module.parameters(), lr=1e-2)
    before = loss()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert float(after) < float(before.detach())


@pytest.mark.parametrize("name", neural_models())
def test_checkpoint_round_trip(name, data, fitted, tmp_path):
    bank, ids, _ = data
    m = fitted(name)
    m.save(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    again = build_model(name, params_for(name), 7, seed=123)
    again.load(tmp_path)
    np.testing.assert_array_equal(m.predict(bank, ids), again.predict(bank, ids))


@pytest.mark.parametrize("config", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_neural_configs_name_known_params_and_features(config):
    cfg = load_config(config)
    if cfg["model"] not in neural_models():
        pytest.skip("not a neural model")
    m = build_model(cfg["model"], cfg["params"], 7)  # unknown params raise here
    known = set(TRAINER_DEFAULTS) | set(_MODELS[cfg["model"]].default_params)
    assert {k.split(".", 1)[1] for k in cfg.get("search_space", {})} <= known
    assert resolve_modalities(m.cfg["modalities"], cfg["features"])
    assert isinstance(cfg.get("default", False), bool)
