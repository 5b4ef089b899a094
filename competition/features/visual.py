"""Visual embeddings of face crops with any timm backbone (seed 000: EfficientNet; 001: ResNet18; 004:
MobileNetV3, ResNet, EVA, CLIP), one row per frame of the `faces` cache. Weights: `weights=PATH`, else the
hub when online, random initialisation only with `random_init=True` (docs/FEATURES.md)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from competition.features.registry import ClipMedia, FeatureError, FeatureOutput, register_extractor


@functools.lru_cache(maxsize=4)
def load_timm(name: str, weights: str = "", random_init: bool = False):
    """A timm backbone with its classifier removed (num_classes=0), in eval mode on the best device."""
    import timm
    import torch
    try:
        path = Path(weights).expanduser() if weights else None
        if path is not None and not path.is_file():
            raise FeatureError(f"weights file {path} not found for timm model {name!r}")
        overlay = {"pretrained_cfg_overlay": {"file": str(path)}} if path else {}
        model = timm.create_model(name, pretrained=bool(path) or not random_init, num_classes=0, **overlay)
    except FeatureError:
        raise
    except Exception as exc:
        hint = "" if weights or random_init else \
            " (offline: pass weights=PATH to a local checkpoint, or random_init=True to use untrained weights)"
        raise FeatureError(f"cannot build timm model {name!r}: {type(exc).__name__}: {exc}{hint}") from exc
    return model.eval().to("cuda" if torch.cuda.is_available() else "cpu")


def embed_images(model, images: np.ndarray, input_size: int = 0, batch_size: int = 64) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, D) float32 with the model's own mean/std normalisation.
    `input_size` > 0 resizes the images first (0 keeps them as they are)."""
    import torch
    import torch.nn.functional as F
    cfg = model.pretrained_cfg or {}
    mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406)), dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225)), dtype=torch.float32).view(1, 3, 1, 1)
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).permute(0, 3, 1, 2)
            x = x.float().div_(255.0)
            if input_size and x.shape[-1] != input_size:
                x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False,
                                  antialias=True)
            x = ((x - mean) / std).to(device)
            out.append(model(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_features), np.float32)


VISUAL_DEFAULTS: dict[str, Any] = {
    "model": "efficientnet_b0", "weights": "", "random_init": False,
    "input_size": 0,        # 0: feed the crops at their stored size
    "batch_size": 64,
    "faces": {},            # parameters of the `faces` crops to use (default: the `faces` defaults)
}


@register_extractor("visual", kind="sequence", defaults=VISUAL_DEFAULTS, dtype="float16", modality="face")
def visual(clip: ClipMedia, model: str, weights: str, random_init: bool, input_size: int, batch_size: int,
           faces: dict[str, Any]) -> FeatureOutput:
    """Per-frame timm embeddings (T, D) of the clip's face crops."""
    from competition.features.faces import face_track
    track = face_track(clip, faces)
    net = load_timm(model, weights, random_init)
    x = embed_images(net, track.crops, input_size, batch_size)
    return FeatureOutput(x=x, t=track.times, mask=track.mask,
                         info={"model": model, "dim": int(x.shape[1]), "random_init": bool(random_init)})
