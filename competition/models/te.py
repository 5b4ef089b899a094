"""Seed 000 "TE" (temporal convolution -> Transformer encoder -> pooling -> FC) and `te_crops`, seed 004's
EXPR system end to end. More: docs/PIPELINE.md, "TE and te_crops (seeds 000, 004): te.py"."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from competition.models.backbones import PooledBackbone
from competition.models.face_crops import FaceCropModel, ImageNetNormalise, encode_frames
from competition.models.layers import MeanPool, TransformerEncoder, output_head, zero_masked
from competition.models.registry import register_model
from competition.features.batching import Batch, ModalityBatch
from competition.models.trainer import TorchSequenceModel


class TENet(nn.Module):
    def __init__(self, dims: dict[str, int], n_targets: int, hidden: int, heads: int, layers: int,
                 kernel: int, dropout: float):
        super().__init__()
        self.names = sorted(dims)
        in_dim = sum(dims.values())
        self.conv = nn.Conv1d(in_dim, hidden, kernel, padding=kernel // 2)
        self.drop = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(hidden, heads, layers, dropout)
        self.pool = MeanPool(hidden)
        self.head = output_head(hidden, hidden, n_targets, dropout)

    def forward(self, batch: Batch) -> Tensor:
        # several modalities are concatenated row by row, so they must share a grid (grid_len)
        mask = torch.stack([batch[n].mask for n in self.names]).all(0)  # frames every modality has
        x = zero_masked(torch.cat([batch[n].x for n in self.names], -1), mask)
        h = self.drop(nn.functional.gelu(self.conv(x.transpose(1, 2)).transpose(1, 2)))
        h = self.encoder(zero_masked(h, mask), mask)
        return self.head(self.pool(h, mask))


@register_model("te")
class TEModel(TorchSequenceModel):
    """Defaults are a CPU-sized TE; the paper tuned hidden 512..1024, lr 1e-5..2e-4, batch 8..32."""
    default_loss = "mse"
    requires_shared_grid = True
    one_modality = True
    default_params = {"hidden": 64, "heads": 4, "layers": 2, "kernel": 3, "dropout": 0.1}

    def build_module(self, dims: dict[str, int]) -> nn.Module:
        c = self.cfg
        return TENet(dims, self.n_targets, int(c["hidden"]), int(c["heads"]), int(c["layers"]),
                     int(c["kernel"]), float(c["dropout"]))


class CropTENet(nn.Module):
    """Seed 004's EXPR network end to end: each face crop -> a timm CNN (global pooling) -> TENet over
    the frames of the window."""

    def __init__(self, visual: str, n_targets: int, image_size: int, backbone: str, pretrained_file: str | None,
                 hidden: int, heads: int, layers: int, kernel: int, dropout: float):
        super().__init__()
        cnn = PooledBackbone(backbone, pretrained_file)
        self.visual, self.image_size, self.dim = visual, image_size, cnn.channels
        self.frames = nn.Sequential(ImageNetNormalise(), cnn)
        self.te = TENet({visual: cnn.channels}, n_targets, hidden, heads, layers, kernel, dropout)

    def forward(self, batch: Batch) -> Tensor:
        v = batch[self.visual]
        frames = encode_frames(self.frames, v, self.image_size, self.dim)
        return self.te({self.visual: ModalityBatch(frames, v.mask, v.lengths)})


@register_model("te_crops")
class CropTEModel(FaceCropModel):
    """TE on face crops, its CNN fine-tuned with it (paper 004: MobileNetV3 on 112 px faces). Reads one
    modality, the `faces` crops; `freeze_backbone` / `backbone_lr` stage the fine-tuning."""
    default_loss = "mse"
    default_params = {**FaceCropModel.default_params, **TEModel.default_params,
                      "modalities": {"visual": "faces"}, "resample": {"visual": "nearest"},
                      "backbone": "mobilenetv3_large_100", "max_len": 16}

    def backbone(self, module: nn.Module) -> nn.Module | None:
        return module.frames[1]

    def build_module(self, dims: dict[str, int]) -> nn.Module:
        c = self.cfg
        return CropTENet(c["visual_modality"], self.n_targets, int(c["image_size"]), str(c["backbone"]),
                         c["pretrained_file"], int(c["hidden"]), int(c["heads"]), int(c["layers"]), int(c["kernel"]),
                         float(c["dropout"]))
