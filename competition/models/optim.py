"""Optimisation pieces the trainer composes, each built on torch's own: per-batch LR schedules (linear
warm-up then cosine or constant, one-cycle), mixed-precision modes, an EMA of the weights
(swa_utils.AveragedModel) and the average of a fold's top-k checkpoints (SWA-style)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

SCHEDULES = ("plateau", "cosine", "onecycle", "constant")


def warmup_cosine(step: int, warmup: int, total: int, cosine: bool = True) -> float:
    """LR factor of optimizer step `step` (0-based): (step + 1) / warmup while warming up, then a
    cosine from 1 to 0 over the remaining steps (or 1 throughout without `cosine`)."""
    if step < warmup:
        return (step + 1) / warmup
    if not cosine:
        return 1.0
    decay = max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, decay) / decay))


def build_schedule(opt: torch.optim.Optimizer, name: str, total_steps: int, warmup_steps: int
                   ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-batch scheduler (stepped after every optimizer step), or None for `plateau`, which the
    trainer steps per epoch on the validation score instead."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
    if name == "plateau":
        if warmup_steps:
            raise ValueError("warmup needs a per-batch schedule (cosine, onecycle or constant), not plateau")
        return None
    total_steps = max(1, total_steps)
    if name == "onecycle":  # its own warm-up: pct_start of the steps (default 0.3 when warmup is 0)
        pct = warmup_steps / total_steps if warmup_steps else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                   total_steps=total_steps, pct_start=min(max(pct, 1e-3), 0.99),
                                                   cycle_momentum=False)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, warmup_steps, total_steps, cosine=name == "cosine"))


@dataclass(frozen=True)
class Precision:
    """How a forward pass runs: autocast dtype (None: full precision) and whether losses are scaled."""
    dtype: torch.dtype | None
    scale: bool

    @classmethod
    def of(cls, amp: bool | str, device: torch.device) -> "Precision":
        """amp: true = fp16 autocast with grad scaling on CUDA (nothing on CPU); 'bf16' = bf16 autocast on
        CUDA or CPU (no scaling needed); 'fp16' = fp16 on CUDA only; false = full precision."""
        mode = {True: "auto", False: "off", None: "off"}.get(amp, str(amp).lower())
        if mode not in ("auto", "off", "fp16", "bf16"):
            raise ValueError(f"amp must be true, false, 'fp16' or 'bf16', got {amp!r}")
        if mode == "bf16":
            return cls(torch.bfloat16, False)
        if mode in ("auto", "fp16") and device.type == "cuda":
            return cls(torch.float16, True)
        return cls(None, False)

    def autocast(self, device: torch.device) -> torch.autocast:
        return torch.autocast(device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)


def ema_of(module: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of `module`'s weights and buffers; call
    `.update_parameters(module)` after every optimizer step; `.module` is the averaged network."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema decay must be in (0, 1), got {decay}")
    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


class TopK:
    """The k best (score, state_dict) of a training run, and their average."""

    def __init__(self, k: int):
        self.k = k
        self.entries: list[tuple[float, dict[str, Tensor]]] = []

    def offer(self, score: float, module: nn.Module) -> None:
        if self.k <= 0 or (len(self.entries) >= self.k and score <= self.entries[-1][0]):
            return
        state = {n: t.detach().clone() for n, t in module.state_dict().items()}
        self.entries = sorted([*self.entries, (score, state)], key=lambda e: -e[0])[: self.k]

    def average(self) -> dict[str, Tensor]:
        """Floating tensors averaged over the kept states; others (e.g. BatchNorm's step count) from the best."""
        states = [s for _, s in self.entries]
        return {n: torch.stack([s[n] for s in states]).mean(0) if t.is_floating_point() else t
                for n, t in states[0].items()}


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
