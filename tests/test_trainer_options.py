"""Each trainer option changes what is trained: tiny models on synthetic stored features, on CPU."""
import math

import numpy as np
import pytest
import torch

from competition.models.optim import Precision, TopK, build_schedule, ema_of, warmup_cosine
from competition.models.registry import build_model
from synthetic_features import synthetic_bank

torch.set_num_threads(1)

FAST = {"modalities": {"frames": ["syn_face", "syn_pose"]}, "hidden": 8, "batch_size": 8, "progress": False,
        "dropout": 0.0}
TINY_DUAL = {"modalities": {"visual": "syn_crops", "audio": "syn_audio"}, "image_size": 16, "spatial_dim": 8,
             "temporal_dim": 8, "tcn_layers": 1, "grid_len": 4, "progress": False, "pretrained_file": None}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_bank(tmp_path_factory.mktemp("features"), n=40, seed=5)


def fit(data, model="lstm_head", n_train=32, reporter=None, **params):
    bank, ids, y = data
    base = FAST if model == "lstm_head" else TINY_DUAL
    m = build_model(model, {**base, **params}, 7, seed=7)
    m.reporter = reporter
    m.fit(bank, ids[:n_train], y[:n_train], ids[n_train:], y[n_train:])
    return m


def states_close(a, b, atol):
    return all(torch.allclose(a[k].float(), b[k].float(), atol=atol) for k in a)


def snapshots(model_holder, key=lambda m: m.module):
    """A reporter keeping (row, state_dict copy) after every epoch."""
    seen = []

    def reporter(epoch, row):
        seen.append((row, {k: v.detach().clone() for k, v in key(model_holder[0]).state_dict().items()}))
    return seen, reporter


# ------------------------------------------------------------------ schedules
def lr_curve(opt: torch.optim.Optimizer, kind: str, total: int, warmup: int) -> list[float]:
    """The learning rate at each of `total` steps of the schedule `kind`."""
    sched = build_schedule(opt, kind, total_steps=total, warmup_steps=warmup)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_then_cosine_lr_curve():
    lrs = lr_curve(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), "cosine", 20, 4)
    expect = [0.1 * (s + 1) / 4 for s in range(4)] + \
        [0.05 * (1 + math.cos(math.pi * (s - 4) / 16)) for s in range(4, 20)]
    np.testing.assert_allclose(lrs, expect, rtol=1e-6)
    assert warmup_cosine(3, 4, 20) == 1.0 and warmup_cosine(25, 4, 20) == pytest.approx(0.0)


def test_onecycle_rises_then_falls_and_plateau_is_per_epoch():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    lrs = lr_curve(opt, "onecycle", 10, 3)
    peak = int(np.argmax(lrs))
    assert 2 <= peak <= 3 and lrs[peak] == pytest.approx(0.01) and lrs[-1] < 1e-4
    assert build_schedule(opt, "plateau", 10, 0) is None
    with pytest.raises(ValueError, match="warmup"):
        build_schedule(opt, "plateau", 10, 2)


def test_trainer_steps_the_schedule_per_batch(data):
    # 32 clips in batches of 8: 4 steps per epoch; warm-up of one epoch, then cosine over 3 epochs
    m = fit(data, epochs=4, lr=0.01, schedule="cosine", warmup=1, patience=99)
    lrs = [h["lr"] for h in m.history]  # the LR after each epoch's last step
    expect = [0.01 * warmup_cosine(4 * (e + 1), 4, 16) for e in range(4)]
    np.testing.assert_allclose(lrs, expect, rtol=1e-6, atol=1e-12)


# ------------------------------------------------------------------ gradients
def test_gradient_clipping_bounds_the_steps(data):
    bank, ids, _ = data

    def moved(clip):
        m = build_model("lstm_head", {**FAST, "optimizer": "sgd", "lr": 1.0, "grad_clip": clip, "epochs": 1}, 7, seed=7)
        torch.manual_seed(7)
        start = {k: v.clone() for k, v in m.build_module({"frames": 16}).state_dict().items()}
        fit_m = fit(data, optimizer="sgd", lr=1.0, grad_clip=clip, epochs=1)
        return math.sqrt(sum(float(((fit_m.module.state_dict()[k] - start[k]) ** 2).sum()) for k in start))

    # 4 SGD steps with momentum 0.9 and gradient norm <= 1e-4 move the weights by at most 4 * 1e-4 * 10
    assert moved(1e-4) <= 4e-3
    assert moved(0) > 0.05


def test_accumulating_micro_batches_equals_one_big_batch(data):
    big = fit(data, epochs=2, batch_size=16, loss="mse", grad_clip=0)
    micro = fit(data, epochs=2, batch_size=8, accumulate=2, loss="mse", grad_clip=0)
    small = fit(data, epochs=2, batch_size=8, loss="mse", grad_clip=0)
    # the same samples in the same order: 16 = 8 + 8 per step
    assert states_close(big.module.state_dict(), micro.module.state_dict(), atol=1e-5)
    assert not states_close(big.module.state_dict(), small.module.state_dict(), atol=1e-3)


