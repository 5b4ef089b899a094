"""Where things live. Every artifact directory hangs off one work directory (default: the repo root),
so tests and benchmarks can run a whole pipeline in a temporary folder with `--workdir`.

ERI artifacts sit at the top (folds/, oof/, submissions/, features/, data/embedded/). Another task keeps
its folds, OOF and submissions under tasks/<task>/, and tasks of one dataset family share its features
and embedded data (tasks/<family>/features/, data/<family>/)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
EMBEDDED_DATA = Path("data") / "embedded"  # relative to the work directory


def default_workdir() -> Path:
    return Path(os.environ.get("ERI_WORKDIR", REPO_ROOT))


@dataclass(frozen=True)
class Workdir:
    root: Path
    task: str = "eri"
    family: str = "hume"

    @classmethod
    def of(cls, root: Path | str | None = None, task: "str | object" = "eri") -> "Workdir":
        from competition.task import get_task
        t = get_task(task)
        return cls(Path(root) if root is not None else default_workdir(), t.name, t.family)

    @property
    def base(self) -> Path:
        return self.root if self.task == "eri" else self.root / "tasks" / self.task

    @property
    def folds(self) -> Path:
        return self.base / "folds" / "folds.csv"

    @property
    def subjects(self) -> Path:
        """Who is in each clip (competition.data.subjects); subjects.json beside it."""
        return self.base / "subjects.csv"

    @property
    def oof(self) -> Path:
        return self.base / "oof"

    def experiment(self, name: str) -> Path:
        return self.oof / name

    @property
    def submissions(self) -> Path:
        return self.base / "submissions"

    @property
    def features(self) -> Path:
        return self.root / "features" if self.family == "hume" else self.root / "tasks" / self.family / "features"

    @property
    def embedded_data(self) -> Path:
        return self.root / EMBEDDED_DATA if self.family == "hume" else self.root / "data" / self.family
