"""Where things live. Every artifact directory hangs off one work directory (default: the repo root),
so tests and benchmarks can run a whole pipeline in a temporary folder with `--workdir`.

A `Workdir` is a root plus a layout: where the folds, OOF and submissions of one task go (`artifacts`,
relative to the root; '' is the root itself), where the features of its dataset family go (shared by
tasks of that family) and where its embedded dataset is generated. Tasks give their own layout
(`Task.workdir`); this module knows nothing about tasks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs"


def default_workdir() -> Path:
    return Path(os.environ.get("ERI_WORKDIR", REPO_ROOT))


@dataclass(frozen=True)
class Workdir:
    root: Path
    artifacts: str = ""                 # folds/, oof/, submissions/ under root / artifacts
    features_dir: str = "features"
    data_dir: str = "data/embedded"

    @classmethod
    def of(cls, root: Path | str | None = None, **layout: str) -> "Workdir":
        return cls(Path(root) if root is not None else default_workdir(), **layout)

    @property
    def base(self) -> Path:
        return self.root / self.artifacts if self.artifacts else self.root

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
        return self.root / self.features_dir

    @property
    def embedded_data(self) -> Path:
        return self.root / self.data_dir
