"""Recurrent heads on frozen per-frame features: `lstm_head` (seed 002) and `muse_lstm` (the MuSe 2022
baseline). More: docs/PIPELINE.md, "Recurrent heads (seed 002, MuSe): lstm_head.py"."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from competition.models.layers import MaskedRNN, MissingFill, output_head
from competition.models.registry import register_model
from competition.features.batching import Batch
from competition.models.trainer import TorchSequenceModel


class LSTMRegressor(nn.Module):
    def __init__(self, dims: dict[str, int], n_targets: int, hidden: int, layers: int, project: bool,
                 bidirectional: bool, dropout: float):
        super().__init__()
        self.names = sorted(dims)
        in_dim = sum(dims.values())
        self.project = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout)) \
            if project else nn.Identity()
        self.rnn = MaskedRNN(hidden if project else in_dim, hidden, layers, "lstm", dropout, bidirectional)
        self.fill = MissingFill(self.rnn.out_dim)
        self.drop = nn.Dropout(dropout)
        self.head = output_head(self.rnn.out_dim, hidden, n_targets, dropout)

    def forward(self, batch: Batch) -> Tensor:
        mask = torch.stack([batch[n].mask for n in self.names]).all(0)  # frames every modality has
        x = torch.cat([batch[n].x for n in self.names], -1)
        _, last = self.rnn(self.project(x), mask, batch[self.names[0]].lengths)
        return self.head(self.drop(self.fill(last, mask.any(1))))


class _LSTMModel(TorchSequenceModel):
    requires_shared_grid = True
    one_modality = True

    def build_module(self, dims: dict[str, int]) -> nn.Module:
        c = self.cfg
        return LSTMRegressor(dims, self.n_targets, int(c["hidden"]), int(c["layers"]), bool(c["project"]),
                             bool(c["bidirectional"]), float(c["dropout"]))


@register_model("lstm_head")
class LSTMHeadModel(_LSTMModel):
    default_loss = "pcc"
    default_params = {"hidden": 64, "layers": 1, "project": False, "bidirectional": False, "dropout": 0.2}


@register_model("muse_lstm")
class MuseLSTMModel(_LSTMModel):
    default_loss = "mse"
    default_params = {"hidden": 64, "layers": 2, "project": True, "bidirectional": False, "dropout": 0.2}
