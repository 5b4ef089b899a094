"""The model interface every registry entry implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from competition.data.task import get_task

if TYPE_CHECKING:
    from competition.features.bank import FeatureBank


class Model(ABC):
    """Trained once per fold, then predicts any clips as (N, n_targets) in [0, 1]; validation clips (a split
    of the training fold) only for models that `selects_on_validation`. `default_params` declares every
    parameter with its default (the registry checks keys and types; `param_types` widens a key's types)."""

    default_params: dict[str, Any] = {}
    param_types: dict[str, tuple[type, ...]] = {}
    selects_on_validation: bool = False

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        return dict(cls.default_params)

    def __init__(self, params: dict[str, Any], n_targets: int, seed: int = 42, task: Any = None):
        self.params = dict(params)
        self.cfg: dict[str, Any] = {**self.param_defaults(), **self.params}
        self.n_targets = n_targets
        self.seed = seed
        self.task = get_task(task or "eri")  # its output kind (values or class probabilities) and score
        self.history: list[dict[str, float]] = []  # per-epoch metrics, for trackers and reports
        # Called as reporter(epoch, metrics) after every epoch; set by run_fold for W&B logging and by
        # the tuner for pruning (it may raise optuna.TrialPruned, which must propagate).
        self.reporter: Callable[[int, dict[str, float]], None] | None = None

    def chosen_params(self) -> dict[str, Any]:
        """Params that repeat without validation data what the last fit chose on it (e.g. the epoch count), for
        the refit on the whole training fold (selects_on_validation)."""
        return {}

    def report(self, epoch: int, metrics: dict[str, float]) -> None:
        """Iterative models call this once per epoch (e.g. with train_loss, val_mean_pcc, lr)."""
        row = {"epoch": epoch, **{k: float(v) for k, v in metrics.items()}}
        self.history.append(row)
        if self.reporter is not None:
            self.reporter(epoch, row)

    @abstractmethod
    def fit(self, bank: FeatureBank, train_ids: list[str], y_train: np.ndarray,
            val_ids: list[str], y_val: np.ndarray) -> None: ...

    @abstractmethod
    def predict(self, bank: FeatureBank, ids: list[str]) -> np.ndarray: ...

    def save(self, directory: Path) -> None:
        """Persist what `load` needs to predict again (optional for models that only run in-process)."""

    def load(self, directory: Path) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot be reloaded from disk")