# ------------------------------------------------------------------ weight averaging
def test_ema_weights_are_what_is_evaluated_and_saved(data, tmp_path):
    bank, ids, _ = data
    raw = fit(data, epochs=2)
    near_raw = fit(data, epochs=2, ema=1e-6)          # an average that forgets at once is the raw model
    ema = fit(data, epochs=2, ema=0.9)
    np.testing.assert_allclose(near_raw.predict(bank, ids), raw.predict(bank, ids), atol=1e-5)
    assert np.abs(ema.predict(bank, ids) - raw.predict(bank, ids)).max() > 1e-3
    assert [h["train_loss"] for h in ema.history] == [h["train_loss"] for h in raw.history]  # same training
    ema.save(tmp_path / "m")
    again = build_model("lstm_head", {**FAST, "ema": 0.9, "epochs": 2}, 7)
    again.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict(bank, ids), ema.predict(bank, ids), atol=1e-6)


def test_ema_update_follows_the_decay():
    net = torch.nn.Linear(2, 1)
    avg = ema_of(net, 0.75)
    before = net.weight.detach().clone()
    avg.update_parameters(net)  # first update copies
    with torch.no_grad():
        net.weight.add_(1.0)
    avg.update_parameters(net)
    torch.testing.assert_close(avg.module.weight, 0.75 * before + 0.25 * (before + 1.0))
    assert not torch.equal(avg.module.weight, net.weight)


def test_top_k_checkpoint_average(data):
    holder = []
    seen, reporter = snapshots(holder)
    bank, ids, y = data
    m = build_model("lstm_head", {**FAST, "epochs": 5, "average_top_k": 3, "lr": 3e-3}, 7, seed=7)
    holder.append(m)
    m.reporter = reporter
    m.fit(bank, ids[:32], y[:32], ids[32:], y[32:])
    best3 = sorted(seen, key=lambda e: -e[0]["val_mean_pcc"])[:3]
    expect = {k: torch.stack([s[k] for _, s in best3]).mean(0) for k in best3[0][1]}
    assert states_close(m.module.state_dict(), expect, atol=1e-6)
    assert not states_close(m.module.state_dict(), best3[0][1], atol=1e-4)
    k = TopK(2)
    for score in (0.1, 0.3, 0.2):
        k.offer(score, torch.nn.Linear(1, 1))
    assert [s for s, _ in k.entries] == [0.3, 0.2]


# ------------------------------------------------------------------ precision
def test_amp_is_a_no_op_on_cpu_and_bf16_runs(data):
    bank, ids, _ = data
    assert Precision.of(True, torch.device("cpu")) == Precision(None, False)
    assert Precision.of(True, torch.device("cuda")) == Precision(torch.float16, True)
    off, on = fit(data, epochs=1, amp=False), fit(data, epochs=1, amp=True)
    np.testing.assert_array_equal(off.predict(bank, ids), on.predict(bank, ids))
    bf16 = fit(data, epochs=1, amp="bf16")
    diff = np.abs(bf16.predict(bank, ids) - off.predict(bank, ids)).max()
    assert 0 < diff < 0.1  # rounded to bf16, but the same model
    with pytest.raises(ValueError, match="amp"):
        Precision.of("fp8", torch.device("cpu"))


# ------------------------------------------------------------------ backbones
def test_frozen_backbone_then_unfrozen_at_a_lower_lr(data):
    holder = []
    seen, reporter = snapshots(holder, key=lambda m: m.module.frames.cnn)
    bank, ids, y = data
    m = build_model("dual_branch", {**TINY_DUAL, "epochs": 3, "freeze_backbone": 2, "backbone_lr": 0.1,
                                    "lr": 1e-3, "patience": 99}, 7, seed=7)
    holder.append(m)
    m.reporter = reporter
    torch.manual_seed(7)
    m.fit(bank, ids[:32], y[:32], ids[32:], y[32:])
    rows, states = zip(*seen)
    assert states_close(states[0], states[1], atol=0)            # frozen: weights and BN statistics
    assert not states_close(states[1], states[2], atol=1e-7)     # unfrozen in epoch 3
    assert [r["lr_backbone"] for r in rows] == [0.0, 0.0, pytest.approx(1e-4)]
    assert all(r["lr"] == pytest.approx(1e-3) for r in rows)
    assert all(p.requires_grad for p in m.module.frames.cnn.parameters())
    with pytest.raises(ValueError, match="backbone"):
        fit(data, epochs=1, freeze_backbone=1)


def test_pretrained_weights_from_a_local_file(tmp_path, monkeypatch):
    from competition.models.backbones import StageMap
    from tiny_data import save_timm_weights
    path = save_timm_weights("resnet18", tmp_path / "resnet18.safetensors")
    a, b = StageMap("resnet18", 1, str(path)), StageMap("resnet18", 1, str(path))
    assert a.weights == str(path)
    torch.testing.assert_close(a.net.conv1.weight, b.net.conv1.weight)   # both loaded the file
    monkeypatch.setenv("ERI_WEIGHTS", str(tmp_path))
    assert StageMap("resnet18", 1, "auto").weights == str(path)
    monkeypatch.setenv("ERI_WEIGHTS", str(tmp_path / "none"))
    with pytest.warns(UserWarning, match="random init"):
        assert StageMap("resnet18", 1, "auto").weights is None
    with pytest.raises(FileNotFoundError):
        StageMap("resnet18", 1, str(tmp_path / "missing.pth"))
