"""What is specific to a task (eri, va, expr) lives here and nowhere else: the trainer, the experiment
directory and the blender only talk to a `Task` (docs/PIPELINE.md, "Tasks: task.py")."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from competition.core import metrics
from competition.core.io import read_json
from competition.core.paths import Workdir
from competition.data import affwild2, contract, frame_submission_format, submission_format

Scorer = Callable[[np.ndarray, np.ndarray], float]


def _quiet(fn: Scorer) -> Scorer:
    def score(pred: np.ndarray, true: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", metrics.ConstantPredictionWarning)
            return fn(pred, true)
    return score


@dataclass(frozen=True)
class Task:
    name: str
    family: str                                        # datasets sharing a layout share features
    granularity: str                                   # "clip" | "frame"
    metric_name: str                                   # key of the score in fold.json / metrics.json
    metric_label: str                                  # how printed tables and logs name it
    per_target_key: str                                # key of the per-target scores there
    score: Scorer                                      # higher is better; also the blend objective
    report: Callable[[np.ndarray, np.ndarray, list[str]], dict]
    default_loss: str | None                           # when a config names none (None: the model's own)
    output: str                                        # "sigmoid" (values) | "softmax" (class probabilities)
    value_range: tuple[float, float]                   # range of the targets as written
    id_col: str
    load_fn: Callable[..., Any]
    generate_fn: Callable[[Path, int, int | None], Any]   # (out, jobs, size or None for the default)
    write_fn: Callable[..., Path]
    check_fn: Callable[..., list[str]]
    ceiling_fn: Callable[[Path], dict | None] = lambda root: None
    window: dict[str, float] = field(default_factory=dict)  # frame tasks: seconds of context per frame
    group_col: str | None = None                       # folds keep units with one value together

    def workdir(self, root: Path | str | None = None, data: Path | str | None = None) -> Workdir:
        """`root`, or dataset `data`'s work directory (paths.default_workdir). ERI artifacts sit at its top;
        another task keeps its folds, OOF and submissions under tasks/<task>/, and tasks of one dataset family
        share its features and embedded data (tasks/<family>/features/, data/<family>/)."""
        if self.family == "hume":
            return Workdir.of(root, data)
        return Workdir.of(root, data, artifacts=f"tasks/{self.name}", features_dir=f"tasks/{self.family}/features",
                          data_dir=f"data/{self.family}")

    def oracle_ceiling(self, root: Path | str) -> dict | None:
        """{'score': float, 'per_target': {target: float}} of the embedded synthetic data's oracle (its
        noise-free labels scored against the written ones), None for other data."""
        return self.ceiling_fn(Path(root))

    def format_id(self, sample_id: str) -> str:
        """A sample id as written in prediction files: bracketed File_IDs for ERI, frame ids as they are."""
        if self.id_col == "File_ID":
            return contract.bracket_id(sample_id)
        return str(sample_id)

    def load(self, root: Path | str, check_media: bool = True) -> Any:
        return self.load_fn(Path(root), check_media=check_media)

    def generate(self, out: Path, jobs: int = 2, size: int | None = None) -> Any:
        """Write the embedded default dataset into `out` (resumable); `size` clips or videos."""
        return self.generate_fn(Path(out), jobs, size)

    def to_unit(self, y: np.ndarray) -> np.ndarray:
        """Targets -> the model's output space [0, 1] (an affine map, so PCC and CCC do not change)."""
        lo, hi = self.value_range
        return (np.asarray(y, np.float64) - lo) / (hi - lo)

    def from_unit(self, p: np.ndarray) -> np.ndarray:
        lo, hi = self.value_range
        return np.asarray(p, np.float64) * (hi - lo) + lo

    def write_submission(self, path: Path, ds: Any, ids: list[str], pred: np.ndarray) -> Path:
        return self.write_fn(Path(path), ds, ids, pred)

    def check_submission(self, path: Path, ds: Any) -> list[str]:
        return self.check_fn(Path(path), ds)

    @property
    def moment_blends(self) -> bool:
        """Mean PCC depends on centred moments only, which the fast blend methods rely on."""
        return self.metric_name == "mean_pcc"


# ---------------------------------------------------------------- ERI

def _eri_generate(out: Path, jobs: int, size: int | None):
    from competition.data import synth  # the generators import OpenCV and scipy.stats: only when generating
    return synth.generate(out, jobs=jobs, **({"n": size} if size else {}))


def _truth(root: Path, name: str) -> dict | None:
    return read_json(root / name) if (root / name).exists() else None


def _eri_ceiling(root: Path) -> dict | None:
    c = (_truth(root, "synth_truth.json") or {}).get("oracle_ceiling")
    return {"score": c["mean_pcc"], "per_target": c.get("pcc", {})} if isinstance(c, dict) else None


