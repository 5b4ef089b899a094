import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from competition.data.contract import HUME_EMOTIONS, media_path  # noqa: E402

# Markers by module, in one place: `-m "not media"` skips the tests that encode/decode real media files
# (video generation, face detection, feature extraction), `-m "not e2e"` the ones that run whole commands.
MEDIA_MODULES = {"test_features_faces", "test_features_media", "test_features_appearance", "test_features_extract",
                 "test_features_models", "test_determinism", "test_synth", "test_synth_affwild2", "test_predict",
                 "test_store_cache", "test_subjects_estimate", "test_face_landmarks", "test_store_media"}
E2E_MODULES = {"test_end_to_end", "test_frame_tasks", "test_all_configs", "test_blend_submission", "test_report"}


@pytest.fixture(autouse=True, scope="session")
def default_workdir_outside_the_repo(tmp_path_factory):
    """Commands run without --workdir write to the dataset's default work directory (runs/<dataset>-<hash>/ in
    the repo, e.g. the importer's subjects file): in tests, a temporary folder ($ERI_WORKDIR) instead."""
    if "ERI_WORKDIR" not in os.environ:
        os.environ["ERI_WORKDIR"] = str(tmp_path_factory.mktemp("default_workdir"))
    yield


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in MEDIA_MODULES:
            item.add_marker(pytest.mark.media)
        if module in E2E_MODULES:
            item.add_marker(pytest.mark.e2e)


def write_fake_dataset(root: Path, n_train: int = 40, n_val: int = 12, n_test: int = 10,
                       emotions: tuple[str, ...] = HUME_EMOTIONS, seed: int = 0,
                       media: bool = True) -> Path:
    """A data_info.csv in the Hume layout with random max-normalised labels and empty media files:
    enough for contract, fold, metric and submission tests (not for feature extraction)."""
    rng = np.random.default_rng(seed)
    rows = []
    splits = ["Train"] * n_train + ["Val"] * n_val + ["Test"] * n_test
    for i, split in enumerate(splits):
        cid = f"{i:05d}"
        row = {"File_ID": f"[{cid}]", "Split": split}
        if split == "Test":
            row.update({e: "" for e in emotions})
        else:
            y = rng.beta(1.2, 2.5, len(emotions))
            y = y / y.max()
            row.update({e: f"{v:.4f}" for e, v in zip(emotions, y)})
        row["Age"] = f"{rng.uniform(18, 65):.1f}"
        row["Country"] = rng.choice(["United States", "South Africa"])
        rows.append(row)
        if media:
            for kind in ("mp4", "wav"):
                p = media_path(root, split, cid, kind)
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch()
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "data_info.csv", index=False)
    return root


@pytest.fixture
def fake_dataset(tmp_path):
    return write_fake_dataset(tmp_path / "data")
