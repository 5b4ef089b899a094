"""From stored features to padded, masked multi-modal batches. More: docs/PIPELINE.md, "Batches: batching.py"."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from competition.features.registry import FeatureOutput, parse_feature_spec

if TYPE_CHECKING:  # torch is imported where batches are made: readers of stored features do without it
    import torch
    from torch import Tensor

RESAMPLE_MODES = ("mean", "nearest", "linear")


@dataclass
class ModalityInput:
    """One clip's rows of one modality: x (T, D), mask (T,) True where the row is real. T >= 1."""
    x: np.ndarray
    mask: np.ndarray

    @property
    def present(self) -> bool:
        return bool(self.mask.any())


@dataclass
class ModalityBatch:
    """x (B, T, D) float, mask (B, T) bool (False on padding and on missing rows), lengths (B,): rows of
    each clip before batch padding."""
    x: Tensor
    mask: Tensor
    lengths: Tensor

    @property
    def present(self) -> Tensor:
        """(B,) True where the clip has at least one real row of this modality."""
        return self.mask.any(1)

    def to(self, device: torch.device | str) -> "ModalityBatch":
        return ModalityBatch(self.x.to(device), self.mask.to(device), self.lengths.to(device))


Batch = dict[str, ModalityBatch]
ClipInputs = dict[str, ModalityInput]


def resolve_modalities(modalities: Mapping[str, str | Sequence[str | int]] | None,
                       feature_specs: Sequence[str | dict]) -> dict[str, list[int]]:
    """Modality name -> indices into the experiment's feature specs. A feature is referred to by its
    extractor name (or its index in `features` when one extractor is listed twice). With no mapping,
    every feature is its own modality, named after its extractor."""
    names = [parse_feature_spec(s)[0] for s in feature_specs]
    if not modalities:
        out: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            out[n if n not in out else f"{n}_{i}"] = [i]
        return out
    resolved = {}
    for modality, refs in modalities.items():
        refs = [refs] if isinstance(refs, (str, int)) else list(refs)
        idx = []
        for ref in refs:
            if isinstance(ref, int):
                if not 0 <= ref < len(names):
                    raise ValueError(f"modality {modality!r}: feature index {ref} out of range ({names})")
                idx.append(ref)
                continue
            hits = [i for i, n in enumerate(names) if n == ref]
            if len(hits) != 1:
                raise ValueError(f"modality {modality!r}: feature {ref!r} matches {len(hits)} of the "
                                 f"experiment's features {names}; list it once, or refer to it by index")
            idx.append(hits[0])
        if not idx:
            raise ValueError(f"modality {modality!r} names no feature")
        resolved[str(modality)] = idx
    return resolved


def row_times(out: FeatureOutput, span: float | None) -> np.ndarray:
    """Timestamps of a sequence's rows; without stored t, rows are spread evenly over `span` seconds
    (or one row per second when the clip's span is unknown)."""
    n = len(out.x)
    if out.t is not None and len(out.t) == n:
        return np.asarray(out.t, dtype=np.float64)
    span = float(span) if span else float(n)
    return (np.arange(n) + 0.5) * span / max(n, 1)


def row_mask(out: FeatureOutput) -> np.ndarray:
    mask = np.ones(len(out.x), bool) if out.mask is None else np.asarray(out.mask, bool).copy()
    return mask & np.isfinite(out.x).all(1)


