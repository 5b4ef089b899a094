"""Predict the emotion intensities of new reaction videos with a blend's fold models.
More: docs/PIPELINE.md, "Predicting new videos: predict"."""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from competition.core.io import read_json
from competition.core.log import UserError, command, parse_and_log
from competition.core.paths import Workdir
from competition.data.contract import SPLIT_COL, Dataset, media_path
from competition.data.task import add_task_argument, get_task
from competition.features.audio import SAMPLE_RATE, audio_from_video
from competition.features.bank import FeatureBank
from competition.features.registry import FeatureError
from competition.features.store import FeatureStore, extract, pool, pooled_matrix
from competition.features.video import frame_times
from competition.models.base import Model
from competition.models.registry import build_model
from competition.pipeline.config import load_config
from competition.pipeline.ensembling.methods import Blender, rank_reference
from competition.pipeline.ensembling.postprocess import SUBJECT_POSTPROCESS
from competition.pipeline.experiment import read_predictions

log = logging.getLogger(__name__)
LOW_FACE_RATE = 0.2  # below it a video counts as faceless (../shared/data/real_videos: no_face.mp4 0.0,
                     # a face leaving or entering the frame 0.375, single_face.mp4 1.0)


class PredictError(UserError, RuntimeError):
    pass


@dataclass
class Card:
    path: Path
    blender: Blender
    targets: list[str]


