"""Where things live. Every artifact directory hangs off one work directory (default: the repo root),
so tests and benchmarks can run a whole pipeline in a temporary folder with `--workdir`."""
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

    @classmethod
    def of(cls, root: Path | str | None = None) -> "Workdir":
        return cls(Path(root) if root is not None else default_workdir())

    @property
    def folds(self) -> Path:
        return self.root / "folds" / "folds.csv"

    @property
    def oof(self) -> Path:
        return self.root / "oof"

    def experiment(self, name: str) -> Path:
        return self.oof / name

    @property
    def submissions(self) -> Path:
        return self.root / "submissions"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def embedded_data(self) -> Path:
        return self.root / EMBEDDED_DATA
