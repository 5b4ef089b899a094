"""`te_crops` (seed 004's EXPR system end to end): a tiny timm CNN, its weights from a local file,
fine-tuned on the cached face crops of a generated Aff-Wild2-style set through the EXPR fold command;
augmentation reaches its CNN in training only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from competition.data.synth_affwild2 import generate_affwild2
from competition.folds import main as folds_main
from competition.models.registry import build_model
from competition.pipeline.run_fold import main as run_fold_main
from synthetic_features import synthetic_bank
from tiny_data import save_timm_weights

torch.set_num_threads(1)
TINY = "test_efficientnet"  # a ~0.1 M-parameter timm CNN
FIRST = "conv_stem.weight"  # its first convolution


@pytest.fixture(scope="module")
def expr_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("te_crops")
    data = generate_affwild2(root / "data", n_videos=6, seed=1, jobs=1, duration=(2.0, 2.5), crops=True)
    weights = save_timm_weights(TINY, root / "weights" / f"{TINY}.safetensors")
    cfg = {"name": "crops", "task": "expr", "model": "te_crops", "seed": 3,
           "features": [{"name": "faces", "params": {"detectors": "aligned", "size": 32}}],
           "window": {"before": 1.0, "after": 1.0}, "train_stride": 4,
           "params": {"backbone": TINY, "pretrained_file": str(weights), "image_size": 32, "max_len": 4,
                      "hidden": 8, "heads": 2, "layers": 1, "epochs": 2, "batch_size": 16, "lr": 1e-3,
                      "progress": False, "augment": [{"name": "HorizontalFlip", "p": 0.5}]}}
    (root / "crops.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    common = ["--task", "expr", "--data", str(data), "--workdir", str(root / "work")]
    folds_main([*common, "--n-folds", "2"])
    run_fold_main([*common, "--all-folds", "--exp", str(root / "crops.yaml"), "--jobs", "1", "--no-wandb"])
    return root / "work" / "tasks" / "expr" / "oof" / "crops", weights


def test_fine_tunes_the_local_weights_end_to_end(expr_run):
    exp, weights = expr_run
    oof = pd.read_csv(exp / "oof.csv")
    probs = oof.drop(columns=oof.columns[0]).to_numpy(float)
    assert len(oof) > 50 and np.allclose(probs.sum(1), 1.0, atol=1e-4)   # a class distribution per frame
    start = load_file(str(weights))[FIRST]
    random = build_model("te_crops", {"backbone": TINY, "pretrained_file": None}, 8).build_module(
        {"visual": 32 * 32 * 3}).frames[1].net.state_dict()[FIRST]
    for fold in (0, 1):
        trained = load_file(str(exp / f"fold_{fold}" / "model.safetensors"))[f"module.frames.1.net.{FIRST}"]
        moved = float((trained - start).norm())
        assert 0 < moved < 0.5 * float((random - start).norm())   # started from the file, then trained


def test_augmentation_reaches_the_cnn_in_training_only(tmp_path):
    """InvertImg (p=1) turns the dark synthetic crops bright: the CNN sees only bright images while
    training, only dark ones while validating and predicting."""
    bank, ids, y = synthetic_bank(tmp_path, n=24, seed=5)
    m = build_model("te_crops", {"modalities": {"visual": "syn_crops"}, "backbone": TINY, "pretrained_file": None,
                                 "image_size": 16, "hidden": 8, "heads": 2, "layers": 1, "epochs": 2,
                                 "progress": False, "augment": [{"name": "InvertImg", "p": 1.0}]}, 7)
    seen = []

    def reporter(epoch, row):  # after epoch 0: watch epoch 1's training and validation, then prediction
        if epoch == 0:
            m.module.frames.register_forward_pre_hook(lambda mod, args: seen.append((mod.training,
                                                                                     float(args[0].mean()))))
    m.reporter = reporter
    m.fit(bank, ids[:18], y[:18], ids[18:], y[18:])
    m.predict(bank, ids)
    train = [v for t, v in seen if t]
    held_out = [v for t, v in seen if not t]
    assert train and held_out
    assert min(train) > 0.6 and max(held_out) < 0.4
