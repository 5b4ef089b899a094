"""The end-to-end face-crop path of `dual_branch` and `te_crops`: the `faces` crops, resized and kept uint8
(for `augment`), then ImageNet-normalised through a timm CNN frame by frame, only the frames with a
face. Weights: `pretrained_file` (models/backbones.py)."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from competition.features.batching import ModalityBatch
from competition.models.trainer import TorchSequenceModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_crop_rows(x: np.ndarray, image_size: int) -> np.ndarray:
    """Face crops (T, S*S*3) -> (T, s*s*3) uint8 at the model's image size."""
    import cv2
    side = int(round(np.sqrt(x.shape[1] / 3)))
    if side * side * 3 != x.shape[1]:
        raise ValueError(f"visual rows of width {x.shape[1]} are not square RGB crops")
    crops = np.clip(x, 0, 255).astype(np.uint8).reshape(-1, side, side, 3)
    if side != image_size:
        crops = np.stack([cv2.resize(c, (image_size, image_size), interpolation=cv2.INTER_AREA) for c in crops])
    return crops.reshape(len(crops), -1)


class ImageNetNormalise(nn.Module):
    """(N, 3, S, S) images in [0, 1] -> normalised with ImageNet statistics (what timm weights expect)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std


def encode_frames(encoder: nn.Module, v: ModalityBatch, image_size: int, dim: int) -> Tensor:
    """(B, T, s*s*3) crop rows (0..255) -> (B, T, dim): `encoder` maps (N, 3, s, s) images in [0, 1] to
    (N, dim); frames without a face (mask False) stay zero and never go through it."""
    b, t, _ = v.x.shape
    per_frame = v.x.new_zeros(b, t, dim)
    if v.mask.any():
        images = v.x[v.mask].view(-1, image_size, image_size, 3).permute(0, 3, 1, 2) / 255.0
        per_frame[v.mask] = encoder(images).to(per_frame.dtype)
    return per_frame


class FaceCropModel(TorchSequenceModel):
    """A model whose `visual_modality` is raw face crops: resized, not standardised, augmentable."""
    default_params = {"visual_modality": "visual", "image_size": 48, "backbone": "resnet18",
                      "pretrained_file": "auto"}
    param_types = {**TorchSequenceModel.param_types, "pretrained_file": (str, type(None))}  # None: random init

    def prepare_rows(self, modality: str, x: np.ndarray) -> np.ndarray:
        if modality != self.cfg["visual_modality"]:
            return x
        return resize_crop_rows(x, int(self.cfg["image_size"]))

    def standardises(self, modality: str) -> bool:
        return modality != self.cfg["visual_modality"]

    def image_modalities(self) -> list[str]:
        return [self.cfg["visual_modality"]]
