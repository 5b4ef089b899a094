"""Seed 003: an RNN per modality and cross-attention queried by the centre frame's face.
More: docs/PIPELINE.md, "RNN with cross-attention (seed 003): rnn_xattn.py"."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from competition.models.layers import MaskedRNN, MissingFill, output_head, safe_key_padding
from competition.models.registry import register_model
from competition.features.batching import Batch
from competition.models.trainer import TorchSequenceModel


def centre_rows(x: Tensor, mask: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(B, D) the real row nearest to each clip's centre, and (B,) whether the clip has one."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    distance = (steps - (lengths.unsqueeze(1) - 1) / 2).abs().to(x.dtype)
    distance = distance.masked_fill(~mask, float("inf"))
    idx = distance.argmin(1)
    return x[torch.arange(len(x), device=x.device), idx], mask.any(1)


class RNNCrossAttention(nn.Module):
    def __init__(self, dims: dict[str, int], query: str, n_targets: int, hidden: int, layers: int,
                 heads: int, cell: str, dropout: float):
        super().__init__()
        self.names, self.query = sorted(dims), query
        self.rnns = nn.ModuleDict({n: MaskedRNN(d, hidden, layers, cell, dropout) for n, d in dims.items()})
        self.query_proj = nn.Linear(dims[query], hidden)
        self.query_fill = MissingFill(hidden)
        self.attn = nn.ModuleDict({n: nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
                                   for n in dims})
        self.absent = nn.ModuleDict({n: MissingFill(hidden) for n in dims})
        self.head = output_head(hidden * (len(dims) + 1), hidden, n_targets, dropout)

    def forward(self, batch: Batch) -> Tensor:
        q_in = batch[self.query]
        centre, has_face = centre_rows(q_in.x, q_in.mask, q_in.lengths)
        q = self.query_fill(self.query_proj(centre), has_face).unsqueeze(1)
        parts = [q.squeeze(1)]
        for n in self.names:
            m = batch[n]
            states, _ = self.rnns[n](m.x, m.mask, m.lengths)
            att, _ = self.attn[n](q, states, states, key_padding_mask=safe_key_padding(m.mask),
                                  need_weights=False)
            parts.append(self.absent[n](att.squeeze(1), m.present))
        return self.head(torch.cat(parts, -1))


@register_model("rnn_xattn")
class RNNCrossAttentionModel(TorchSequenceModel):
    default_loss = "mse"
    requires_shared_grid = True
    default_params = {"grid_len": 12, "query_modality": "face", "hidden": 64, "layers": 2, "heads": 4,
                      "cell": "gru", "dropout": 0.1}

    def build_module(self, dims: dict[str, int]) -> nn.Module:
        c = self.cfg
        if c["query_modality"] not in dims:
            raise ValueError(f"query_modality {c['query_modality']!r} is not one of the modalities {sorted(dims)}")
        return RNNCrossAttention(dims, c["query_modality"], self.n_targets, int(c["hidden"]), int(c["layers"]),
                                 int(c["heads"]), str(c["cell"]), float(c["dropout"]))
