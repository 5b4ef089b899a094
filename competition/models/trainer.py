"""`TorchSequenceModel`: the training loop every neural model shares (a model module only builds its
nn.Module). The batch/output contract and every common param: docs/PIPELINE.md, "The neural trainer"."""
from __future__ import annotations

import copy
import functools
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
from competition.features.augment import ClipAugmenter
from competition.features.registry import parse_feature_spec
from competition.features.bank import FeatureBank
from competition.features.batching import (Batch, ClipInputs, ModalityInput, Standardiser, build_clip_inputs,
                                           build_timeline, collate, resolve_modalities)
from competition.models.base import Model
from competition.models.distributed import local_device, world
from competition.models.losses import build_loss, smooth_labels
from competition.models.optim import Precision, TopK, build_schedule, ema_of, has_batchnorm

CHECKPOINT = "model.safetensors"
PREDICT_CHUNK = 20_000  # samples built and predicted at a time
META = "model.json"
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "sgd": functools.partial(torch.optim.SGD, momentum=0.9)}

TRAINER_DEFAULTS: dict[str, Any] = {
    "modalities": None, "resample": {}, "grid_len": None, "max_len": 64,
    "epochs": 30, "batch_size": 16, "eval_batch_size": 64, "lr": 1e-3, "weight_decay": 0.0,
    "optimizer": "adam", "grad_clip": 1.0, "loss": None, "accumulate": 1,
    "schedule": "plateau", "warmup": 0.0, "ema": 0.0, "average_top_k": 0,
    "freeze_backbone": 0, "backbone_lr": 1.0, "augment": [], "workers": 0,
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


def _as_is(batch: Batch) -> Batch:
    return batch


class _TrainBatches(torch.utils.data.Dataset):
    """Item j: the collated (and, with an augment function, augmented) clips of batch j, so DataLoader
    workers build whole batches. Augmentation draws are seeded by (seed, epoch, clip)."""

    def __init__(self, clips: list[ClipInputs], batches: list[np.ndarray], augment, seed: int, epoch: int):
        self.clips, self.batches, self.augment, self.seed, self.epoch = clips, batches, augment, seed, epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, j: int) -> Batch:
        idx = self.batches[j]
        if self.augment is None:
            return collate([self.clips[i] for i in idx])
        seeds = [int(np.random.SeedSequence([self.seed, self.epoch, int(i)]).generate_state(1)[0]) for i in idx]
        return collate([self.augment(self.clips[i], s) for i, s in zip(idx, seeds)])


