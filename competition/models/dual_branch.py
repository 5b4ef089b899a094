"""Seed 001: a dual-branch network with modality dropout. More: docs/PIPELINE.md, "dual_branch (seed 001)"."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from competition.models.backbones import StageMap
from competition.models.face_crops import FaceCropModel, ImageNetNormalise, encode_frames
from competition.models.layers import AttentionPool, CausalTCN, TransformerEncoder, output_head
from competition.models.registry import register_model
from competition.features.batching import Batch, ModalityBatch


class SpatialFrameEncoder(nn.Module):
    """(N, 3, S, S) images -> (N, dim): CNN map -> tokens + learnable positions -> Transformer ->
    attention pooling over positions."""

    def __init__(self, image_size: int, stages: int, dim: int, heads: int, layers: int, dropout: float,
                 pretrained_file: str | None, backbone: str = "resnet18"):
        super().__init__()
        self.cnn = StageMap(backbone, stages, pretrained_file)
        channels = self.cnn.channels
        with torch.no_grad():
            side = self.cnn.eval()(torch.zeros(1, 3, image_size, image_size)).shape[-1]
        self.proj = nn.Linear(channels, dim)
        self.positions = nn.Parameter(torch.randn(side * side, dim) * 0.02)
        self.encoder = TransformerEncoder(dim, heads, layers, dropout, positions=False)
        self.pool = AttentionPool(dim)
        self.normalise = ImageNetNormalise()

    def forward(self, images: Tensor) -> Tensor:
        fmap = self.cnn(self.normalise(images))                       # (N, C, h, w)
        tokens = self.proj(fmap.flatten(2).transpose(1, 2)) + self.positions
        every = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return self.pool(self.encoder(tokens, every), every)


class TemporalEncoder(nn.Module):
    """Linear -> causal TCN -> temporal Transformer (with time positions)."""

    def __init__(self, in_dim: int, dim: int, tcn_layers: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.inp = nn.Linear(in_dim, dim)
        self.tcn = CausalTCN(dim, tcn_layers, 3, dropout)
        self.transformer = TransformerEncoder(dim, heads, layers, dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.transformer(self.tcn(self.inp(x), mask), mask)


class DualBranchNet(nn.Module):
    def __init__(self, visual_dim: int, audio_dim: int, n_targets: int, image_size: int, cnn_stages: int,
                 spatial_dim: int, spatial_layers: int, temporal_dim: int, temporal_layers: int,
                 tcn_layers: int, heads: int, dropout: float, p_m: float, p_v: float,
                 pretrained_file: str | None, visual: str, audio: str, backbone: str = "resnet18"):
        super().__init__()
        if visual_dim != image_size * image_size * 3:
            raise ValueError(f"visual rows of width {visual_dim} are not {image_size}x{image_size}x3 crops")
        self.visual, self.audio, self.image_size = visual, audio, image_size
        self.p_m, self.p_v = p_m, p_v
        self.frames = SpatialFrameEncoder(image_size, cnn_stages, spatial_dim, heads, spatial_layers, dropout,
                                          pretrained_file, backbone)
        self.visual_temporal = TemporalEncoder(spatial_dim, temporal_dim, tcn_layers, heads, temporal_layers,
                                               dropout)
        self.audio_temporal = TemporalEncoder(audio_dim, temporal_dim, tcn_layers, heads, temporal_layers,
                                              dropout)
        self.visual_head = nn.ModuleDict({"pool": AttentionPool(temporal_dim),
                                          "fc": output_head(temporal_dim, temporal_dim, n_targets, dropout)})
        self.audio_head = nn.ModuleDict({"pool": AttentionPool(temporal_dim),
                                         "fc": output_head(temporal_dim, temporal_dim, n_targets, dropout)})
        self.fuse = nn.Sequential(nn.Linear(2 * temporal_dim, temporal_dim), nn.LayerNorm(temporal_dim))
        self.fusion_head = nn.ModuleDict({"pool": AttentionPool(temporal_dim),
                                          "fc": output_head(temporal_dim, temporal_dim, n_targets, dropout)})
        self.stage = "joint"
        self.frozen: list[nn.Module] = []

    # -- stages
    def set_stage(self, stage: str) -> list[nn.Parameter]:
        """Which parameters train in this stage: 'visual' / 'audio' (a branch with its own head),
        'fusion' (branches frozen) or 'joint' (everything, end to end)."""
        branches = {"visual": [self.frames, self.visual_temporal, self.visual_head],
                    "audio": [self.audio_temporal, self.audio_head]}
        if stage in branches:
            parts = branches[stage]
        elif stage == "fusion":
            parts = [self.fuse, self.fusion_head]
            self.frozen = branches["visual"] + branches["audio"]
            for m in self.frozen:
                m.requires_grad_(False)
        elif stage == "joint":
            parts = [self]
        else:
            raise ValueError(f"unknown stage {stage!r}")
        self.stage = stage
        return [p for m in parts for p in m.parameters()]

    def train(self, mode: bool = True) -> "DualBranchNet":
        super().train(mode)
        for m in self.frozen:  # frozen branches keep eval behaviour (no dropout, fixed BatchNorm)
            m.eval()
        return self

    # -- forward
    def visual_sequence(self, v: ModalityBatch) -> Tensor:
        per_frame = encode_frames(self.frames, v, self.image_size, self.visual_temporal.inp.in_features)
        return self.visual_temporal(per_frame, v.mask)

    def forward(self, batch: Batch) -> Tensor:
        v, a = batch[self.visual], batch[self.audio]
        if self.stage == "visual":
            h = self.visual_sequence(v)
            return self.visual_head["fc"](self.visual_head["pool"](h, v.mask))
        ha = self.audio_temporal(a.x, a.mask)
        if self.stage == "audio":
            return self.audio_head["fc"](self.audio_head["pool"](ha, a.mask))
        hv = self.visual_sequence(v)
        keep_v, keep_a = self.modality_keep(v.present, a.present)
        hv = hv * keep_v[:, None, None].to(hv.dtype)
        ha = ha * keep_a[:, None, None].to(ha.dtype)
        mask = (v.mask & keep_v[:, None]) | (a.mask & keep_a[:, None])
        fused = self.fuse(torch.cat([ha, hv], -1))
        return self.fusion_head["fc"](self.fusion_head["pool"](fused, mask))

    def modality_keep(self, has_v: Tensor, has_a: Tensor) -> tuple[Tensor, Tensor]:
        """Modality dropout while training (only where both modalities are there); presence otherwise."""
        if not self.training:
            return has_v, has_a
        both = torch.rand(has_v.shape, device=has_v.device) < self.p_m
        video = torch.rand(has_v.shape, device=has_v.device) < self.p_v
        keep_v, keep_a = both | video, both | ~video
        full = has_v & has_a
        return torch.where(full, keep_v, has_v), torch.where(full, keep_a, has_a)


@register_model("dual_branch")
class DualBranchModel(FaceCropModel):
    """Paper sizes: spatial dim 256 (4 blocks, 4 heads), temporal dim 128, 32 frames of 112 px, Adam
    1e-4, batch 64, LR halved after 10 stalled epochs, p_m 0.9 (0.1 dropout), p_v 0.5. The defaults
    here are a CPU-sized version: 16 steps, 48 px crops, one ResNet stage, 1 spatial block."""
    default_loss = "mse"
    requires_shared_grid = True
    default_params = {
        **FaceCropModel.default_params,
        "modalities": {"visual": "faces", "audio": "mfcc"}, "resample": {"visual": "nearest"},
        "grid_len": 16, "audio_modality": "audio", "cnn_stages": 1, "spatial_dim": 64, "spatial_layers": 1,
        "temporal_dim": 64, "temporal_layers": 1, "tcn_layers": 5, "heads": 4, "dropout": 0.1, "p_m": 0.9,
        "p_v": 0.5, "staged": False, "lr": 1e-3,
    }

    def training_stages(self) -> list[str]:
        return ["visual", "audio", "fusion"] if self.cfg["staged"] else ["joint"]

    def backbone(self, module: nn.Module) -> nn.Module | None:
        return module.frames.cnn

    def build_module(self, dims: dict[str, int]) -> nn.Module:
        c = self.cfg
        v, a = c["visual_modality"], c["audio_modality"]
        return DualBranchNet(dims[v], dims[a], self.n_targets, int(c["image_size"]), int(c["cnn_stages"]),
                             int(c["spatial_dim"]), int(c["spatial_layers"]), int(c["temporal_dim"]),
                             int(c["temporal_layers"]), int(c["tcn_layers"]), int(c["heads"]),
                             float(c["dropout"]), float(c["p_m"]), float(c["p_v"]), c["pretrained_file"], v, a,
                             str(c["backbone"]))
