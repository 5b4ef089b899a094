"""`TorchSequenceModel`: the training loop every neural model shares. A model module subclasses it and
only says how to build its nn.Module from the modality widths (and, if it needs to, how to prepare a
modality's rows or train in stages); loading, masking, batching, optimisation, early stopping, LR
halving, checkpoints and reporting live here.

The nn.Module takes a `Batch` (modality -> ModalityBatch) and returns (B, n_targets) raw scores, or a
tuple (scores, auxiliary loss) when it has a training objective of its own (e.g. MCTN's translation
loss), which is added to the task loss while training. The trainer turns scores into the task's output:
sigmoid values in [0, 1] (ERI intensities; VA mapped to [0, 1] by the task), or softmax class
probabilities (EXPR). Validation scores, early stopping and LR halving use the task's metric.

Common params (all optional):
  modalities        {name: feature | [features]} (default: one modality per feature)
  resample          {modality: mean | nearest} how rows are put on a grid (default mean)
  grid_len          steps of the shared time grid (models that fuse frame by frame); max_len: cap on
                    rows per modality otherwise (evenly picked)
  epochs, batch_size, eval_batch_size, lr, weight_decay, optimizer (adam | adamw), grad_clip
  loss              mse | pcc | ccc | ce | soft_f1 | 'mse+pcc' | {mse: w, pcc: w} (default: the task's,
                    VA ccc and EXPR ce+soft_f1; for ERI the model's own, as its paper trained it)
  lr_patience, lr_factor   halve the LR when the val score stalls this many epochs (seed 001: 10)
  patience          stop after this many epochs without a better val score; the best state is kept
  min_delta         the smallest val score gain that counts as better (for both of the above)
  label_smoothing   shrink labels towards the training mean by this fraction (seed 004)
  pseudo_label      rounds of pseudo-labelling the unlabelled (Test) clips and retraining with them
  pseudo_weight     weight of a pseudo-labelled clip in the loss (labelled clips weigh 1)
  amp, device       mixed precision and device (default: CUDA when present, fp16 autocast there)
  threads           torch CPU threads while fitting/predicting (null: torch's default). 1 by default:
                    these models are small, and on shared cores more threads made a fold 20-50x slower
  progress          a tqdm bar per epoch
"""
from __future__ import annotations

import copy
import json
import math
from abc import abstractmethod
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from competition.core.log import progress_disabled
from competition.features.registry import parse_feature_spec
from competition.features.bank import FeatureBank
from competition.models.base import Model
from competition.features.batching import (Batch, ClipInputs, Standardiser, build_clip_inputs, build_timeline,
                                           collate, resolve_modalities)
from competition.models.losses import build_loss, smooth_labels

CHECKPOINT = "model.safetensors"
PREDICT_CHUNK = 20_000  # samples built and predicted at a time
META = "model.json"

TRAINER_DEFAULTS: dict[str, Any] = {
    "modalities": None, "resample": {}, "grid_len": None, "max_len": 64,
    "epochs": 30, "batch_size": 16, "eval_batch_size": 64, "lr": 1e-3, "weight_decay": 0.0,
    "optimizer": "adam", "grad_clip": 1.0, "loss": None,
    "lr_patience": 10, "lr_factor": 0.5, "patience": 20, "min_delta": 1e-4,
    "label_smoothing": 0.0, "pseudo_label": 0, "pseudo_weight": 0.5,
    "amp": True, "device": None, "progress": True, "threads": 1,
}


def split_output(out: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, None


def activate(scores: Tensor, output: str) -> Tensor:
    """Raw module scores -> the task's output: sigmoid values or softmax class probabilities."""
    if output == "softmax":
        return torch.softmax(scores.float(), -1)
    if output == "sigmoid":
        return torch.sigmoid(scores.float())
    raise ValueError(f"unknown output kind {output!r}")


def batch_to(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device) for k, v in batch.items()}