class TorchSequenceModel(Model):
    """Base of the neural models. Subclasses implement `build_module`; they may override the class
    attributes and the hooks below."""

    default_loss: str | dict = "mse"
    default_params: dict[str, Any] = {}      # the model's own defaults, over TRAINER_DEFAULTS
    param_types = {"threads": (int, type(None)), "grad_clip": (int, float, type(None)),
                   "max_len": (int, type(None)), "amp": (bool, str)}  # amp: true | false | "bf16" | "fp16"

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        return {**TRAINER_DEFAULTS, **cls.default_params}
    # True when the module joins modalities row by row, so several modalities need one grid (grid_len)
    requires_shared_grid: bool = False
    one_modality = False  # every feature in one modality ("frames") when the config names none
    # Clips not in train/val that the fold may pseudo-label (run_fold sets the Test clips).
    unlabelled_ids: list[str] = []
    selects_on_validation = True  # early stopping, best state / top-k epochs and LR plateaus
    chosen_epochs = 0             # epochs to the best state (most over stages): what chosen_params returns

    def __init__(self, params: dict[str, Any], n_targets: int, seed: int = 42, task: Any = None):
        super().__init__(params, n_targets, seed, task)
        self.module: nn.Module | None = None
        self.dims: dict[str, int] = {}
        self.feature_dims: list[int | None] = []
        self.standardiser: Standardiser | None = None
        self.device = torch.device(self.cfg["device"] or local_device()
                                   or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.augmenter = ClipAugmenter(self.cfg["augment"]) if self.cfg["augment"] else None
        if self.augmenter is not None and not self.image_modalities():
            raise ValueError(f"{type(self).__name__} has no image modalities to augment; drop params.augment")

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
        """Modalities when the config names none: one per feature (None), or all as one (one_modality)."""
        return {"frames": list(range(len(specs)))} if self.one_modality else None

    def training_stages(self) -> list[str]:
        """Names passed to `module.set_stage` in turn; each stage trains to its best val state."""
        return ["main"]

    def image_modalities(self) -> list[str]:
        """Modalities whose rows are uint8 RGB crops (augmented in training when `augment` is set)."""
        return []

    def backbone(self, module: nn.Module) -> nn.Module | None:
        """The pretrained part of the network that `freeze_backbone` and `backbone_lr` apply to."""
        return None

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

    def _optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        name = str(self.cfg["optimizer"]).lower()
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be adam, adamw or sgd, got {name!r}")
        return OPTIMIZERS[name](groups, lr=float(self.cfg["lr"]), weight_decay=float(self.cfg["weight_decay"]))

    def _param_groups(self, params: list[nn.Parameter], backbone: nn.Module | None) -> list[dict[str, Any]]:
        """The head's parameters at lr, the backbone's at lr * backbone_lr (layer-wise LR)."""
        lr = float(self.cfg["lr"])
        inside = {id(p) for p in backbone.parameters()} if backbone is not None else set()
        head = [p for p in params if id(p) not in inside]
        base = [p for p in params if id(p) in inside]
        groups = [{"params": head, "lr": lr, "name": "head"}]
        if base:
            groups.append({"params": base, "lr": lr * float(self.cfg["backbone_lr"]), "name": "backbone"})
        return [g for g in groups if g["params"]]

    def _augment(self, clip: ClipInputs, seed: int) -> ClipInputs:
        out = dict(clip)
        for m in self.image_modalities():
            out[m] = ModalityInput(self.augmenter(clip[m].x, seed), clip[m].mask)
        return out

    def _train_batches(self, train: list[ClipInputs], batches: list[np.ndarray], epoch: int
                       ) -> Iterator[tuple[np.ndarray, Batch]]:
        """(sample indices, collated batch) of this process's shard of every batch, augmented when
        `augment` is set, built by `workers` DataLoader processes."""
        rank, size = world()
        shards = [idx[rank::size] for idx in batches]
        augment = self._augment if self.augmenter is not None else None
        data = _TrainBatches(train, shards, augment, self.seed, epoch)
        workers = int(self.cfg["workers"])
        if not workers:
            yield from ((idx, data[j]) for j, idx in enumerate(shards))
            return
        # its own generator: the workers' seeds must not come from torch's global RNG (dropout's)
        loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=workers,
                                             collate_fn=_as_is, generator=torch.Generator().manual_seed(epoch))
        yield from zip(shards, loader)

    def _train_stage(self, stage: str, params: list[nn.Parameter], train: list[ClipInputs], y: np.ndarray,
                     w: np.ndarray, val: list[ClipInputs], y_val: np.ndarray, epoch0: int) -> int:
        cfg = self.cfg
        loss_fn = build_loss(cfg["loss"] or self.task.default_loss or self.default_loss)
        backbone = self.backbone(self.module)
        if (int(cfg["freeze_backbone"]) or float(cfg["backbone_lr"]) != 1.0) and backbone is None:
            raise ValueError(f"{type(self).__name__} has no backbone for freeze_backbone / backbone_lr")
        opt = self._optimizer(self._param_groups(params, backbone))
        accumulate = max(1, int(cfg["accumulate"]))
        epochs = int(cfg["epochs"])
        n_batches = sum(1 for _ in self._batches(len(train), int(cfg["batch_size"]), None))
        steps_per_epoch = -(-n_batches // accumulate)
        sched = build_schedule(opt, str(cfg["schedule"]), epochs * steps_per_epoch,
                               int(round(float(cfg["warmup"]) * steps_per_epoch)))
        plateau = None if sched is not None else torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=float(cfg["lr_factor"]), patience=int(cfg["lr_patience"]),
            threshold=float(cfg["min_delta"]), threshold_mode="abs")
        precision = Precision.of(cfg["amp"], self.device)
        scaler = torch.amp.GradScaler(self.device.type, enabled=precision.scale)
        ema = ema_of(self.module, float(cfg["ema"])) if cfg["ema"] else None
        top = TopK(int(cfg["average_top_k"]))
        frozen = int(cfg["freeze_backbone"])
        trainable = {id(p) for p in params}
        if frozen:
            backbone.requires_grad_(False)
        net = self._distributed(self.module)
        rank, size = world()
        rng = np.random.default_rng(self.seed + epoch0)
        best_score, best_state, stale, best_epoch = -math.inf, None, 0, epoch0
        epoch = epoch0
        for epoch in range(epoch0, epoch0 + epochs):
            if frozen and epoch - epoch0 == frozen:  # unfreeze, at backbone_lr (its param group's LR)
                for p in backbone.parameters():
                    p.requires_grad_(id(p) in trainable)
                net = self._distributed(self.module)
            self.module.train()
            still_frozen = frozen and epoch - epoch0 < frozen
            if still_frozen:
                backbone.eval()  # frozen BatchNorm statistics too
            total, seen = 0.0, 0
            batches = list(self._batches(len(train), int(cfg["batch_size"]), rng))
            # samples per optimizer step (all micro-batches, all ranks): each micro-batch's loss is
            # weighted by its share, so k micro-batches (or N processes) make one step on their union
            group_n = [sum(len(b) for b in batches[g:g + accumulate]) for g in range(0, len(batches), accumulate)]
            bar = tqdm(self._train_batches(train, batches, epoch), total=len(batches),
                       desc=f"{type(self).__name__}[{stage}] epoch {epoch - epoch0 + 1}",
                       leave=False, disable=True if rank != 0 else progress_disabled(cfg["progress"]), unit="batch")
            for j, (idx, batch) in enumerate(bar):
                batch = batch_to(batch, self.device)
                target = torch.from_numpy(y[idx]).to(self.device)
                weight = torch.from_numpy(w[idx]).to(self.device)
                with precision.autocast(self.device):
                    scores, aux = split_output(net(batch))
                    loss = loss_fn(activate(scores, self.task.output), target, weight)
                    if aux is not None:
                        loss = loss + aux.float()
                share = len(idx) * size / group_n[j // accumulate]
                scaler.scale(loss * share).backward()
                if (j + 1) % accumulate == 0 or j + 1 == len(batches):
                    if cfg["grad_clip"]:
                        scaler.unscale_(opt)
                        nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], float(cfg["grad_clip"]))
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad(set_to_none=True)
                    if sched is not None:
                        sched.step()
                    if ema is not None:
                        ema.update_parameters(self.module)
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{total / seen:.4f}")
            evaluated = ema.module if ema is not None else self.module
            metrics = {"train_loss": total / max(seen, 1)}
            if len(val):
                pred_val = self._predict_clips(val, evaluated)
                score = self.task.score(pred_val, y_val)
                with torch.no_grad():
                    metrics["val_loss"] = float(loss_fn(torch.from_numpy(pred_val), torch.from_numpy(y_val)))
            else:  # nothing held out: keep the last state
                score = float(epoch)
            metrics[f"val_{self.task.metric_name}"] = score if len(val) else float("nan")
            metrics["lr"] = opt.param_groups[0]["lr"]
            if len(opt.param_groups) > 1:
                metrics["lr_backbone"] = 0.0 if still_frozen else opt.param_groups[1]["lr"]
            if stage != "main":
                metrics["stage"] = float(self.training_stages().index(stage))
            top.offer(score, evaluated)
            if score > best_score + float(cfg["min_delta"]):
                best_score, stale, best_epoch = score, 0, epoch
                best_state = copy.deepcopy(evaluated.state_dict())
            else:
                stale += 1
            if plateau is not None:
                plateau.step(score)
            self.report(epoch, metrics)  # may raise (tuner pruning): let it propagate
            if stale >= int(cfg["patience"]):
                break
        for p in backbone.parameters() if frozen else []:
            p.requires_grad_(id(p) in trainable)
        self.chosen_epochs = max(self.chosen_epochs, best_epoch - epoch0 + 1)
        if len(top.entries) > 1:
            self.module.load_state_dict(top.average())
            if has_batchnorm(self.module):  # averaged weights need their own BatchNorm statistics
                torch.optim.swa_utils.update_bn(
                    (batch_to(b, self.device) for _, b in self._train_batches(train, batches, epoch)), self.module)
        elif best_state is not None:
            self.module.load_state_dict(best_state)
        return epoch + 1

    def chosen_params(self) -> dict[str, Any]:
        return {"epochs": self.chosen_epochs}

    def _distributed(self, module: nn.Module) -> nn.Module:
        """The module wrapped in DistributedDataParallel under torchrun (gradients averaged over ranks)."""
        if world()[1] == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def _predict_clips(self, clips: list[ClipInputs], module: nn.Module | None = None) -> np.ndarray:
        module = module if module is not None else self.module
        module.eval()
        precision = Precision.of(self.cfg["amp"], self.device)
        outs = []
        for idx in self._batches(len(clips), int(self.cfg["eval_batch_size"]), None):
            batch = batch_to(collate([clips[i] for i in idx]), self.device)
            with precision.autocast(self.device):
                scores, _ = split_output(module(batch))
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
