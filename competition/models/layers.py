"""Masked building blocks the sequence models share. Every block takes a (B, T) mask that is False on
padding and on missing rows, and gives outputs that do not depend on what the masked rows hold."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


def zero_masked(x: Tensor, mask: Tensor) -> Tensor:
    return x * mask.unsqueeze(-1).to(x.dtype)


def safe_key_padding(mask: Tensor) -> Tensor:
    """key_padding_mask for attention (True = ignore). A row with no real key would give NaNs, so its
    first key is kept; callers mark such rows absent through `mask.any(1)`."""
    pad = ~mask
    empty = ~mask.any(1)
    if empty.any():
        pad = pad.clone()
        pad[empty, 0] = False
    return pad


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """(B, T, D) -> (B, D) mean over real rows; zeros where there are none."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class MissingFill(nn.Module):
    """Replaces the pooled vector of a clip with no real row by a learned 'absent' vector, so absence
    is an explicit input to what follows rather than a zero that pretends to be data."""

    def __init__(self, dim: int):
        super().__init__()
        self.absent = nn.Parameter(torch.zeros(dim))

    def forward(self, pooled: Tensor, present: Tensor) -> Tensor:
        return torch.where(present.unsqueeze(-1), pooled, self.absent.to(pooled.dtype).expand_as(pooled))


class AttentionPool(nn.Module):
    """Softmax-weighted sum over real rows (seed 001's aggregation: FC -> softmax -> weighted sum)."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.fill = MissingFill(dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        s = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        present = mask.any(1)
        s = torch.where(present.unsqueeze(1), s, torch.zeros_like(s))
        a = torch.softmax(s, dim=1) * mask.to(x.dtype)
        return self.fill((a.unsqueeze(-1) * x).sum(1), present)


class MeanPool(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fill = MissingFill(dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.fill(masked_mean(x, mask), mask.any(1))


def sinusoidal_positions(n: int, dim: int, device: torch.device | None = None) -> Tensor:
    pos = torch.arange(n, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe


class TransformerEncoder(nn.Module):
    """Pre-norm Transformer encoder over (B, T, D) with masked keys and sinusoidal time positions."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float = 0.1, positions: bool = True):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.positions = positions

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.positions:
            x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        return zero_masked(self.encoder(x, src_key_padding_mask=safe_key_padding(mask)), mask)


class CausalTCN(nn.Module):
    """Temporal convolutional network of seed 001 (after Bai et al.): dilated causal 1-D convolutions
    (kernel 3, dilation 1, 2, 4, ...), each with a residual connection; a step sees only the past."""

    def __init__(self, dim: int, layers: int = 5, kernel: int = 3, dropout: float = 0.1):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, dilation=2 ** i) for i in range(layers))
        self.pads = [(kernel - 1) * 2 ** i for i in range(layers)]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = zero_masked(x, mask).transpose(1, 2)
        m = mask.unsqueeze(1).to(h.dtype)
        for conv, pad in zip(self.convs, self.pads):
            h = h + self.drop(torch.relu(conv(nn.functional.pad(h, (pad, 0)))))
            h = h * m
        return h.transpose(1, 2)


class MaskedRNN(nn.Module):
    """LSTM/GRU over the rows of each clip (packed by length, so batch padding is never read), with the
    row mask appended as an input channel so missing rows are seen as missing."""

    def __init__(self, in_dim: int, hidden: int, layers: int = 1, cell: str = "lstm", dropout: float = 0.0,
                 bidirectional: bool = False):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(in_dim + 1, hidden, layers, batch_first=True, bidirectional=bidirectional,
                       dropout=dropout if layers > 1 else 0.0)
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(self, x: Tensor, mask: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """-> (outputs (B, T, H) zero beyond each length, last hidden state of the top layer (B, H))."""
        inp = torch.cat([zero_masked(x, mask), mask.unsqueeze(-1).to(x.dtype)], -1)
        packed = pack_padded_sequence(inp, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        h = state[0] if isinstance(state, tuple) else state
        last = torch.cat([h[-2], h[-1]], -1) if self.rnn.bidirectional else h[-1]
        return out, last


def output_head(in_dim: int, hidden: int, n_targets: int, dropout: float) -> nn.Sequential:
    """FC -> ReLU -> dropout -> FC: raw scores, which the trainer turns into the task's output (sigmoid
    intensities or softmax class probabilities)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, n_targets))
