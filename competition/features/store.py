"""The feature store: one folder per (extractor, parameters), one .npz per clip, a manifest and failures.csv.
Extraction is parallel over clips, resumable and atomic, and reuses a clip only for the same media
(media_signatures): another dataset's clip with the same id is extracted again."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from competition.data.contract import Dataset
from competition.features.registry import (ClipMedia, Extractor, FeatureError, FeatureOutput,
                                           get_extractor, parse_feature_spec)
from competition.core.io import atomic_path, read_json, remove_orphans, write_csv, write_json
from competition.core.log import UserError, progress_disabled
from competition.core.provenance import machine_info

log = logging.getLogger(__name__)

FAILURES = "failures.csv"
MANIFEST = "manifest.csv"

_ROOT: Path | None = None


class ExtractionError(UserError, RuntimeError):
    """A feature that failed on every clip: a broken extractor, weights or decoder, never missing data."""


def current_root() -> Path | None:
    """Feature root of the extraction running in this process, so an extractor can reuse another
    store's cached output (e.g. image models read the `faces` crops); None outside extraction."""
    return _ROOT


@contextmanager
def using_root(root: Path | str) -> Iterator[None]:
    global _ROOT
    old, _ROOT = _ROOT, Path(root)
    try:
        yield
    finally:
        _ROOT = old


# Every fold of a run reads the same clips several times (fit, val, Test); small clip arrays are kept in a
# bounded LRU cache (ERI_FEATURE_CACHE_MB, default 1024; 0 turns it off). Cached arrays are read-only, so
# a consumer that modified one in place would fail loudly instead of corrupting the next fold.
_CACHE: OrderedDict[tuple[str, int, int], FeatureOutput] = OrderedDict()
_CACHE_BYTES = [0]
_CACHE_MAX_ENTRY = 1 << 20


def _nbytes(out: FeatureOutput) -> int:
    return sum(a.nbytes for a in (out.x, out.t, out.mask) if a is not None)


def _remember(key: tuple[str, int, int], out: FeatureOutput) -> None:
    budget = int(os.environ.get("ERI_FEATURE_CACHE_MB", "1024")) << 20
    size = _nbytes(out)
    if size > min(budget, _CACHE_MAX_ENTRY):
        return
    for a in (out.x, out.t, out.mask):
        if a is not None:
            a.setflags(write=False)
    _CACHE[key] = out
    _CACHE_BYTES[0] += size
    while _CACHE_BYTES[0] > budget:
        _, old = _CACHE.popitem(last=False)
        _CACHE_BYTES[0] -= _nbytes(old)


