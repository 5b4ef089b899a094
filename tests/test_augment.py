"""albumentations pipelines from configs: applied to the training clips only, one draw per clip."""
import numpy as np
import pytest
import torch

from competition.features.augment import ClipAugmenter
from competition.models.registry import build_model
from synthetic_features import synthetic_bank

torch.set_num_threads(1)
TINY_DUAL = {"modalities": {"visual": "syn_crops", "audio": "syn_audio"}, "image_size": 16, "spatial_dim": 8,
             "temporal_dim": 8, "tcn_layers": 1, "grid_len": 4, "progress": False, "pretrained_file": None}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_bank(tmp_path_factory.mktemp("features"), n=40, seed=5)


def test_one_draw_for_all_frames_of_a_clip():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (16, 16, 3), np.uint8)
    clip = np.stack([frame] * 5).reshape(5, -1)
    aug = ClipAugmenter([{"name": "Affine", "rotate": [-30, 30], "translate_percent": [-0.2, 0.2], "p": 1.0},
                         {"name": "ColorJitter", "brightness": 0.4, "p": 1.0}, {"name": "CoarseDropout", "p": 1.0}])
    out = aug(clip, seed=3)
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert not np.array_equal(out[0], clip[0])                  # changed...
    assert all(np.array_equal(out[0], o) for o in out[1:])      # ...the same way for every frame
    np.testing.assert_array_equal(aug(clip, seed=3), out)       # seeded
    assert not np.array_equal(aug(clip, seed=4), out)
    with pytest.raises(ValueError, match="not an albumentations transform"):
        ClipAugmenter([{"name": "NoSuchFlip"}])


def test_augmentation_in_training_never_at_validation_or_test(data):
    """InvertImg (p=1) turns the dark synthetic crops bright: every image the CNN sees in training mode is
    bright, every image it sees while validating or predicting is dark."""
    bank, ids, y = data
    m = build_model("dual_branch", {**TINY_DUAL, "epochs": 2, "augment": [{"name": "InvertImg", "p": 1.0}]}, 7)
    seen = []

    def record(module, args):
        seen.append((module.training, float(args[0].mean())))

    def reporter(epoch, row):  # after epoch 0: watch epoch 1's training and validation, then prediction
        if epoch == 0:
            m.module.frames.register_forward_pre_hook(record)
    m.reporter = reporter
    m.fit(bank, ids[:30], y[:30], ids[30:], y[30:])
    n_fit = len(seen)
    m.predict(bank, ids)
    train = [v for t, v in seen if t]
    held_out = [v for t, v in seen if not t]
    assert train and held_out and len(seen) > n_fit
    assert min(train) > 0.6 and max(held_out) < 0.4


def test_workers_give_the_same_augmented_training(data):
    bank, ids, y = data
    aug = [{"name": "HorizontalFlip", "p": 0.5}, {"name": "ColorJitter", "brightness": 0.3, "p": 0.5}]
    runs = []
    for workers in (0, 1):
        m = build_model("dual_branch", {**TINY_DUAL, "epochs": 1, "augment": aug, "workers": workers}, 7, seed=3)
        m.fit(bank, ids[:30], y[:30], ids[30:], y[30:])
        runs.append(m.predict(bank, ids))
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-6)


def test_augment_needs_an_image_modality(data):
    with pytest.raises(ValueError, match="image modalit"):
        build_model("lstm_head", {"augment": [{"name": "HorizontalFlip"}]}, 7)
