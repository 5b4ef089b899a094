"""Which modalities an experiment reads, and whether a whole dataset has them at all.
More: docs/PIPELINE.md, "Absent modalities: presence.py"."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from competition.features.registry import FeatureError, get_extractor, parse_feature_spec

# a clip counts as faceless when at most this fraction of its sampled frames had a detected face
# (blank or faceless video gives 0; a stray false positive on 1 of 10 frames stays under it)
FACELESS_RATE = 0.1
# a clip counts as silent when its peak amplitude is below this (-80 dBFS)
SILENT_PEAK = 1e-4


def feature_modalities(specs: Iterable[str | dict]) -> set[str]:
    """The modalities (registry.MODALITIES) the features of an experiment read."""
    out = set()
    for spec in specs:
        modality = get_extractor(parse_feature_spec(spec)[0]).modality
        if modality:
            out.add(modality)
    return out


def modality_label(specs: Iterable[str | dict]) -> str:
    """'face', 'audio', 'face+audio', ... for tables ('-' when no feature names a modality)."""
    order = ["face", "audio", "body"]
    mods = feature_modalities(specs)
    return "+".join(m for m in order if m in mods) or "-"


def face_params_of(specs: Iterable[str | dict]) -> list[dict[str, Any]]:
    """The `faces` parameters the face features of an experiment crop with (one entry per distinct set)."""
    out: list[dict[str, Any]] = []
    for spec in specs:
        name, params = parse_feature_spec(spec)
        if get_extractor(name).modality != "face":
            continue
        face = {k: v for k, v in params.items() if k != "faces"} if name in ("faces", "pose") \
            else dict(params.get("faces") or {})
        face = {k: v for k, v in face.items() if k in get_extractor("faces").defaults}
        if face not in out:
            out.append(face)
    return out


@dataclass
class Presence:
    """Whether a modality is present in any clip, and the evidence, for messages and experiment cards."""
    modality: str
    present: bool
    evidence: str


def face_presence(ds, root: Path | str, face_params: dict[str, Any] | None = None, jobs: int = 1,
                  progress: bool = False) -> Presence:
    """Extract (or read the cached) `faces` crops of every clip and look at their detection rates."""
    from competition.features.store import FeatureStore, extract_one
    spec = {"name": "faces", "params": dict(face_params or {})}
    units = ds.units
    extract_one(units, spec, root, jobs=jobs, progress=progress, require=True)  # all failed: an error
    store = FeatureStore.for_spec(root, spec)
    manifest = store.manifest().set_index("clip")
    rates = np.array([json.loads(manifest.at[c, "info"]).get("detection_rate", 0.0)
                      if c in manifest.index else 0.0 for c in units.ids], np.float64)
    with_face = int((rates > FACELESS_RATE).sum())
    evidence = (f"{with_face} of {len(rates)} clip(s) have a face in more than {FACELESS_RATE:.0%} of their "
                f"sampled frames (highest detection rate {rates.max(initial=0.0):.3f}; {store.dir})")
    return Presence("face", with_face > 0, evidence)


def audio_presence(ds) -> Presence:
    """Audible sound in any clip (its wav, or the video's audio track when the wav is missing)."""
    from competition.features.audio import load_clip_audio
    from competition.features.store import clip_media
    units = ds.units
    unreadable = 0
    for c in units.ids:
        try:
            y, _ = load_clip_audio(clip_media(units, c))
        except FeatureError:
            unreadable += 1
            continue
        if len(y) and float(np.abs(y).max()) >= SILENT_PEAK:
            return Presence("audio", True, f"clip {c} has audible sound")
    return Presence("audio", False, f"none of {len(units.ids)} clip(s) has audible sound (peak below "
                                    f"{SILENT_PEAK:g}; {unreadable} with no readable audio at all)")
