"""Hand-crafted appearance extractors on real faces: skimage's astronaut, neutral and deformed by the
synthetic generator's action-unit fields (smile, jaw drop), and on the `faces` cache of a clip (with the
geometry of competition.features.landmarks, tested itself in test_face_landmarks.py)."""
from pathlib import Path

import numpy as np
import pytest

from competition.data.synth_faces import COMPONENTS, face_bank, render_head
from competition.features.appearance import flow_rows, hog_rows, lbp_rows
from competition.features.landmarks import COLUMNS
from competition.features.registry import ClipMedia, get_extractor
from competition.features.store import FeatureStore, using_root
from fixtures_media import write_video


def _face(**act: float) -> np.ndarray:
    a = np.zeros(len(COMPONENTS), np.float32)
    for name, v in act.items():
        a[COMPONENTS.index(name)] = v
    return np.clip(render_head(face_bank(), a), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    return {"neutral": _face(), "smile": _face(smile=1.5), "jaw": _face(jaw_drop=1.5),
            "brow": _face(brow_raise=1.5)}


def _cell(rows: np.ndarray, side: int, cells: int, dims: int) -> np.ndarray:
    return rows.reshape(len(rows), cells, cells, dims)


def test_hog_shape_and_expression_changes_the_mouth_cells_most(faces):
    crops = np.stack([faces["neutral"], faces["smile"], faces["brow"]])
    h = hog_rows(crops)                        # 64 px, 8 px cells, 9 orientations, 1-cell blocks
    assert h.shape == (3, 8 * 8 * 9) and h.dtype == np.float32 and np.isfinite(h).all()
    assert np.allclose(hog_rows(crops[:1]), h[:1])  # deterministic, frame by frame
    cells = _cell(h, 64, 8, 9)
    diff_smile = np.abs(cells[1] - cells[0]).sum(-1)   # (8, 8) change per cell
    diff_brow = np.abs(cells[2] - cells[0]).sum(-1)
    # the smile moves the mouth corners (lower half of the head crop), the brow raise the brows
    assert diff_smile[4:].sum() > 2 * diff_smile[:4].sum()
    assert diff_brow[:4].sum() > diff_brow[4:].sum()
    assert hog_rows(crops, size=48, cell=16, block=2).shape == (3, 2 * 2 * 4 * 9)
    assert hog_rows(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 576)


def test_lbp_histograms_per_region(faces):
    crops = np.stack([faces["neutral"], faces["jaw"]])
    x = lbp_rows(crops)
    assert x.shape == (2, 4 * 4 * 10) and np.isfinite(x).all()
    hist = x.reshape(2, 16, 10)
    assert np.allclose(hist.sum(-1), 1.0, atol=1e-5) and (hist >= 0).all()
    # the jaw drop (dark open mouth, chin down) changes the lower regions more than the upper ones
    change = np.abs(hist[1] - hist[0]).sum(-1).reshape(4, 4)
    assert change[2:].sum() > change[:2].sum()
    assert lbp_rows(crops, grid=2, points=16, radius=2).shape == (2, 2 * 2 * 18)


def test_flow_is_zero_on_a_still_face_and_points_up_at_the_mouth_for_a_smile(faces):
    still = flow_rows(np.stack([faces["neutral"]] * 4))
    assert still.shape == (4, 2 * 64 + 2) and np.abs(still).max() < 1e-3
    crops = np.stack([faces["neutral"]] * 5 + [faces["smile"]])
    f = flow_rows(crops, mask=np.ones(6, bool))
    assert np.abs(f[:5]).max() < 1e-3      # the median face is the neutral one
    dy = f[5, 64:128].reshape(8, 8)
    # mouth-corner cells (rows 4-5, columns 2-5) move up (negative y) relative to the face
    assert dy[4:6, 2:6].mean() < -0.5 / 64 and dy[4:6, 2:6].mean() < dy[:3].mean() - 0.5 / 64
    # the reference comes from real frames only: masked-out frames do not count
    g = flow_rows(np.stack([faces["smile"]] * 4 + [faces["neutral"]] * 2),
                  mask=np.array([0, 0, 0, 0, 1, 1], bool))
    assert np.abs(g[4:]).max() < 1e-3 and np.abs(g[0, :128]).max() > 0.5 / 64


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("appearance")
    return write_video(d / "face.mp4", n_frames=30, fps=15), d / "features"


def test_extractors_read_the_faces_cache_and_share_its_rows(face_clip, monkeypatch):
    mp4, root = face_clip
    clip = ClipMedia("c1", "train", mp4, mp4.with_suffix(".wav"))
    faces_store = FeatureStore(root, get_extractor("faces"))
    faces_store.dir.mkdir(parents=True)
    with using_root(root):
        crops = get_extractor("faces").run(clip)
    faces_store.save("c1", crops)
    n = len(crops.x)
    assert n == 10 and crops.mask.all()
    import competition.features.faces as faces_mod

    def no_decode(*a, **k):
        raise AssertionError("the video was decoded again")

    monkeypatch.setattr(faces_mod, "run_face_pipeline", no_decode)
    want = {"hog": 576, "lbp": 160, "face_flow": 130, "landmark_geometry": len(COLUMNS)}
    with using_root(root):
        for name, dim in want.items():
            out = get_extractor(name).run(clip)
            assert out.x.shape == (n, dim) and np.isfinite(out.x).all(), name
            assert np.allclose(out.t, crops.t) and (out.mask == crops.mask).all(), name
    geo = get_extractor("landmark_geometry")
    with using_root(root):
        g = geo.run(clip).x
    assert 0.8 < np.median(g[:, COLUMNS.index("mouth_width")]) < 1.3
    assert 0.2 < np.median(g[:, COLUMNS.index("eye_open_left")]) < 0.5
