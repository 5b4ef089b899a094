"""Predict the emotion intensities of new reaction videos with a blend's fold models.

    python -m competition.pipeline.predict VIDEO... [--blend NAME|CARD.json] [--out FILE.csv|FILE.json]
                                  [--workdir W] [--device cpu|cuda] [--jobs N]

The blend is a card written by make_submission.py (default: the newest card in submissions/). For each
member experiment, the features its config names are extracted by the same extractors and feature store
as in training, into a temporary Hume-layout folder holding the videos; every fold model in
oof/<exp>/fold_<k>/ is loaded (Model.load) and their predictions are averaged, as for the Test clips;
the members are then weighted as in the card. Audio is the sibling <video>.wav when there is one, else
the video's own audio track (PyAV, 16 kHz mono). A video without a face or without audio still gets a
prediction (the models impute what is missing, as in training), with a warning.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from competition.pipeline.config import load_config
from competition.data.contract import SPLIT_COL, Dataset, media_path
from competition.pipeline.ensembling.methods import Blender, rank_reference
from competition.pipeline.ensembling.postprocess import SUBJECT_POSTPROCESS
from competition.pipeline.experiment import read_predictions
from competition.features.audio import SAMPLE_RATE, audio_from_video
from competition.features.registry import FeatureError
from competition.features.store import FeatureStore, extract, pool, pooled_matrix
from competition.core.io import read_json
from competition.features.bank import FeatureBank
from competition.models.registry import build_model
from competition.core.paths import Workdir
from competition.data.task import add_task_argument, get_task


class PredictError(RuntimeError):
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


def stage_videos(videos: list[Path], root: Path, targets: list[str]) -> tuple[Dataset, list[str]]:
    """A Hume-layout dataset of Test clips under root: the videos linked in, audio beside them."""
    notes: list[str] = []
    ids = clip_ids(videos)
    for cid, video in zip(ids, videos):
        if not video.is_file():
            raise PredictError(f"{video}: no such video file")
        mp4, wav = media_path(root, "Test", cid, "mp4"), media_path(root, "Test", cid, "wav")
        mp4.parent.mkdir(parents=True, exist_ok=True)
        wav.parent.mkdir(parents=True, exist_ok=True)
        mp4.symlink_to(video.resolve())
        sibling = video.with_suffix(".wav")
        if sibling.is_file():
            wav.symlink_to(sibling.resolve())
            continue
        try:
            y = audio_from_video(video, SAMPLE_RATE)
        except FeatureError as exc:
            notes.append(f"{video}: no usable audio ({exc}); its audio features are missing and imputed")
            continue
        if len(y) == 0:
            notes.append(f"{video}: empty audio track; its audio features are missing and imputed")
            continue
        sf.write(str(wav), y, SAMPLE_RATE)
    table = pd.DataFrame({SPLIT_COL: "Test", **{t: np.nan for t in targets}}, index=pd.Index(ids, name="File_ID"))
    return Dataset(root=root, table=table, emotions=list(targets), fingerprint="predict"), notes


def extraction_notes(specs: list, features_root: Path, videos: dict[str, Path], staged: Path) -> list[str]:
    """Warnings the feature store recorded for these clips: failures and faceless videos. Failures
    for want of a wav are left out: the missing audio has been reported already."""
    notes = []
    for spec in specs:
        store = FeatureStore.for_spec(features_root, spec)
        for row in store.failures().itertuples():
            wav = media_path(staged, "Test", row.clip, "wav")
            if row.clip in videos and not (str(wav) in row.reason and not wav.exists()):
                reason = row.reason.replace(f"{staged}/", "")
                notes.append(f"{videos[row.clip]}: feature {store.key} failed ({reason}); imputed by the models")
        man = store.manifest()
        for row in man[man["clip"].isin(list(videos))].itertuples():
            info = json.loads(row.info) if row.info else {}
            if info.get("fallback") or info.get("detection_rate", 1.0) == 0:
                notes.append(f"{videos[row.clip]}: no face detected ({store.key}); the prediction rests on "
                             "the whole frame and the other features")
            notes += [f"{videos[row.clip]}: {w}" for w in info.get("warnings", [])]
    return notes


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


def member_prediction(exp_dir: Path, ds: Dataset, features_root: Path, train_features: Path,
                      device: str | None = None, jobs: int = 1) -> np.ndarray:
    """(n, E): the experiment's fold models, each loaded from its fold directory, averaged."""
    cfg = load_config(exp_dir / "config.yaml")
    if cfg.get("subject_norm"):
        raise PredictError(f"{exp_dir}: trained on features standardised within each subject (subject_norm); "
                           "new videos have no subject statistics, so it cannot predict them")
    extract(ds, cfg["features"], features_root, jobs=jobs, progress=False)
    bank = PredictBank(features_root, cfg["features"], train_features)
    params = {**cfg.get("params", {}), **({"device": device} if device else {})}
    folds = sorted(exp_dir.glob("fold_*/fold.json"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not folds:
        raise PredictError(f"{exp_dir}: no finished fold to load")
    preds = []
    for f in folds:
        model = build_model(cfg["model"], params, len(ds.emotions), seed=int(cfg.get("seed", 42)))
        try:
            model.load(f.parent)
        except (NotImplementedError, FileNotFoundError) as exc:
            raise PredictError(f"{f.parent}: the fold model cannot be loaded ({exc}); "
                               "retrain the experiment with a model that saves itself") from exc
        preds.append(model.predict(bank, ds.ids))
    return np.mean(preds, axis=0)


def predict_videos(videos: list[Path], card: Card, wd: Workdir, device: str | None = None,
                   jobs: int = 1) -> tuple[pd.DataFrame, list[str]]:
    """One row per video (column `video`, then the card's targets, values in [0, 1]) and the warnings."""
    lo, hi = get_task().value_range
    with tempfile.TemporaryDirectory(prefix="eri-predict-") as tmp:
        ds, notes = stage_videos(videos, Path(tmp) / "data", card.targets)
        features = Path(tmp) / "features"
        preds = np.stack([member_prediction(wd.experiment(n), ds, features, wd.features, device, jobs)
                          for n in card.blender.names])
        specs = [s for n in card.blender.names for s in load_config(wd.experiment(n) / "config.yaml")["features"]]
        notes += extraction_notes(specs, features, dict(zip(ds.ids, videos)), ds.root)
    out = pd.DataFrame(np.clip(card.blender.apply(preds), lo, hi), columns=card.targets)
    out.insert(0, "video", [str(v) for v in videos])
    return out, list(dict.fromkeys(notes))


def write_output(df: pd.DataFrame, out: Path | None) -> None:
    if out is None:
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    elif out.suffix == ".json":
        out.write_text(json.dumps(df.to_dict(orient="records"), indent=2) + "\n")
    elif out.suffix == ".csv":
        df.to_csv(out, index=False, float_format="%.6f")
    else:
        raise PredictError(f"--out {out}: use a .csv or .json file name")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--blend", default=None, help="card name in submissions/ or a card .json (default: newest)")
    ap.add_argument("--out", type=Path, default=None, help=".csv or .json (default: a table on stdout)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--device", default=None, help="cpu or cuda for neural models (default: CUDA if present)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel clips during feature extraction")
    add_task_argument(ap)
    a = ap.parse_args(argv)
    if get_task(a.task).granularity != "clip":
        ap.error(f"predict scores whole clips (task eri); for the per-frame task {a.task}, add the videos as "
                 "Test videos of an Aff-Wild2-layout dataset and run make_submission (docs/AFFWILD2.md)")
    if a.out is not None and a.out.suffix not in (".csv", ".json"):
        ap.error(f"--out {a.out}: use a .csv or .json file name")
    wd = Workdir.of(a.workdir)
    try:
        card = load_card(find_card(wd, a.blend), wd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-clip problems are reported below, once, by video
            df, notes = predict_videos(a.videos, card, wd, a.device, a.jobs)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for n in notes:
        print(f"warning: {n}", file=sys.stderr)
    print(f"blend {card.path.stem} ({card.blender.method}; members: {', '.join(card.blender.members)})",
          file=sys.stderr)
    write_output(df, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
