"""Seed 004's fusion models `attn_fusion`, `mfn` and `mctn`, trained with CCC loss by default.
More: docs/PIPELINE.md, "Fusion models (seed 004): fusion.py"."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from competition.models.layers import (AttentionPool, MaskedRNN, MissingFill, TransformerEncoder,
                                       output_head, zero_masked)
from competition.models.registry import register_model
from competition.features.batching import Batch
from competition.models.trainer import TorchSequenceModel


# ---------------------------------------------------------------------------------------------- attention
class AttentionFusion(nn.Module):
    def __init__(self, dims: dict[str, int], n_targets: int, hidden: int, heads: int, layers: int,
                 dropout: float):
        super().__init__()
        self.names = sorted(dims)
        self.inp = nn.ModuleDict({n: nn.Linear(d, hidden) for n, d in dims.items()})
        self.encoders = nn.ModuleDict({n: TransformerEncoder(hidden, heads, layers, dropout) for n in dims})
        self.pools = nn.ModuleDict({n: AttentionPool(hidden) for n in dims})
        self.modality_score = nn.Linear(hidden, 1)
        self.head = output_head(hidden, hidden, n_targets, dropout)

    def forward(self, batch: Batch) -> Tensor:
        vecs, present = [], []
        for n in self.names:
            m = batch[n]
            vecs.append(self.pools[n](self.encoders[n](self.inp[n](m.x), m.mask), m.mask))
            present.append(m.present)
        v = torch.stack(vecs, 1)                                    # (B, M, H)
        p = torch.stack(present, 1)                                 # (B, M)
        s = self.modality_score(v).squeeze(-1)
        # a clip with no modality at all attends over the learned 'absent' vectors
        s = s.masked_fill(~p & p.any(1, keepdim=True), float("-inf"))
        return self.head((torch.softmax(s, 1).unsqueeze(-1) * v).sum(1))


@register_model("attn_fusion")
class AttentionFusionModel(TorchSequenceModel):
    default_loss = "ccc"
    default_params = {"hidden": 64, "heads": 4, "layers": 1, "dropout": 0.2}

    def build_module(self, dims: dict[str, int]) -> nn.Module:
        c = self.cfg
        return AttentionFusion(dims, self.n_targets, int(c["hidden"]), int(c["heads"]), int(c["layers"]),
                               float(c["dropout"]))


# ---------------------------------------------------------------------------------------------- MFN
class MemoryFusionNetwork(nn.Module):
    def __init__(self, dims: dict[str, int], n_targets: int, hidden: int, memory: int, attn_hidden: int,
                 dropout: float):
        super().__init__()
        self.names, self.hidden = sorted(dims), hidden
        self.cells = nn.ModuleDict({n: nn.LSTMCell(d + 1, hidden) for n, d in dims.items()})
        c2 = 2 * hidden * len(dims)
        self.delta_attention = nn.Sequential(nn.Linear(c2, attn_hidden), nn.ReLU(), nn.Dropout(dropout),
                                             nn.Linear(attn_hidden, c2))
        self.update = nn.Sequential(nn.Linear(c2, attn_hidden), nn.ReLU(), nn.Linear(attn_hidden, memory),
                                    nn.Tanh())
        self.retain_gate = nn.Sequential(nn.Linear(c2 + memory, memory), nn.Sigmoid())
        self.update_gate = nn.Sequential(nn.Linear(c2 + memory, memory), nn.Sigmoid())
        self.absent = nn.ModuleDict({n: MissingFill(hidden) for n in dims})
        self.memory = memory
        self.head = output_head(hidden * len(dims) + memory, hidden, n_targets, dropout)

    def forward(self, batch: Batch) -> Tensor:
        first = batch[self.names[0]]
        b, t = first.mask.shape
        new = first.x.new_zeros
        h = {n: new(b, self.hidden) for n in self.names}
        c = {n: new(b, self.hidden) for n in self.names}
        u = new(b, self.memory)
        for step in range(t):
            prev_c = torch.cat([c[n] for n in self.names], -1)
            moved = torch.zeros(b, dtype=torch.bool, device=u.device)
            for n in self.names:
                m = batch[n]
                valid = m.mask[:, step]
                inp = torch.cat([zero_masked(m.x[:, step], valid), valid.unsqueeze(-1).to(u.dtype)], -1)
                h_new, c_new = self.cells[n](inp, (h[n], c[n]))
                keep = valid.unsqueeze(-1)          # a view's state moves only on its real rows
                h[n], c[n] = torch.where(keep, h_new, h[n]), torch.where(keep, c_new, c[n])
                moved |= valid
            both = torch.cat([prev_c, torch.cat([c[n] for n in self.names], -1)], -1)
            attended = torch.softmax(self.delta_attention(both), -1) * both
            gates_in = torch.cat([attended, u], -1)
            u_new = self.retain_gate(gates_in) * u + self.update_gate(gates_in) * self.update(attended)
            u = torch.where(moved.unsqueeze(-1), u_new, u)
        finals = [self.absent[n](h[n], batch[n].present) for n in self.names]
        return self.head(torch.cat(finals + [u], -1))


@register_model("mfn")
class MFNModel(TorchSequenceModel):
    default_loss = "ccc"
    requires_shared_grid = True
    default_params = {"grid_len": 16, "hidden": 32, "memory": 32, "attn_hidden": 32, "dropout": 0.2}

    def build_module(self, dims: dict[str, int]) -> nn.Module:
        c = self.cfg
        return MemoryFusionNetwork(dims, self.n_targets, int(c["hidden"]), int(c["memory"]),
                                   int(c["attn_hidden"]), float(c["dropout"]))


# ---------------------------------------------------------------------------------------------- MCTN
def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).to(pred.dtype)
    return ((pred - target) ** 2 * m).sum() / (m.sum() * pred.shape[-1]).clamp_min(1.0)


class CyclicTranslationNetwork(nn.Module):
    def __init__(self, dims: dict[str, int], source: str, target: str, n_targets: int, hidden: int,
                 dropout: float, translation_weight: float, cycle_weight: float):
        super().__init__()
        if set(dims) != {source, target}:
            raise ValueError(f"mctn translates source {source!r} into target {target!r}; the modalities are "
                             f"{sorted(dims)}")
        self.source, self.target = source, target
        self.encoder = MaskedRNN(dims[source], hidden, 1, "gru")
        self.decoder = nn.GRU(hidden, hidden, batch_first=True)
        self.to_target = nn.Linear(hidden, dims[target])
        self.back_encoder = nn.GRU(dims[target], hidden, batch_first=True)
        self.to_source = nn.Linear(hidden, dims[source])
        self.regress_rnn = MaskedRNN(hidden, hidden, 1, "gru")
        self.fill = MissingFill(hidden)
        self.head = output_head(hidden, hidden, n_targets, dropout)
        self.translation_weight, self.cycle_weight = translation_weight, cycle_weight

    def forward(self, batch: Batch) -> Tensor | tuple[Tensor, Tensor]:
        src, tgt = batch[self.source], batch[self.target]
        rows = torch.arange(src.x.shape[1], device=src.x.device).unsqueeze(0) < src.lengths.unsqueeze(1)
        states, _ = self.encoder(src.x, src.mask, src.lengths)     # the joint representation
        _, last = self.regress_rnn(states, rows, src.lengths)
        pred = self.head(self.fill(last, src.present))
        if not self.training:
            return pred
        translated = self.to_target(self.decoder(states)[0])
        back = self.to_source(self.back_encoder(translated)[0])
        aux = self.translation_weight * masked_mse(translated, tgt.x, tgt.mask & rows & src.mask) + \
            self.cycle_weight * masked_mse(back, src.x, src.mask)
        return pred, aux


@register_model("mctn")
class MCTNModel(TorchSequenceModel):
    default_loss = "ccc"
    requires_shared_grid = True
    default_params = {"grid_len": 16, "source": "visual", "target": "audio", "hidden": 64, "dropout": 0.2,
                      "translation_weight": 0.5, "cycle_weight": 0.5}

    def build_module(self, dims: dict[str, int]) -> nn.Module:
        c = self.cfg
        return CyclicTranslationNetwork(dims, str(c["source"]), str(c["target"]), self.n_targets,
                                        int(c["hidden"]), float(c["dropout"]), float(c["translation_weight"]),
                                        float(c["cycle_weight"]))
