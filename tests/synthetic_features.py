"""Synthetic stored features for the sequence-model tests: extractors registered here (never run; their
outputs are written straight into FeatureStores) carrying a learnable signal of the labels, with
variable lengths, rows masked out, clips without a face and clips whose audio failed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from competition.features.registry import FeatureOutput, get_extractor, register_extractor
from competition.features.store import FeatureStore

CROP = 16  # side of the synthetic face crops


def _never_run(clip, **params):
    raise AssertionError("synthetic test features are written directly, not extracted")


for _name, _dtype in (("syn_face", "float32"), ("syn_audio", "float32"), ("syn_pose", "float32"),
                      ("syn_crops", "uint8")):
    register_extractor(_name, kind="sequence", dtype=_dtype)(_never_run)
register_extractor("syn_vec", kind="vector")(_never_run)

SPECS = ["syn_face", "syn_audio", "syn_pose", "syn_crops", "syn_vec"]


def clip_features(y: np.ndarray, rng: np.random.Generator, no_face: bool = False, no_audio: bool = False
                  ) -> dict[str, FeatureOutput | None]:
    """One clip's features from its label vector y (7,)."""
    n_face = int(rng.integers(5, 12))
    t_face = np.arange(n_face) * 0.5 + 0.25
    w_face = np.linspace(-1, 1, 7 * 12).reshape(7, 12)
    face = y @ w_face + 0.3 * rng.standard_normal((n_face, 12))
    face_mask = rng.random(n_face) > 0.2
    if no_face:
        face_mask[:] = False
    n_audio = int(rng.integers(8, 20))
    t_audio = np.arange(n_audio) * 0.3 + 0.15
    audio = y[:4].sum() + 0.5 * rng.standard_normal((n_audio, 10))
    pose = np.cumsum(0.1 * rng.standard_normal((n_face, 4)), 0) + y[1]
    crops = np.zeros((n_face, CROP, CROP, 3), np.uint8)
    crops[:] = rng.integers(0, 60, (n_face, CROP, CROP, 3))
    crops[:, 4:12, 4:12, 0] += np.uint8(190 * y[0])  # a patch whose brightness carries emotion 0
    return {
        "syn_face": FeatureOutput(face.astype(np.float32), t_face.astype(np.float32), face_mask),
        "syn_audio": None if no_audio else FeatureOutput(audio.astype(np.float32), t_audio.astype(np.float32)),
        "syn_pose": FeatureOutput(pose.astype(np.float32), t_face.astype(np.float32), face_mask.copy()),
        "syn_crops": FeatureOutput(crops.reshape(n_face, -1), t_face.astype(np.float32), face_mask.copy()),
        "syn_vec": FeatureOutput((y[2] + 0.3 * rng.standard_normal(5)).astype(np.float32)),
    }


def write_features(root: Path, ids: list[str], labels: np.ndarray, seed: int = 0,
                   media: dict[str, str] | None = None) -> list[str]:
    """Store every synthetic feature for `ids` (labels: (N, 7), rows of NaN for unlabelled clips), as
    computed from `media` (store.media_signatures; run_fold then reuses them). Every 7th clip has no face,
    every 9th clip's audio failed. Returns the feature specs."""
    rng = np.random.default_rng(seed)
    stores = {n: FeatureStore(root, get_extractor(n)) for n in SPECS}
    for i, (cid, y) in enumerate(zip(ids, labels)):
        y = np.nan_to_num(y, nan=float(rng.random()))
        for name, out in clip_features(y, rng, no_face=i % 7 == 3, no_audio=i % 9 == 4).items():
            if out is not None:
                stores[name].save(cid, out, (media or {}).get(cid))
    return list(SPECS)


def synthetic_bank(root: Path, n: int = 40, seed: int = 0):
    """(bank, ids, labels) with n labelled clips."""
    from competition.features.bank import FeatureBank
    rng = np.random.default_rng(seed)
    y = rng.beta(1.2, 2.5, (n, 7)).astype(np.float32)
    y /= y.max(1, keepdims=True)
    ids = [f"{i:05d}" for i in range(n)]
    specs = write_features(root, ids, y, seed)
    return FeatureBank(root, specs), ids, y