def find_card(wd: Workdir, blend: str | None) -> Path:
    """--blend as a card path, a card name in submissions/, or (None) the newest card there."""
    if blend and Path(blend).suffix == ".json" and Path(blend).exists():
        return Path(blend)
    cards = sorted(wd.submissions.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if blend is None:
        if not cards:
            raise PredictError(f"no blend card in {wd.submissions}: run `python make_submission.py --blend best`")
        return cards[-1]
    path = wd.submissions / f"{blend}.json"
    if not path.exists():
        raise PredictError(f"no blend card {path}; known: {[p.stem for p in cards] or 'none'}")
    return path


def load_card(path: Path, wd: Workdir) -> Card:
    card = read_json(path)
    if "weights_by_target" not in card:
        raise PredictError(f"{path} is not a blend card (no weights_by_target): rerun make_submission.py")
    if card["post"] in SUBJECT_POSTPROCESS:
        raise PredictError(f"{path}: the blend centres predictions within each subject ({card['post']}), "
                           "which new videos of unknown subjects do not allow; use a blend without it "
                           "(make_submission.py --no-subjects)")
    targets, names = list(card["targets"]), list(card["members"])
    weights = np.array([[card["weights_by_target"][t].get(n, 0.0) for n in names] for t in targets])
    reference = None
    if card["transform"] == "rank":  # the fit's rank reference: each member's OOF predictions
        oof = np.stack([read_predictions(wd.experiment(n) / "oof.csv", targets).to_numpy() for n in names])
        reference = rank_reference(oof)
    return Card(path, Blender(card["method"], names, weights, card["transform"], reference, card["post"]), targets)


def clip_ids(videos: list[Path]) -> list[str]:
    """Plain, unique clip ids from the file names."""
    ids: list[str] = []
    for v in videos:
        base = re.sub(r"[^A-Za-z0-9_-]", "_", v.stem) or "clip"
        cid, k = base, 2
        while cid in ids:
            cid, k = f"{base}_{k}", k + 1
        ids.append(cid)
    return ids


@dataclass
class Seen:
    """What predict actually got from one video, reported beside its prediction."""
    face_rate: float = float("nan")  # share of sampled frames with a detected face (NaN: no member reads faces)
    audio_s: float = 0.0             # seconds of audio (sibling wav, else the video's own track)
    media_error: str = ""            # the video could not be read: no prediction
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.media_error:
            return f"media_error: {self.media_error}"
        problems = [name for name, bad in (("no_face", self.face_rate < LOW_FACE_RATE),
                                           ("no_audio", self.audio_s == 0)) if bad]
        return "+".join(problems) or "ok"

    def warning(self) -> str | None:
        """One line for everything wrong with the video, or None."""
        if self.media_error:
            parts = [f"media error ({self.media_error}); no prediction"]
        else:
            parts = []
            if "no_face" in self.status:
                parts.append(f"no face (found in {self.face_rate:.0%} of sampled frames)")
            if "no_audio" in self.status:
                parts.append("no audio")
            if parts:
                parts[-1] += "; the models imputed the missing features"
        parts += self.notes
        return "; ".join(dict.fromkeys(parts)) or None


def _reason(exc: Exception, path: Path) -> str:
    """An error's message without the file name, which the warning line gives once."""
    return str(exc).replace(f"{path}: ", "").replace(f": '{path}'", "")


def stage_videos(videos: list[Path], root: Path, targets: list[str]) -> tuple[Dataset, list[Seen]]:
    """A Hume-layout dataset under root of the videos that can be read (as Test clips: the videos linked
    in, audio beside them), and what was seen of every video."""
    seen = [Seen() for _ in videos]
    readable = []
    for cid, video, s in zip(clip_ids(videos), videos, seen):
        if not video.is_file():
            raise PredictError(f"{video}: no such video file")
        try:
            frame_times(video)  # the container and its video stream, from packet headers only
        except FeatureError as exc:
            s.media_error = _reason(exc, video)
            continue
        readable.append(cid)
        mp4, wav = media_path(root, "Test", cid, "mp4"), media_path(root, "Test", cid, "wav")
        mp4.parent.mkdir(parents=True, exist_ok=True)
        wav.parent.mkdir(parents=True, exist_ok=True)
        mp4.symlink_to(video.resolve())
        sibling = video.with_suffix(".wav")
        try:
            if sibling.is_file():
                s.audio_s = sf.info(str(sibling)).duration
                wav.symlink_to(sibling.resolve())
                continue
            y = audio_from_video(video, SAMPLE_RATE)
        except (FeatureError, RuntimeError) as exc:  # soundfile raises RuntimeError subclasses
            if "no audio track" not in str(exc):
                s.notes.append(f"audio unreadable ({_reason(exc, video)})")
            continue
        s.audio_s = len(y) / SAMPLE_RATE
        if len(y):
            sf.write(str(wav), y, SAMPLE_RATE)
    table = pd.DataFrame({SPLIT_COL: "Test", **{t: np.nan for t in targets}},
                         index=pd.Index(readable, name="File_ID"))
    return Dataset(root=root, table=table, emotions=list(targets), fingerprint="predict"), seen


def observe(seen: dict[str, Seen], specs: list, features_root: Path, staged: Path) -> None:
    """Add what the feature stores recorded about each clip: its face detection rate, a feature that
    failed (a media error, unless it failed for want of audio, which is reported as no_audio) and the
    extractors' own warnings (e.g. a truncated video)."""
    for spec in specs:
        store = FeatureStore.for_spec(features_root, spec)
        for row in store.failures().itertuples():
            wav = media_path(staged, "Test", row.clip, "wav")
            if row.clip in seen and not (str(wav) in row.reason and not wav.exists()):
                reason = row.reason.replace(f"{staged}/", "").replace(f"{row.clip}: ", "")
                seen[row.clip].media_error = seen[row.clip].media_error or f"feature {store.key} failed: {reason}"
    for store_dir in sorted(p for p in features_root.iterdir() if p.is_dir()):  # incl. caches like faces
        for cid, s in seen.items():
            if (store_dir / f"{cid}.npz").exists():
                with np.load(store_dir / f"{cid}.npz", allow_pickle=False) as z:
                    info = json.loads(str(z["info"])) if "info" in z.files else {}
                if "detection_rate" in info:
                    rate = float(info["detection_rate"])
                    s.face_rate = rate if np.isnan(s.face_rate) else max(s.face_rate, rate)
                s.notes += [w for w in info.get("warnings", []) if not w.startswith("no face detected")]


class PredictBank(FeatureBank):
    """The training FeatureBank, except that a feature no new clip has (e.g. none of the videos has
    audio) becomes NaN columns for the models to impute, as a failed clip is in training; its width
    is read from one clip of the training feature store."""

    def __init__(self, root: Path, specs: list, train_root: Path):
        super().__init__(root, specs)
        self.train_root = Path(train_root)

    def width(self, spec) -> int:
        store = FeatureStore.for_spec(self.train_root, spec)
        for p in store.dir.glob("*.npz"):
            if not p.name.endswith(".track.npz"):
                return len(pool(store.load(p.stem)))
        raise PredictError(f"feature {store.key} is missing for every video, and its width is unknown: the "
                           f"training features are not in {store.dir}")

    def pooled(self, ids: list[str]) -> np.ndarray:
        cols = []
        for spec in self.specs:
            try:
                cols.append(pooled_matrix(spec, self.root, ids))
            except FeatureError:
                cols.append(np.full((len(ids), self.width(spec)), np.nan, np.float32))
        return np.concatenate(cols, axis=1)


def load_experiment(exp_dir: Path, n_targets: int, device: str | None = None) -> tuple[dict, list[list[Model]]]:
    """An experiment's config and fold models: per fold, one model per seed of a seed-averaged fold."""
    cfg = load_config(exp_dir / "config.yaml")
    if cfg.get("subject_norm"):
        raise PredictError(f"{exp_dir}: trained on features standardised within each subject (subject_norm); "
                           "new videos have no subject statistics, so it cannot predict them")
    params = {**cfg.get("params", {}), **({"device": device} if device else {})}
    folds = sorted(exp_dir.glob("fold_*/fold.json"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not folds:
        raise PredictError(f"{exp_dir}: no finished fold to load")
    models = []
    for f in folds:
        seeds = []
        for d in sorted(f.parent.glob("seed_*")) or [f.parent]:
            model = build_model(cfg["model"], params, n_targets, seed=int(cfg.get("seed", 42)),
                                source=str(exp_dir / "config.yaml"))
            try:
                model.load(d)
            except (NotImplementedError, FileNotFoundError, PermissionError) as exc:
                raise PredictError(f"{d}: the fold model cannot be loaded ({exc}); "
                                   "retrain the experiment with this version of the toolkit") from exc
            seeds.append(model)
        models.append(seeds)
    return cfg, models


def predict_experiment(models: list[list[Model]], bank: FeatureBank, ids: list[str]) -> np.ndarray:
    """(n, E): each fold's seeds averaged (like their OOF predictions), then the folds."""
    return np.mean([np.mean([m.predict(bank, ids) for m in seeds], axis=0) for seeds in models], axis=0)


def load_members(card: Card, wd: Workdir, device: str | None = None) -> list[tuple[dict, list[list[Model]]]]:
    """Every member experiment, loaded (and so checked) before any feature is extracted."""
    return [load_experiment(wd.experiment(name), len(card.targets), device) for name in card.blender.names]


def predict_videos(videos: list[Path], card: Card, wd: Workdir, device: str | None = None,
                   jobs: int = 1) -> pd.DataFrame:
    """One row per video: `video`, the card's targets (in the task's range; empty for a media error),
    then what was seen: `face_rate`, `audio_s`, `status` (docs/PIPELINE.md). Warns once per problem video."""
    lo, hi = get_task().value_range
    members = load_members(card, wd, device)
    values = np.full((len(videos), len(card.targets)), np.nan)
    with tempfile.TemporaryDirectory(prefix="eri-predict-") as tmp:
        ds, seen = stage_videos(videos, Path(tmp) / "data", card.targets)
        by_id = dict(zip(clip_ids(videos), seen))
        features = Path(tmp) / "features"
        if ds.ids:
            preds = []
            for cfg, models in members:
                extract(ds, cfg["features"], features, jobs=jobs, progress=False)
                bank = PredictBank(features, cfg["features"], wd.features)
                preds.append(predict_experiment(models, bank, ds.ids))
            rows = [list(by_id).index(cid) for cid in ds.ids]
            values[rows] = np.clip(card.blender.apply(np.stack(preds)), lo, hi)
            observe({cid: by_id[cid] for cid in ds.ids}, [s for cfg, _ in members for s in cfg["features"]],
                    features, ds.root)
    out = pd.DataFrame(values, columns=card.targets)
    out.loc[[bool(s.media_error) for s in seen], :] = np.nan  # incl. a feature that failed on the video
    out.insert(0, "video", [str(v) for v in videos])
    out["face_rate"] = [round(s.face_rate, 4) for s in seen]
    out["audio_s"] = [round(s.audio_s, 3) for s in seen]
    out["status"] = [s.status for s in seen]
    for video, s in zip(videos, seen):
        if s.warning():
            log.warning("%s: %s", video, s.warning())
    return out


def write_output(df: pd.DataFrame, out: Path | None) -> None:
    if out is None:
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    elif out.suffix == ".json":
        out.write_text(df.to_json(orient="records", indent=2) + "\n")  # NaN as null
    elif out.suffix == ".csv":
        df.to_csv(out, index=False, float_format="%.6f")
    else:
        raise PredictError(f"--out {out}: use a .csv or .json file name")


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--blend", default=None, help="card name in submissions/ or a card .json (default: newest)")
    ap.add_argument("--out", type=Path, default=None, help=".csv or .json (default: a table on stdout)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--device", default=None, help="cpu or cuda for neural models (default: CUDA if present)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel clips during feature extraction")
    add_task_argument(ap)
    a = parse_and_log(ap, argv)
    if get_task(a.task).granularity != "clip":
        ap.error(f"predict scores whole clips (task eri); for the per-frame task {a.task}, add the videos as "
                 "Test videos of an Aff-Wild2-layout dataset and run make_submission (docs/AFFWILD2.md)")
    if a.out is not None and a.out.suffix not in (".csv", ".json"):
        ap.error(f"--out {a.out}: use a .csv or .json file name")
    wd = Workdir.of(a.workdir)
    card = load_card(find_card(wd, a.blend), wd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-clip problems are reported below, once, by video
        df = predict_videos(a.videos, card, wd, a.device, a.jobs)
    log.info("blend %s (%s; members: %s)", card.path.stem, card.blender.method, ", ".join(card.blender.members))
    write_output(df, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
