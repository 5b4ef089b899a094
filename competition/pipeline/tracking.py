"""Weights & Biases tracking that never gets in the way: offline by default, off with `--no-wandb` or
WANDB_MODE=disabled, any wandb failure one warning (docs/TUNING.md, "W&B tracking")."""
from __future__ import annotations

import os
import warnings

from pathlib import Path
from typing import Any

DEFAULT_PROJECT = "eri-competition"


class TrackingWarning(UserWarning):
    pass


def wandb_mode(no_wandb: bool = False) -> str:
    """'disabled' when switched off, else WANDB_MODE (default 'offline': nothing leaves the machine)."""
    if no_wandb:
        return "disabled"
    return os.environ.get("WANDB_MODE", "offline")


class Run:
    """A W&B run, or a silent stand-in when tracking is off or wandb failed. Use as a context manager."""

    def __init__(self, wandb_run: Any = None):
        self._run = wandb_run

    @property
    def dir(self) -> Path | None:
        """The run's local directory (offline-run-* or run-*), None when inactive."""
        return Path(self._run.dir).parent if self._run is not None else None

    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self._run is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # tracking must never kill training
            warnings.warn(f"wandb {what} failed ({type(exc).__name__}: {exc}); tracking off for this run",
                          TrackingWarning, stacklevel=3)
            self._run = None

    def log(self, row: dict[str, Any]) -> None:
        self._guard("log", lambda: self._run.log(dict(row)))

    def summary(self, values: dict[str, Any]) -> None:
        self._guard("summary", lambda: self._run.summary.update(dict(values)))

    def finish(self, exit_code: int = 0) -> None:
        self._guard("finish", lambda: self._run.finish(exit_code=exit_code))
        self._run = None

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)


def start_run(group: str, job_type: str, name: str, config: dict[str, Any], workdir: Path | str,
              no_wandb: bool = False) -> Run:
    """Open a run under `<workdir>/wandb/` (or WANDB_DIR); returns an inactive Run if tracking is off or
    wandb cannot start."""
    mode = wandb_mode(no_wandb)
    if mode == "disabled":
        return Run()
    try:
        import wandb
        directory = Path(os.environ.get("WANDB_DIR", workdir))
        directory.mkdir(parents=True, exist_ok=True)
        run = wandb.init(project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT), group=group,
                         job_type=job_type, name=name, config=config, dir=str(directory), mode=mode,
                         reinit="finish_previous", settings=wandb.Settings(silent=True, console="off"))
        return Run(run)
    except Exception as exc:
        warnings.warn(f"wandb could not start ({type(exc).__name__}: {exc}); continuing without tracking",
                      TrackingWarning, stacklevel=2)
        return Run()


def fold_summary(result: dict[str, Any], task: Any = None) -> dict[str, float]:
    """The flat W&B summary of a fold.json result: the task's score and per-target scores, sizes, timings."""
    from competition.data.task import get_task
    t = get_task(task or "eri")
    m, per = t.metric_name, t.per_target_key
    out: dict[str, float] = {f"val_{m}": float(result[m])}
    out.update({f"val_{per}/{name}": float(v) for name, v in result.get(per, {}).items()})
    out.update({f"seconds/{k}": float(v) for k, v in result.get("seconds", {}).items()})
    for key in ("n_train", "n_val", "n_test", "mean_ccc", "mean_pcc", "mse", "accuracy"):
        if key in result and key != m:
            out[key] = float(result[key])
    return out
