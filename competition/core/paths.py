"""Where things live: every artifact directory hangs off one work directory (`--workdir`, else one per
dataset: default_workdir; docs/WORKDIR.md). A `Workdir` is a root plus a layout given by the task."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs"
log = logging.getLogger(__name__)
_ANNOUNCED: set[Path] = set()


def default_workdir(data: Path | str | None = None, embedded: str = "data/embedded") -> Path:
    """$ERI_WORKDIR when set; else the repo root for the embedded dataset (no `data`, or the repo's own
    `embedded` folder), and runs/<folder name>-<hash of its absolute path>/ under the repo for another."""
    if os.environ.get("ERI_WORKDIR"):
        return Path(os.environ["ERI_WORKDIR"])
    if data is None or Path(data).resolve() == (REPO_ROOT / embedded).resolve():
        return REPO_ROOT
    data = Path(data).resolve()
    return REPO_ROOT / "runs" / f"{data.name}-{hashlib.sha1(str(data).encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Workdir:
    root: Path
    artifacts: str = ""                 # folds/, oof/, submissions/ under root / artifacts
    features_dir: str = "features"
    data_dir: str = "data/embedded"

    @classmethod
    def of(cls, root: Path | str | None = None, data: Path | str | None = None, **layout: str) -> "Workdir":
        """The work directory `root`, or the default one of dataset `data` (default_workdir), said once."""
        wd = cls(Path(root) if root is not None else
                 default_workdir(data, layout.get("data_dir", cls.data_dir)), **layout)
        if wd.root not in _ANNOUNCED:
            _ANNOUNCED.add(wd.root)
            log.info("work directory: %s%s", wd.root, "" if root is not None else
                     " (the default for this dataset; --workdir or WORKDIR=... to choose another)")
        return wd

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
    def tuned(self) -> Path:
        """Tuned configs (competition.pipeline.tune), found by name like those in configs/."""
        return self.base / "tuned"

    @property
    def features(self) -> Path:
        return self.root / self.features_dir

    @property
    def embedded_data(self) -> Path:
        return self.root / self.data_dir
