"""Dense face geometry (`landmark_geometry`, competition.features.landmarks): dlib's 68 points on the
toolkit's own aligned crops of a real photo (skimage's astronaut), mirrored, shrunk to 48 px, and
deformed by the synthetic generator's action-unit fields."""
import cv2
import numpy as np
import pytest
from skimage import data

from competition.data.synth_faces import COMPONENTS, face_bank, render_head
from competition.features.dlib_face import crop_shape
from competition.features.landmarks import COLUMNS, MEASURES, MIRROR, N_POINTS, geometry, geometry_rows
from fixtures_media import aligned_face

MARGIN = 0.25  # the faces extractor's default


def _measures(row: np.ndarray) -> dict[str, float]:
    return dict(zip(MEASURES, row[2 * N_POINTS:]))


@pytest.fixture(scope="module")
def astronaut() -> dict[str, np.ndarray]:
    img = data.astronaut()
    crop, five = aligned_face(img)
    mirrored, _ = aligned_face(np.ascontiguousarray(img[:, ::-1]))
    return {"crop": crop, "five": five, "mirrored": mirrored}


def test_points_land_on_the_face(astronaut):
    pts = crop_shape(astronaut["crop"], MARGIN)
    assert pts.shape == (N_POINTS, 2) and len(COLUMNS) == 2 * N_POINTS + len(MEASURES)
    five = astronaut["five"]  # MTCNN's eyes, nose tip, mouth corners (image left first)
    iod = np.linalg.norm(five[1] - five[0])
    eyes = [pts[36:42].mean(0), pts[42:48].mean(0)]
    # measured: eye centres 0.026-0.035 IOD from MTCNN's eyes, nose tip 0.026, mouth corners 0.008-0.015
    for got, want in [(eyes[0], five[0]), (eyes[1], five[1]), (pts[30], five[2]), (pts[48], five[3]),
                      (pts[54], five[4])]:
        assert np.linalg.norm(got - want) < 0.12 * iod
    assert (pts[17:27, 1] < pts[36:48, 1].min()).all()          # brows above the eyes
    assert pts[8, 1] > pts[57, 1] > pts[51, 1] > pts[33, 1]     # chin, lower lip, upper lip, nose base
    assert (pts >= 0).all() and (pts < 112).all()


def test_geometry_is_invariant_to_position_scale_and_roll(astronaut):
    pts = crop_shape(astronaut["crop"], MARGIN).astype(np.float64)
    base = geometry(pts)
    th = np.radians(12)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    moved = geometry((pts - 56) @ rot.T * 1.7 + [300, 40])
    np.testing.assert_allclose(moved, base, atol=1e-4)
    m = _measures(base)
    assert 0.8 < m["mouth_width"] < 1.3 and 1.4 < m["chin"] < 2.1 and 0.2 < m["eye_open_left"] < 0.5
    assert np.isnan(geometry(np.zeros((N_POINTS, 2)))).all()  # no eyes apart: no frame to measure in


def test_a_mirrored_photo_gives_mirrored_geometry(astronaut):
    """The photo mirrored before detection (its own crop and alignment): points come back mirrored and
    left/right measures swap. Measured: points 0.025 IOD apart on average (0.07 at most), measures 0.05
    at most (the two crops are aligned separately, so this is the whole pipeline's mirror error)."""
    a, b = geometry_rows(np.stack([astronaut["crop"], astronaut["mirrored"]]), MARGIN)
    pa = a[:2 * N_POINTS].reshape(N_POINTS, 2)
    pb = b[:2 * N_POINTS].reshape(N_POINTS, 2) * [-1, 1]
    assert np.abs(pa - pb[MIRROR]).mean() < 0.05 and np.abs(pa - pb[MIRROR]).max() < 0.15
    ma, mb = _measures(a), _measures(b)
    swap = {"left": "right", "right": "left"}
    for name in MEASURES:
        side = name.rsplit("_", 1)[-1]
        other = name[: -len(side)] + swap[side] if side in swap else name
        want = -mb[other] if name == "nose_x" else mb[other]
        assert abs(ma[name] - want) < 0.1, name


def test_48px_face_keeps_its_geometry(astronaut):
    """Public face crops go down to 48 px: the crop of a 48 px face (upscaled like the importer's) gives
    points within a few % of the IOD of the full-resolution ones (measured 0.02 mean)."""
    small = cv2.resize(astronaut["crop"], (48, 48), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (112, 112), interpolation=cv2.INTER_LINEAR)
    grey = cv2.cvtColor(cv2.cvtColor(up, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    full, low, low_grey = geometry_rows(np.stack([astronaut["crop"], up, grey]), MARGIN)
    for row in (low, low_grey):
        assert np.abs(row[:2 * N_POINTS] - full[:2 * N_POINTS]).mean() < 0.06


def _expression(**act: float) -> np.ndarray:
    a = np.zeros(len(COMPONENTS), np.float32)
    for name, v in act.items():
        a[COMPONENTS.index(name)] = v
    head = np.clip(render_head(face_bank(), a), 0, 255).astype(np.uint8)
    return aligned_face(cv2.resize(head, (320, 320), interpolation=cv2.INTER_CUBIC))[0]


def test_measures_follow_the_expression():
    """The generator's action-unit fields on the real face: a smile widens the mouth and raises its
    corners, a jaw drop opens the mouth and lowers the chin, a brow raise opens the eyes."""
    rows = geometry_rows(np.stack([_expression(), _expression(smile=1.5), _expression(jaw_drop=1.5),
                                   _expression(brow_raise=1.5)]), MARGIN)
    n, s, j, b = (_measures(r) for r in rows)
    assert s["mouth_width"] > n["mouth_width"] + 0.08             # measured +0.14
    assert min(s["lip_corner_left"], s["lip_corner_right"]) > max(n["lip_corner_left"], n["lip_corner_right"]) + 0.04
    assert j["mouth_open"] > n["mouth_open"] + 0.1 and j["chin"] > n["chin"] + 0.1    # +0.17, +0.2
    assert min(b["eye_open_left"], b["eye_open_right"]) > max(n["eye_open_left"], n["eye_open_right"]) + 0.08
