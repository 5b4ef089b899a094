"""What is specific to a task lives here: label granularity, targets, metric, default loss, blend
objective, output range and submission format. ERI is the only task so far; Aff-Wild2 VA (mean CCC)
and EXPR (macro-F1) would be further `Task` instances."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from competition import metrics
from competition.data.contract import ID_COL


@dataclass(frozen=True)
class Task:
    name: str
    granularity: str                                   # "clip" (ERI) or "frame" (VA, EXPR)
    metric_name: str
    score: Callable[[np.ndarray, np.ndarray], float]   # higher is better; also the blend objective
    per_target: Callable[[np.ndarray, np.ndarray], np.ndarray]
    default_loss: str
    output_range: tuple[float, float]

    def submission_header(self, targets: list[str]) -> list[str]:
        return [ID_COL, *targets]


ERI = Task(name="eri", granularity="clip", metric_name="mean_pcc", score=metrics.mean_pcc,
           per_target=metrics.pcc_per_column, default_loss="mse", output_range=(0.0, 1.0))

TASKS = {ERI.name: ERI}


def get_task(name: str = "eri") -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]