def _eri_write(path: Path, ds, ids, pred) -> Path:
    return submission_format.write_submission(path.with_suffix(".csv"), ids, pred, ds.targets)


ERI = Task(name="eri", family="hume", granularity="clip", metric_name="mean_pcc", metric_label="mean PCC",
           per_target_key="pcc",
           score=_quiet(metrics.mean_pcc), report=metrics.score_report, default_loss=None, output="sigmoid",
           value_range=(0.0, 1.0), id_col="File_ID", load_fn=contract.load_dataset, generate_fn=_eri_generate,
           write_fn=_eri_write, check_fn=submission_format.check_submission, ceiling_fn=_eri_ceiling)


# ---------------------------------------------------------------- Aff-Wild2

def _aw2_generate(out: Path, jobs: int, size: int | None):
    from competition.data import synth_affwild2
    return synth_affwild2.generate_affwild2(out, jobs=jobs, **({"n_videos": size} if size else {}))


def _aw2_write(task: str):
    def write(path: Path, ds, ids, pred) -> Path:
        return frame_submission_format.write_frame_submission(path.with_suffix(".txt"), task, ids, pred, ds.targets)
    return write


def _aw2_check(task: str):
    def check(path: Path, ds) -> list[str]:
        return frame_submission_format.check_frame_submission(path, task, ds.n_frames("Test"))
    return check


def _aw2_ceiling(key: str):
    def ceiling(root: Path) -> dict | None:
        t = _truth(root, "synth_affwild2_truth.json") or {}
        return {"score": t[key], "per_target": t.get(f"{key}_per_target") or t.get(f"{key}_per_class", {})} \
            if key in t else None
    return ceiling


def _va_report(pred: np.ndarray, true: np.ndarray, names: list[str]) -> dict:
    ccc = metrics.ccc_per_column(pred, true)
    rep = metrics.score_report(pred, true, names)
    return {"mean_ccc": float(ccc.mean()), "ccc": {n: float(v) for n, v in zip(names, ccc)},
            "mean_pcc": rep["mean_pcc"], "pcc": rep["pcc"], "mse": rep["mse"], "n": rep["n"]}


# Paper 003's context: 6 s around the frame (12 steps at 2 fps).
VA = Task(name="va", family="affwild2", granularity="frame", metric_name="mean_ccc", metric_label="mean CCC",
          per_target_key="ccc",
          score=_quiet(metrics.mean_ccc), report=_va_report, default_loss="ccc", output="sigmoid",
          value_range=(-1.0, 1.0), id_col="frame_id", load_fn=partial(affwild2.load_frame_dataset, task="va"),
          generate_fn=_aw2_generate, write_fn=_aw2_write("va"), check_fn=_aw2_check("va"),
          ceiling_fn=_aw2_ceiling("va_ccc_ceiling"), window={"before": 3.0, "after": 3.0}, group_col="video")

EXPR = Task(name="expr", family="affwild2", granularity="frame", metric_name="macro_f1", metric_label="macro-F1",
            per_target_key="f1",
            score=metrics.macro_f1, report=metrics.score_report_classes,
            default_loss="ce+soft_f1", output="softmax", value_range=(0.0, 1.0), id_col="frame_id",
            load_fn=partial(affwild2.load_frame_dataset, task="expr"), generate_fn=_aw2_generate,
            write_fn=_aw2_write("expr"), check_fn=_aw2_check("expr"), ceiling_fn=_aw2_ceiling("expr_f1_ceiling"),
            window={"before": 3.0, "after": 3.0}, group_col="video")

TASKS = {t.name: t for t in (ERI, VA, EXPR)}


def get_task(name: str | Task = "eri") -> Task:
    if isinstance(name, Task):
        return name
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def add_task_argument(parser: Any) -> None:
    """The `--task` option every command has."""
    parser.add_argument("--task", choices=sorted(TASKS), default="eri",
                        help="eri (Hume-Reaction, default), va or expr (Aff-Wild2, docs/AFFWILD2.md)")


def add_dataset_arguments(parser: Any) -> None:
    """--data, --workdir and --task, for every command that reads a dataset."""
    parser.add_argument("--data", type=Path, default=None, help="dataset root (default: the embedded dataset)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="default: the repo for the embedded dataset, runs/<dataset>-<hash>/ for another")
    add_task_argument(parser)


def open_dataset(args: Any, check_media: bool = True) -> tuple[Task, Workdir, Any]:
    """(task, work directory, dataset) of a command's --task, --workdir and --data (add_dataset_arguments)."""
    task = get_task(args.task)
    wd = task.workdir(args.workdir, args.data)
    return task, wd, task.load(args.data or wd.embedded_data, check_media)