class TorchSequenceModel(Model):
    """Base of the neural models. Subclasses implement `build_module`; they may override the class
    attributes and the hooks below."""

    default_loss: str | dict = "mse"
    default_params: dict[str, Any] = {}      # the model's own defaults, over TRAINER_DEFAULTS
    param_types = {"threads": (int, type(None)), "grad_clip": (int, float, type(None)),
                   "max_len": (int, type(None))}

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        return {**TRAINER_DEFAULTS, **cls.default_params}
    # True when the module joins modalities row by row, so several modalities need one grid (grid_len)
    requires_shared_grid: bool = False
    # Clips not in train/val that the fold may pseudo-label (run_fold sets the Test clips).
    unlabelled_ids: list[str] = []

    def __init__(self, params: dict[str, Any], n_targets: int, seed: int = 42, task: Any = None):
        super().__init__(params, n_targets, seed, task)
        self.module: nn.Module | None = None
        self.dims: dict[str, int] = {}
        self.feature_dims: list[int | None] = []
        self.standardiser: Standardiser | None = None
        self.device = torch.device(self.cfg["device"] or ("cuda" if torch.cuda.is_available() else "cpu"))

    # ------------------------------------------------------------------ hooks for model modules
    @abstractmethod
    def build_module(self, dims: dict[str, int]) -> nn.Module:
        """The network for these modality widths (after `prepare_rows`)."""

    def prepare_rows(self, modality: str, x: np.ndarray) -> np.ndarray:
        """Per clip and modality, after resampling and before standardisation (e.g. resize crops)."""
        return x

    def standardises(self, modality: str) -> bool:
        """Whether this modality is standardised with training statistics (not for raw images)."""
        return True

    def default_modalities(self, specs: list[str | dict]) -> dict[str, list[int]] | None:
        """Modalities when the config names none (None: one per feature)."""
        return None

    def training_stages(self) -> list[str]:
        """Names passed to `module.set_stage` in turn; each stage trains to its best val state."""
        return ["main"]

    # ------------------------------------------------------------------ data
    @property
    def modalities(self) -> dict[str, list[int]]:
        return self._modalities

    def _resolve(self, bank: FeatureBank) -> None:
        self._specs = list(bank.specs)
        self._modalities = resolve_modalities(self.cfg["modalities"] or self.default_modalities(self._specs),
                                              self._specs)
        if self.requires_shared_grid and len(self._modalities) > 1 and not self.cfg["grid_len"]:
            raise ValueError(f"{type(self).__name__} joins modalities {sorted(self._modalities)} frame by "
                             "frame: set grid_len, or list their features in one modality")

    def _load(self, bank: FeatureBank, ids: list[str], fit_standardiser: bool = False) -> list[ClipInputs]:
        """Each sample's modalities, standardised (with `fit_standardiser`, by statistics of these samples'
        clips or videos). Clips are built one by one (raw face crops of every clip at once would not fit
        in memory); frames are windows of their video's Timeline, built once per video."""
        stores = bank.stores()
        used = sorted({i for idx in self._modalities.values() for i in idx})
        if len(self.feature_dims) != len(stores):
            self.feature_dims = [None] * len(stores)
        sample_units = bank.units(ids)
        units = list(dict.fromkeys(sample_units))
        for i in used:  # widths, to shape the masked zeros of a clip missing a feature
            for cid in units if self.feature_dims[i] is None else []:
                out = stores[i].load(cid)
                if out is not None:
                    self.feature_dims[i] = int(out.x.shape[-1])
                    break
            if self.feature_dims[i] is None:
                raise ValueError(f"feature {parse_feature_spec(self._specs[i])[0]!r} is stored for none of "
                                 f"these {len(units)} clips under {bank.root}")
        cfg, resample = self.cfg, self.cfg["resample"] or {}
        if bank.windows is None:
            clips = [build_clip_inputs(outs, self._modalities, self.feature_dims, resample, cfg["grid_len"],
                                       cfg["max_len"], self.prepare_rows) for outs, _ in bank.outputs(ids, set(used))]
            self._fit_standardiser(clips, fit_standardiser)
            return self._standardise(clips)
        _, times = bank.windows.locate(ids)
        rows: dict[str, list[int]] = {}
        for i, unit in enumerate(sample_units):
            rows.setdefault(unit, []).append(i)
        timelines = {}
        for unit in units:
            outs = [stores[i].load(unit) if i in used else None for i in range(len(stores))]
            timelines[unit] = build_timeline(outs, self._modalities, self.feature_dims, resample, times[rows[unit]],
                                             bank.windows.before, bank.windows.after, cfg["grid_len"],
                                             cfg["max_len"], self.prepare_rows)
        self._fit_standardiser([tl.inputs[0] for tl in timelines.values()], fit_standardiser)
        for tl in timelines.values():
            tl.inputs = self._standardise(tl.inputs)
        return [timelines[u].window(float(t)) for u, t in zip(sample_units, times)]

    def _fit_standardiser(self, clips: list[ClipInputs], fit: bool) -> None:
        if fit:
            self.standardiser = Standardiser.fit(clips, [m for m in self._modalities if self.standardises(m)])

    def _standardise(self, clips: list[ClipInputs]) -> list[ClipInputs]:
        return [self.standardiser.apply(c) for c in clips] if self.standardiser else clips

    def _batches(self, n: int, size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
        """Index batches; shuffled when rng is given. A trailing batch of one joins the previous one,
        since batch PCC/CCC need two clips."""
        order = rng.permutation(n) if rng is not None else np.arange(n)
        cuts = list(range(0, n, size))
        if len(cuts) > 1 and n - cuts[-1] < 2:
            cuts.pop()
        for j, start in enumerate(cuts):
            end = cuts[j + 1] if j + 1 < len(cuts) else n
            yield order[start:end]

    # ------------------------------------------------------------------ training
    def _set_threads(self) -> None:
        if self.cfg["threads"] and self.device.type == "cpu":
            torch.set_num_threads(int(self.cfg["threads"]))

    def fit(self, bank: FeatureBank, train_ids, y_train, val_ids, y_val) -> None:
        self._set_threads()
        torch.manual_seed(self.seed)
        self._resolve(bank)
        self.standardiser = None
        train = self._load(bank, list(train_ids), fit_standardiser=True)
        self.dims = {m: int(train[0][m].x.shape[1]) for m in self._modalities}
        val = self._load(bank, list(val_ids))
        y_train = np.asarray(y_train, np.float32)
        y_fit = smooth_labels(y_train, float(self.cfg["label_smoothing"])) \
            if self.cfg["label_smoothing"] else y_train
        weights = np.ones(len(train), np.float32)
        self._train_all_stages(train, y_fit, weights, val, np.asarray(y_val, np.float32))
        unlabelled = [i for i in self.unlabelled_ids if i not in set(train_ids) | set(val_ids)]
        for _ in range(int(self.cfg["pseudo_label"]) if unlabelled else 0):
            extra = self._load(bank, unlabelled)
            pseudo = self._predict_clips(extra)
            torch.manual_seed(self.seed)
            self._train_all_stages(
                train + extra, np.concatenate([y_fit, pseudo]),
                np.concatenate([weights, np.full(len(extra), float(self.cfg["pseudo_weight"]), np.float32)]),
                val, np.asarray(y_val, np.float32))

    def _train_all_stages(self, train: list[ClipInputs], y: np.ndarray, w: np.ndarray,
                          val: list[ClipInputs], y_val: np.ndarray) -> None:
        self.module = self.build_module(dict(self.dims)).to(self.device)
        epoch0 = len(self.history)
        for stage in self.training_stages():
            params = self.module.set_stage(stage) if hasattr(self.module, "set_stage") else \
                list(self.module.parameters())
            epoch0 = self._train_stage(stage, [p for p in params if p.requires_grad], train, y, w, val,
                                       y_val, epoch0)

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        name = str(self.cfg["optimizer"]).lower()
        kw = {"lr": float(self.cfg["lr"]), "weight_decay": float(self.cfg["weight_decay"])}
        if name == "adam":
            return torch.optim.Adam(params, **kw)
        if name == "adamw":
            return torch.optim.AdamW(params, **kw)
        raise ValueError(f"optimizer must be adam or adamw, got {name!r}")

    def _train_stage(self, stage: str, params: list[nn.Parameter], train: list[ClipInputs], y: np.ndarray,
                     w: np.ndarray, val: list[ClipInputs], y_val: np.ndarray, epoch0: int) -> int:
        cfg = self.cfg
        loss_fn = build_loss(cfg["loss"] or self.task.default_loss or self.default_loss)
        opt = self._optimizer(params)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=float(cfg["lr_factor"]),
                                                           patience=int(cfg["lr_patience"]),
                                                           threshold=float(cfg["min_delta"]), threshold_mode="abs")
        cuda = self.device.type == "cuda"
        use_amp = bool(cfg["amp"]) and cuda
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        rng = np.random.default_rng(self.seed + epoch0)
        best_score, best_state, stale = -math.inf, None, 0
        epoch = epoch0
        for epoch in range(epoch0, epoch0 + int(cfg["epochs"])):
            self.module.train()
            total, seen = 0.0, 0
            batches = list(self._batches(len(train), int(cfg["batch_size"]), rng))
            bar = tqdm(batches, desc=f"{type(self).__name__}[{stage}] epoch {epoch - epoch0 + 1}",
                       leave=False, disable=progress_disabled(cfg["progress"]), unit="batch")
            for idx in bar:
                batch = batch_to(collate([train[i] for i in idx]), self.device)
                target = torch.from_numpy(y[idx]).to(self.device)
                weight = torch.from_numpy(w[idx]).to(self.device)
                with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    scores, aux = split_output(self.module(batch))
                    loss = loss_fn(activate(scores, self.task.output), target, weight)
                    if aux is not None:
                        loss = loss + aux.float()
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg["grad_clip"]:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(params, float(cfg["grad_clip"]))
                scaler.step(opt)
                scaler.update()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{total / seen:.4f}")
            metrics = {"train_loss": total / max(seen, 1)}
            if len(val):
                pred_val = self._predict_clips(val)
                score = self.task.score(pred_val, y_val)
                with torch.no_grad():
                    metrics["val_loss"] = float(loss_fn(torch.from_numpy(pred_val), torch.from_numpy(y_val)))
            else:  # nothing held out: keep the last state
                score = float(epoch)
            metrics[f"val_{self.task.metric_name}"] = score if len(val) else float("nan")
            metrics["lr"] = opt.param_groups[0]["lr"]
            if stage != "main":
                metrics["stage"] = float(self.training_stages().index(stage))
            if score > best_score + float(cfg["min_delta"]):
                best_score, stale = score, 0
                best_state = copy.deepcopy(self.module.state_dict())
            else:
                stale += 1
            sched.step(score)
            self.report(epoch, metrics)  # may raise (tuner pruning): let it propagate
            if stale >= int(cfg["patience"]):
                break
        if best_state is not None:
            self.module.load_state_dict(best_state)
        return epoch + 1

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def _predict_clips(self, clips: list[ClipInputs]) -> np.ndarray:
        self.module.eval()
        outs = []
        for idx in self._batches(len(clips), int(self.cfg["eval_batch_size"]), None):
            batch = batch_to(collate([clips[i] for i in idx]), self.device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=bool(self.cfg["amp"])
                                and self.device.type == "cuda"):
                scores, _ = split_output(self.module(batch))
            outs.append(activate(scores, self.task.output).cpu().numpy())
        if not outs:
            return np.zeros((0, self.n_targets), np.float32)
        return np.clip(np.concatenate(outs), 0.0, 1.0)

    def predict(self, bank: FeatureBank, ids) -> np.ndarray:
        if self.module is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        if not hasattr(self, "_modalities"):
            self._resolve(bank)
        ids = list(ids)
        if not ids:
            return np.zeros((0, self.n_targets), np.float32)
        self._set_threads()
        # in chunks: a frame task predicts every frame of its videos, too many windows to hold at once
        chunk = PREDICT_CHUNK
        return np.concatenate([self._predict_clips(self._load(bank, ids[i:i + chunk]))
                               for i in range(0, len(ids), chunk)])

    # ------------------------------------------------------------------ checkpoints
    def state_tensors(self) -> dict[str, Tensor]:
        state = {f"module.{k}": v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        if self.standardiser:
            for m in self.standardiser.mean:
                state[f"standardiser.{m}.mean"] = torch.from_numpy(self.standardiser.mean[m])
                state[f"standardiser.{m}.std"] = torch.from_numpy(self.standardiser.std[m])
        return state

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(self.state_tensors(), str(directory / CHECKPOINT))
        meta = {"model": getattr(type(self), "registry_name", type(self).__name__), "dims": self.dims,
                "feature_dims": self.feature_dims, "specs": self._specs, "params": self.params,
                "n_targets": self.n_targets}
        (directory / META).write_text(json.dumps(meta, indent=1, default=str))

    def load(self, directory: Path) -> None:
        directory = Path(directory)
        meta = json.loads((directory / META).read_text())
        self.dims = {k: int(v) for k, v in meta["dims"].items()}
        self.feature_dims = meta["feature_dims"]
        self._specs = meta["specs"]
        self._modalities = resolve_modalities(self.cfg["modalities"] or self.default_modalities(self._specs),
                                              self._specs)
        state = load_file(str(directory / CHECKPOINT))
        self.module = self.build_module(dict(self.dims)).to(self.device)
        self.module.load_state_dict({k[len("module."):]: v for k, v in state.items() if k.startswith("module.")})
        names = {k.split(".")[1] for k in state if k.startswith("standardiser.")}
        self.standardiser = Standardiser({m: state[f"standardiser.{m}.mean"].numpy() for m in names},
                                         {m: state[f"standardiser.{m}.std"].numpy() for m in names}) \
            if names else None
        self.module.eval()