def resample(x: np.ndarray, t: np.ndarray, mask: np.ndarray, centres: np.ndarray, width: float,
             how: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Rows (x, t, mask) onto grid cells of `width` seconds around `centres`. "mean" averages the real
    rows inside each cell; "nearest" (for images) copies the nearest real row. Cells with no real row
    take the nearest real row within max(width, row spacing) (sample-and-hold), else stay masked.
    "linear" interpolates the real rows at the centres (e.g. audio frames aligned to the video frame rate),
    masking centres farther than one row spacing outside the real rows."""
    if how not in RESAMPLE_MODES:
        raise ValueError(f"resample mode must be one of {RESAMPLE_MODES}, got {how!r}")
    g = len(centres)
    out = np.zeros((g, x.shape[1]), dtype=np.float32 if how in ("mean", "linear") else x.dtype)
    valid = np.zeros(g, bool)
    real = np.flatnonzero(mask)
    if len(real) == 0:
        return out, valid
    tr = t[real]
    if how == "linear":
        order = np.argsort(tr, kind="stable")
        ts, xs = tr[order], x[real[order]].astype(np.float64)
        step = float(np.median(np.diff(ts))) if len(ts) > 1 else width
        valid = (centres >= ts[0] - step) & (centres <= ts[-1] + step)
        for j in range(x.shape[1]):
            out[:, j] = np.interp(centres, ts, xs[:, j])
        out[~valid] = 0
        return out, valid
    if how == "mean":
        # each row to its nearest centre (ties to the later one): on an even grid that is the row's cell;
        # on the uneven rows of a sequence feature, fixed-width bins counted from the first row would
        # drift away from the rows they stand for, the further the longer the clip
        pos = np.clip(np.searchsorted(centres, tr), 1, max(g - 1, 1))
        left, right = (pos - 1, np.minimum(pos, g - 1)) if g > 1 else (np.zeros_like(pos), np.zeros_like(pos))
        cell = np.where(np.abs(tr - centres[left]) < np.abs(centres[right] - tr), left, right)
        sums = np.zeros((g, x.shape[1]), np.float64)
        np.add.at(sums, cell, x[real].astype(np.float64))
        counts = np.bincount(cell, minlength=g)
        valid = counts > 0
        out[valid] = (sums[valid] / counts[valid, None]).astype(np.float32)
    spacing = float(np.median(np.diff(tr))) if len(tr) > 1 else width
    tolerance = max(width, spacing) * 0.5 + 1e-6 if how == "mean" else max(width, spacing) + 1e-6
    todo = np.flatnonzero(~valid)
    if len(todo):
        order = np.argsort(tr)
        ts = tr[order]
        pos = np.clip(np.searchsorted(ts, centres[todo]), 1, max(len(ts) - 1, 1))
        left = ts[pos - 1] if len(ts) > 1 else ts[np.zeros_like(pos)]
        right = ts[np.minimum(pos, len(ts) - 1)]
        pick = np.where(np.abs(centres[todo] - left) <= np.abs(right - centres[todo]), pos - 1, pos)
        pick = np.minimum(pick, len(ts) - 1)
        near = np.abs(ts[pick] - centres[todo]) <= tolerance
        rows = real[order[pick[near]]]
        out[todo[near]] = x[rows]
        valid[todo[near]] = True
    return out, valid


def even_grid(times: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, float]:
    """`n` cell centres spanning all the given timestamps, and the cell width."""
    ts = [t for t in times if len(t)]
    if not ts:
        return np.arange(n, dtype=np.float64) + 0.5, 1.0
    lo = min(float(t.min()) for t in ts)
    hi = max(float(t.max()) for t in ts)
    width = (hi - lo) / n if hi > lo else 1.0
    lo = lo if hi > lo else lo - n / 2
    return lo + (np.arange(n) + 0.5) * width, width


def merge_features(outs: Sequence[FeatureOutput | None], grid: tuple[np.ndarray, float] | None,
                   how: str, span: float | None, dims: Sequence[int | None]) -> ModalityInput:
    """The features of one modality for one clip, on `grid` (or the first sequence feature's rows) and
    concatenated. `dims` gives each feature's width, needed to shape a missing feature's zeros."""
    seqs = [o for o in outs if o is not None and o.x.ndim == 2 and len(o.x)]
    if grid is None:
        if seqs:
            ref = seqs[0]
            t_ref = row_times(ref, span)
            width = float(np.median(np.diff(t_ref))) if len(t_ref) > 1 else 1.0
            grid = (t_ref, width)
        else:
            grid = (np.array([0.5]), 1.0)
    centres, width = grid
    parts, mask = [], np.ones(len(centres), bool)
    for out, dim in zip(outs, dims):
        if out is None or (out.x.ndim == 2 and len(out.x) == 0):
            if dim is None:
                raise ValueError("a feature missing for every clip has no known width")
            parts.append(np.zeros((len(centres), dim), np.float32))
            mask[:] = False
        elif out.x.ndim == 1:  # a clip-level vector: the same value at every step
            parts.append(np.broadcast_to(out.x.astype(np.float32), (len(centres), len(out.x))))
            mask &= bool(np.isfinite(out.x).all())
        else:
            x, m = resample(out.x, row_times(out, span), row_mask(out), centres, width, how)
            parts.append(x)
            mask &= m
    x = np.concatenate(parts, 1) if len(parts) > 1 else np.array(parts[0])
    x = np.where(mask[:, None], x, 0).astype(x.dtype)
    return ModalityInput(x=x, mask=mask)


EDGE = 1e-4  # stored times are float32: a row on a window's edge stays in it


def window_bounds(t: np.ndarray, lo, hi):
    """Row index range [a, b) of the sorted times `t` within [lo, hi] (scalars or arrays of windows)."""
    return (np.searchsorted(t, np.asarray(lo) - EDGE, "left"), np.searchsorted(t, np.asarray(hi) + EDGE, "right"))


def pick_evenly(inp: ModalityInput, max_len: int) -> ModalityInput:
    """At most `max_len` rows, evenly spaced (seed 001 samples 32 frames per clip this way)."""
    if len(inp.x) <= max_len:
        return inp
    idx = np.round(np.linspace(0, len(inp.x) - 1, max_len)).astype(int)
    return ModalityInput(inp.x[idx], inp.mask[idx])


def clip_span(outs: Sequence[FeatureOutput | None]) -> float | None:
    ts = [np.asarray(o.t) for o in outs if o is not None and o.t is not None and len(o.t)]
    return max(float(t.max()) for t in ts) if ts else None


def build_clip_inputs(outs: Sequence[FeatureOutput | None], modalities: Mapping[str, list[int]],
                      dims: Sequence[int | None], resample_modes: Mapping[str, str],
                      grid_len: int | None = None, max_len: int | None = None,
                      prepare: Callable[[str, np.ndarray], np.ndarray] | None = None,
                      window: tuple[float, float] | None = None) -> ClipInputs:
    """One clip (or one frame's context `window`, in seconds): all its feature outputs (indexed like the
    experiment's features) -> its modalities. With grid_len, every modality is put on one shared grid of
    that many steps spanning the clip (or the whole window, its edges masked where the video is not)."""
    span = clip_span(outs)
    grid = None
    if grid_len and window is not None:
        lo, hi = window
        width = (hi - lo) / grid_len
        grid = (lo + (np.arange(grid_len) + 0.5) * width, width)
    elif grid_len:
        times = [row_times(o, span) for o in outs if o is not None and o.x.ndim == 2 and len(o.x)]
        grid = even_grid(times, grid_len)
    clip: ClipInputs = {}
    for name, idx in modalities.items():
        inp = merge_features([outs[i] for i in idx], grid, resample_modes.get(name, "mean"), span,
                             [dims[i] for i in idx])
        if max_len and not grid_len:
            inp = pick_evenly(inp, max_len)
        if prepare is not None:
            inp = ModalityInput(prepare(name, inp.x), inp.mask)
        clip[name] = inp
    return clip


@dataclass
class Timeline:
    """One video's modalities along its whole length (frame tasks). A frame's context window is a slice
    of it, a view: overlapping windows share memory, and the video is resampled and standardised once.

    On a shared grid the video is resampled onto `len(inputs)` grids shifted by a fraction of a cell, and
    a window is the `grid_len` cells of the phase whose cells start nearest `t - before` (within
    cell / (2 * phases) of a window centred on the frame). Otherwise a window is the modality's rows within
    [t - before, t + after]; past `max_len` of them, every k-th row (k the smallest that leaves at most
    `max_len`), through the row nearest the frame: the window keeps its span, as a strided view."""
    inputs: list[ClipInputs]       # one per grid phase (a single one without a grid)
    times: dict[str, np.ndarray]   # row (or phase-0 cell centre) times per modality
    before: float
    after: float
    grid_len: int | None = None
    max_len: int | None = None

    def window(self, t: float) -> ClipInputs:
        out: ClipInputs = {}
        phases = len(self.inputs)
        for name in self.inputs[0]:
            ts = self.times[name]
            inp = self.inputs[0][name]
            step = 1
            if self.grid_len:
                width = (self.before + self.after) / self.grid_len
                q = int(round((t - self.before - (ts[0] - width / 2)) / (width / phases)))
                inp = self.inputs[q % phases][name]
                a = q // phases
                b = a + self.grid_len
            else:
                a, b = (int(i) for i in window_bounds(ts, t - self.before, t + self.after))
                if self.max_len and b - a > self.max_len:
                    # every step-th row across the whole window, through the row nearest the frame
                    step = -(-(b - a) // self.max_len)
                    near = min(max(int(np.searchsorted(ts, t)), a), b - 1)
                    a += (near - a) % step
            if b <= a or a < 0 or b > len(inp.x):
                out[name] = ModalityInput(np.zeros((1, inp.x.shape[1]), inp.x.dtype), np.zeros(1, bool))
            else:
                out[name] = ModalityInput(inp.x[a:b:step], inp.mask[a:b:step])
        return out


GRID_PHASES = 5  # a frame's window is at most 1/10 of a cell off centre


def build_timeline(outs: Sequence[FeatureOutput | None], modalities: Mapping[str, list[int]],
                   dims: Sequence[int | None], resample_modes: Mapping[str, str], sample_times: np.ndarray,
                   before: float, after: float, grid_len: int | None = None, max_len: int | None = None,
                   prepare: Callable[[str, np.ndarray], np.ndarray] | None = None) -> Timeline:
    """A video's Timeline covering the windows of the frames at `sample_times` (seconds)."""
    if grid_len:
        width = (before + after) / grid_len
        lo = float(np.min(sample_times)) - before
        n = int(np.ceil((float(np.max(sample_times)) + after - lo) / width)) + 2
        inputs = [build_clip_inputs(outs, modalities, dims, resample_modes, n, None, prepare,
                                    (lo + p * width / GRID_PHASES, lo + p * width / GRID_PHASES + n * width))
                  for p in range(GRID_PHASES)]
        centres = lo + (np.arange(n) + 0.5) * width
        return Timeline(inputs, {m: centres for m in modalities}, before, after, grid_len)
    inputs = build_clip_inputs(outs, modalities, dims, resample_modes, None, None, prepare)
    span = clip_span(outs)
    times = {}
    for name, idx in modalities.items():  # the rows merge_features puts the modality on
        seqs = [outs[i] for i in idx if outs[i] is not None and outs[i].x.ndim == 2 and len(outs[i].x)]
        times[name] = row_times(seqs[0], span) if seqs else np.array([0.5])
    return Timeline([inputs], times, before, after, None, max_len)


def collate(clips: Sequence[ClipInputs]) -> Batch:
    """Pad every modality to the longest clip in the batch; padding rows are zero and masked."""
    import torch
    batch: Batch = {}
    for name in clips[0]:
        rows = [c[name] for c in clips]
        lengths = [len(r.x) for r in rows]
        t, d = max(lengths), rows[0].x.shape[1]
        x = np.zeros((len(rows), t, d), np.float32)
        mask = np.zeros((len(rows), t), bool)
        for i, r in enumerate(rows):
            x[i, : len(r.x)] = r.x
            mask[i, : len(r.x)] = r.mask
        batch[name] = ModalityBatch(torch.from_numpy(x), torch.from_numpy(mask),
                                    torch.tensor(lengths, dtype=torch.long))
    return batch


@dataclass
class Standardiser:
    """Per-modality, per-column standardisation fitted on the training clips' real rows."""
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    clip_value: float = 10.0

    @classmethod
    def fit(cls, clips: Sequence[ClipInputs], modalities: Sequence[str]) -> "Standardiser":
        mean, std = {}, {}
        for name in modalities:
            rows = [c[name].x[c[name].mask] for c in clips if c[name].present]
            d = clips[0][name].x.shape[1]
            data = np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, d))
            m = data.mean(0) if len(data) else np.zeros(d)
            s = data.std(0) if len(data) > 1 else np.ones(d)
            mean[name] = m.astype(np.float32)
            std[name] = np.where(s > 1e-6, s, 1.0).astype(np.float32)
        return cls(mean, std)

    def apply(self, clip: ClipInputs) -> ClipInputs:
        out = dict(clip)
        for name in self.mean:
            inp = clip[name]
            x = np.clip((inp.x - self.mean[name]) / self.std[name], -self.clip_value, self.clip_value)
            out[name] = ModalityInput(np.where(inp.mask[:, None], x, 0).astype(np.float32), inp.mask)
        return out