class FeatureStore:
    def __init__(self, root: Path | str, extractor: Extractor, params: dict[str, Any] | None = None):
        self.extractor = extractor
        self.params = extractor.resolve(params)
        self.key = extractor.key(params)
        self.dir = Path(root) / self.key

    @classmethod
    def for_spec(cls, root: Path | str, spec: str | dict) -> "FeatureStore":
        name, params = parse_feature_spec(spec)
        return cls(root, get_extractor(name), params)

    def path(self, clip_id: str) -> Path:
        return self.dir / f"{clip_id}.npz"

    def has(self, clip_id: str, media: str | None = None) -> bool:  # `media`: computed from those media
        return self.path(clip_id).exists() and media in (None, json.loads(self.stored_info(clip_id)).get("media"))

    def save(self, clip_id: str, out: FeatureOutput, media: str | None = None) -> None:
        arrays = {"x": np.asarray(out.x, dtype=self.extractor.dtype)}
        if out.t is not None:
            arrays["t"] = np.asarray(out.t, dtype=np.float32)
        if out.mask is not None:
            arrays["mask"] = np.asarray(out.mask, dtype=bool)
        # the manifest facts travel with the clip, so a manifest lost to a kill can be rebuilt
        arrays["info"] = np.array(manifest_info(out, media))
        with atomic_path(self.path(clip_id)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

    def load(self, clip_id: str) -> FeatureOutput | None:
        p = self.path(clip_id)
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        key = (str(p), st.st_mtime_ns, st.st_size)  # a rewritten file is a new key
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        with np.load(p, allow_pickle=False) as z:
            out = FeatureOutput(x=z["x"].astype(np.float32),
                                t=z["t"] if "t" in z.files else None,
                                mask=z["mask"] if "mask" in z.files else None)
        _remember(key, out)
        return out

    def stored_info(self, clip_id: str) -> str:
        """The manifest `info` JSON saved with a clip (its shape only for clips stored before info was kept)."""
        with np.load(self.path(clip_id), allow_pickle=False) as z:
            return str(z["info"]) if "info" in z.files else json.dumps({"shape": list(z["x"].shape)})

    def failures(self) -> pd.DataFrame:
        p = self.dir / FAILURES
        if not p.exists():
            return pd.DataFrame(columns=["clip", "stage", "reason"])
        return pd.read_csv(p, dtype=str, keep_default_na=False)

    def manifest(self) -> pd.DataFrame:
        p = self.dir / MANIFEST
        if not p.exists():
            return pd.DataFrame(columns=["clip", "shape", "seconds", "info"])
        return pd.read_csv(p, dtype={"clip": str}, keep_default_na=False)


def manifest_info(out: FeatureOutput, media: str | None = None) -> str:
    return json.dumps({"shape": list(out.x.shape), **out.info, **({"media": media} if media else {})}, default=str)


def media_signatures(dataset: Dataset, ids: list[str]) -> dict[str, str]:
    """Per clip, its media files' (mp4, wav, aligned crops) sizes and modification times: kept by moving a
    dataset or copying it with its times (cp -a, unzip), changed by other media under the same ids."""
    out = {}
    for c in ids:
        m, parts = clip_media(dataset, c), []
        for p in (m.mp4, m.wav, m.frames_dir):
            try:
                st = os.stat(p) if p is not None else None
            except OSError:
                st = None
            parts.append(f"{st.st_size}:{st.st_mtime_ns}" if st else "-")
        out[c] = hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
    return out


@dataclass
class ExtractReport:
    key: str
    done: int       # computed in this run
    skipped: int    # already stored
    failed: int
    seconds: float


def clip_media(dataset: Dataset, clip_id: str, media: str | None = None) -> ClipMedia:
    return ClipMedia(clip_id, dataset.split_of(clip_id), dataset.media(clip_id, "mp4"),
                     dataset.media(clip_id, "wav"), *dataset.aligned_frames(clip_id), media=media)


@contextmanager
def one_thread() -> Iterator[None]:
    """Each clip is computed with one thread, in a worker or in this process alike. torch's CPU kernels
    (oneDNN convolutions in MTCNN, EfficientNet, ...) and the BLAS behind numpy/librosa (the mel and DCT
    products of MFCCs) split their sums by thread count and round differently with 1 and 2 threads, so
    without this `--jobs 1` and `--jobs 2` stored different face boxes (by ~1e-7), embeddings and, on
    some CPUs, MFCC statistics. Parallelism comes from `--jobs` (clips), which also scales better."""
    import torch
    from threadpoolctl import threadpool_limits
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def _compute(store: FeatureStore, clip: ClipMedia) -> tuple[str, str, str, float, str]:
    """Worker: (clip, status, reason, seconds, manifest info). Exceptions become failure rows."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), using_root(store.dir.parent), one_thread():
            warnings.simplefilter("ignore")
            out = store.extractor.run(clip, store.params)
        if not np.isfinite(out.x).all():
            raise FeatureError("non-finite values in output")
        store.save(clip.clip_id, out, clip.media)
        return clip.clip_id, "ok", "", time.perf_counter() - t0, manifest_info(out, clip.media)
    except Exception as exc:  # one broken clip never kills the batch
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
        return clip.clip_id, "failed", reason, time.perf_counter() - t0, ""


def extract_one(dataset: Dataset, spec: str | dict, root: Path | str, ids: Iterable[str] | None = None,
                jobs: int = 1, progress: bool = True, media: dict[str, str] | None = None,
                require: bool = False) -> ExtractReport:
    """Extract the clips not stored yet, or stored from other `media` (media_signatures), into the store of
    `spec`; with `require`, a feature that failed on every clip raises ExtractionError."""
    store = FeatureStore.for_spec(root, spec)
    store.dir.mkdir(parents=True, exist_ok=True)
    remove_orphans(store.dir)  # temporary files of a killed run
    ids = list(dataset.ids if ids is None else ids)
    media = media or media_signatures(dataset, ids)
    manifest = store.manifest().set_index("clip")
    stored_media = {c: json.loads(i or "{}").get("media") for c, i in manifest["info"].items()}
    todo, changed, recovered = [], [], []  # recovered: stored by a run killed before it wrote the manifest
    for c in ids:
        if not store.path(c).exists():
            todo.append(c)
        elif stored_media.get(c) != media[c]:  # not in the manifest, or stored again since it was written
            info = store.stored_info(c)
            stored_media[c] = json.loads(info).get("media")
            if stored_media[c] != media[c]:
                changed.append(c)
            else:
                recovered.append({"clip": c, "shape": json.loads(info)["shape"], "seconds": "", "info": info})
    if changed:  # (or were stored by a version that recorded no media)
        log.warning("features %s: %d clip(s) re-extracted: their media changed since they were stored (%s)",
                    store.key, len(changed), store.dir)
        for c in changed:
            store.path(c).unlink()
        todo += changed
        manifest = manifest[~manifest.index.isin(changed)]
    previous = read_json(store.dir / "params.json") if (store.dir / "params.json").exists() else {}
    # float features are machine-specific (competition.core.provenance): say where clips were computed
    machines = previous.get("computed_on", [])
    if todo and machine_info() not in machines:
        machines = [*machines, machine_info()]
    write_json(store.dir / "params.json", {"extractor": store.extractor.name, "kind": store.extractor.kind,
                                           "version": store.extractor.version, "params": store.params,
                                           "computed_on": machines})
    t0 = time.perf_counter()
    failures = store.failures()
    failures = failures[~failures["clip"].isin(todo)]  # retried now
    new_fail, rows = [], []
    if todo:
        tasks = (delayed(_compute)(store, clip_media(dataset, c, media[c])) for c in todo)
        results = Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks) if jobs != 1 else \
            (_compute(store, clip_media(dataset, c, media[c])) for c in todo)
        bar = tqdm(results, total=len(todo), desc=store.key, disable=progress_disabled(progress), unit="clip")
        for clip_id, status, reason, secs, info in bar:
            if status == "ok":
                rows.append({"clip": clip_id, "shape": json.loads(info)["shape"], "seconds": round(secs, 4),
                             "info": info})
            else:
                new_fail.append({"clip": clip_id, "stage": store.extractor.name, "reason": reason})
    if rows or recovered:
        add = pd.DataFrame(rows + recovered).set_index("clip")
        manifest = pd.concat([manifest[~manifest.index.isin(add.index)], add])
    write_csv(store.dir / MANIFEST, manifest.reset_index().sort_values("clip"), float_format=None)
    failures = pd.concat([failures, pd.DataFrame(new_fail, columns=["clip", "stage", "reason"])])
    write_csv(store.dir / FAILURES, failures.sort_values("clip"), float_format=None)
    first = f"(first: {new_fail[0]['clip']}: {new_fail[0]['reason']})" if new_fail else ""
    if require and ids and len(new_fail) == len(ids):
        raise ExtractionError(f"feature {store.key} failed on every one of the {len(ids)} clip(s), an extraction "
                              f"failure, not missing data: see {store.dir / FAILURES} {first}")
    if new_fail:
        warnings.warn(f"{store.key}: {len(new_fail)} clip(s) failed, see {store.dir / FAILURES} {first}",
                      stacklevel=2)
    report = ExtractReport(store.key, len(rows), len(ids) - len(todo), len(new_fail), time.perf_counter() - t0)
    if todo:
        log.log(logging.INFO if progress else logging.DEBUG, "features %s: %d extracted, %d already stored, "
                "%d failed, %.1fs -> %s", store.key, report.done, report.skipped, report.failed, report.seconds,
                store.dir)
    return report


def extract(dataset: Dataset, specs: Iterable[str | dict], root: Path | str, ids: Iterable[str] | None = None,
            jobs: int = 1, progress: bool = True, require: bool = False) -> list[ExtractReport]:
    """extract_one for each feature spec (the media signatures computed once)."""
    ids = list(dataset.ids if ids is None else ids)
    media = media_signatures(dataset, ids)
    return [extract_one(dataset, s, root, ids, jobs, progress, media, require) for s in specs]


def load_outputs(spec: str | dict, root: Path | str, ids: list[str]) -> list[FeatureOutput | None]:
    """One FeatureOutput per id (None where the clip failed extraction)."""
    store = FeatureStore.for_spec(root, spec)
    return [store.load(c) for c in ids]


def pool(out: FeatureOutput | None, dim: int | None = None) -> np.ndarray:
    """Clip vector: a vector feature as is; a sequence as mean and std over its real rows.
    A missing clip (or one with no real rows) gives NaNs, for the model to impute."""
    if out is None:
        if dim is None:
            raise ValueError("pool(None) needs dim")
        return np.full(dim, np.nan, np.float32)
    x = out.x
    if x.ndim == 1:
        return x.astype(np.float32)
    if out.mask is not None:
        x = x[out.mask]
    if len(x) == 0:
        return np.full(2 * out.x.shape[1], np.nan, np.float32)
    return np.concatenate([x.mean(0), x.std(0)]).astype(np.float32)


def pooled_matrix(spec: str | dict, root: Path | str, ids: list[str]) -> np.ndarray:
    """(N, D) clip matrix of one feature with NaN rows for missing clips."""
    return pool_outputs(spec, root, load_outputs(spec, root, ids))


def pool_outputs(spec: str | dict, root: Path | str, outs: list[FeatureOutput | None]) -> np.ndarray:
    """(N, D) matrix of the clips' outputs of the feature `spec` (stored under `root`), pooled."""
    vecs = [pool(o) for o in outs if o is not None]
    if not vecs:
        raise FeatureError(f"no stored values of feature {spec!r} for these {len(outs)} clips under {root}")
    dim = len(vecs[0])
    return np.stack([pool(o, dim) for o in outs])
