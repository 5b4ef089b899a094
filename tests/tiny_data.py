"""A tiny Hume-layout dataset with real (short) wav files, for end-to-end runs of the audio features in
seconds: the resume, determinism and bad-input tests. Labels follow the audio loosely so that models
learn something, which makes a wrong OOF visible."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from competition.data.contract import HUME_EMOTIONS, bracket_id, load_dataset, media_path

SR = 16_000
REPO = Path(__file__).resolve().parent.parent


def write_audio_dataset(root: Path, n_train: int = 30, n_val: int = 10, n_test: int = 10,
                        seconds: float = 1.0, seed: int = 0) -> Path:
    """data_info.csv + a noisy tone per clip whose loudness and pitch follow two of the labels."""
    rng = np.random.default_rng(seed)
    rows = []
    t = np.arange(int(seconds * SR)) / SR
    splits = ["Train"] * n_train + ["Val"] * n_val + ["Test"] * n_test
    for i, split in enumerate(splits):
        cid = f"{i:05d}"
        y = rng.beta(1.2, 2.5, len(HUME_EMOTIONS))
        y = y / y.max()
        wave = (0.05 + 0.3 * y[1]) * np.sin(2 * np.pi * (150 + 300 * y[6]) * t) \
            + 0.02 * rng.standard_normal(len(t))
        row = {"File_ID": bracket_id(cid), "Split": split}
        row.update({e: ("" if split == "Test" else f"{v:.4f}") for e, v in zip(HUME_EMOTIONS, y)})
        row.update({"Age": f"{rng.uniform(18, 65):.1f}", "Country": rng.choice(["United States", "South Africa"])})
        rows.append(row)
        wav = media_path(root, split, cid, "wav")
        wav.parent.mkdir(parents=True, exist_ok=True)
        sf.write(wav, wave.astype(np.float32), SR)
        mp4 = media_path(root, split, cid, "mp4")
        mp4.parent.mkdir(parents=True, exist_ok=True)
        mp4.touch()
    pd.DataFrame(rows).to_csv(root / "data_info.csv", index=False)
    load_dataset(root)  # the helper must produce a valid dataset
    return root


def write_config(path: Path, name: str, model: str = "ridge", features: tuple = ("mfcc_stats",),
                 search_space: dict | None = None, **params: object) -> Path:
    """An experiment config outside configs/, for `--exp <path>`."""
    import yaml
    cfg = {"name": name, "model": model, "features": list(features), "params": dict(params), "seed": 7}
    if search_space:
        cfg["search_space"] = search_space
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def save_timm_weights(model: str, path: Path | str) -> Path:
    """A timm model's current (random) weights as a safetensors file: how tests make a 'pretrained' file."""
    import timm
    from safetensors.torch import save_file
    net = timm.create_model(model, pretrained=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path
