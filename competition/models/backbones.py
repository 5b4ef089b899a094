"""Pretrained timm image backbones for the end-to-end face-crop models, with weights from a local file
or random initialisation, said out loud. More: docs/PIPELINE.md, "Image backbones and their weights:
backbones.py"."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[2]
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin")


def weights_dir() -> Path:
    return Path(os.environ.get("ERI_WEIGHTS") or REPO / "weights")


def resolve_weights(model: str, pretrained_file: str | None) -> Path | None:
    """The weights file to load for `model`, or None for random init (warned about under `auto`)."""
    if not pretrained_file:
        return None
    if str(pretrained_file) != "auto":
        path = Path(pretrained_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained_file {path} for timm model {model!r} does not exist")
        return path
    for suffix in WEIGHT_SUFFIXES:
        path = weights_dir() / f"{model}{suffix}"
        if path.is_file():
            return path
    warnings.warn(f"no pretrained weights for {model!r} at {weights_dir() / model}.safetensors (or .pth/.bin): "
                  "its layers start from random init. Put a timm checkpoint there, set ERI_WEIGHTS, or set "
                  "params.pretrained_file", stacklevel=2)
    return None


def create_timm(model: str, pretrained_file: str | None, **kwargs) -> tuple[nn.Module, str | None]:
    """timm.create_model with the weights `pretrained_file` resolves to (or random init), and that path."""
    import timm
    path = resolve_weights(model, pretrained_file)
    kw = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}} if path else {}
    return timm.create_model(model, **kw, **kwargs), str(path) if path else None


class StageMap(nn.Module):
    """(N, 3, H, W) -> the feature map after one stage of a timm CNN."""

    def __init__(self, model: str, stage: int, pretrained_file: str | None = "auto"):
        super().__init__()
        self.net, self.weights = create_timm(model, pretrained_file, features_only=True, out_indices=(stage,))
        self.channels = int(self.net.feature_info.channels()[-1])

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)[-1]


class PooledBackbone(nn.Module):
    """(N, 3, H, W) -> (N, channels): a whole timm model without its classifier (its own global pooling,
    and the last projection for models that have one, e.g. MobileNetV3's 1280-d conv_head)."""

    def __init__(self, model: str, pretrained_file: str | None = "auto"):
        super().__init__()
        self.net, self.weights = create_timm(model, pretrained_file, num_classes=0)
        self.channels = int(getattr(self.net, "head_hidden_size", None) or self.net.num_features)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)
