"""Seed 000 "TE": 1-D temporal convolution (local context) -> Transformer encoder (long-range context
with dynamic attention weights) -> pooling -> fully connected layers -> sigmoid. The paper stacked three
per-frame visual feature sets; here any per-frame features listed in one modality are put on the first
one's time grid and concatenated."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from competition.models.layers import MeanPool, TransformerEncoder, output_head, zero_masked
from competition.models.registry import register_model
from competition.features.batching import Batch
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
        mask = batch[self.names[0]].mask
        for n in self.names[1:]:
            mask = mask & batch[n].mask
        x = zero_masked(torch.cat([batch[n].x for n in self.names], -1), mask)
        h = self.drop(nn.functional.gelu(self.conv(x.transpose(1, 2)).transpose(1, 2)))
        h = self.encoder(zero_masked(h, mask), mask)
        return self.head(self.pool(h, mask))


@register_model("te")
class TEModel(TorchSequenceModel):
    """Defaults are a CPU-sized TE; the paper tuned hidden 512..1024, lr 1e-5..2e-4, batch 8..32."""
    default_loss = "mse"
    requires_shared_grid = True
    default_params = {"hidden": 64, "heads": 4, "layers": 2, "kernel": 3, "dropout": 0.1}

    def default_modalities(self, specs: list) -> dict[str, list[int]]:
        return {"frames": list(range(len(specs)))}

    def build_module(self, dims: dict[str, int]) -> nn.Module:
        c = self.cfg
        return TENet(dims, self.n_targets, int(c["hidden"]), int(c["heads"]), int(c["layers"]),
                     int(c["kernel"]), float(c["dropout"]))
