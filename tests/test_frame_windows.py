"""How a frame sample sees its video: the feature bank crops each stored sequence to the frame's context
window, the shared grid spans the whole window (cells outside the video masked), and audio can be
interpolated onto the grid."""
import numpy as np
import pytest

from competition.features.registry import FeatureOutput
from competition.features.store import FeatureStore
from competition.features.bank import FeatureBank, Windows, crop
from competition.features.batching import build_clip_inputs, build_timeline, resample


def test_crop_keeps_rows_inside_the_window_with_their_times():
    out = FeatureOutput(np.arange(10, dtype=np.float32)[:, None], t=np.arange(10) * 0.5,
                        mask=np.arange(10) % 3 != 0)
    got = crop((out, out.t), 1.0, 2.5)
    assert got.t.tolist() == [1.0, 1.5, 2.0, 2.5] and got.x[:, 0].tolist() == [2, 3, 4, 5]
    assert got.mask.tolist() == [True, False, True, True]
    vec = FeatureOutput(np.ones(3, np.float32))
    assert crop((vec, np.zeros(0)), 0, 1) is vec  # a clip-level vector is the same for every frame


def test_window_grid_spans_the_window_and_masks_what_lies_outside_the_video():
    out = FeatureOutput(np.arange(20, dtype=np.float32)[:, None], t=np.arange(20) * 0.25)  # 0 .. 4.75 s
    clip = build_clip_inputs([crop((out, out.t), -1.5, 1.5)], {"a": [0]}, [1], {}, grid_len=6,
                             window=(-1.5, 1.5))
    # cells of 0.5 s centred at -1.25 ... 1.25: the first two lie before the video; the third ends at t = 0
    # and holds the first row (sample-and-hold within half a cell)
    assert clip["a"].mask.tolist() == [False, False, True, True, True, True]
    assert clip["a"].x[:, 0].tolist() == pytest.approx([0, 0, 0, 0.5, 2.5, 5.0])  # cell means (the last is closed)


def test_linear_resampling_interpolates_and_masks_beyond_the_rows():
    t = np.array([0.0, 1.0, 2.0])
    x = np.array([[0.0, 10.0], [1.0, 20.0], [4.0, 0.0]], np.float32)
    out, valid = resample(x, t, np.ones(3, bool), np.array([0.5, 1.5, 2.5, 4.0]), 0.5, "linear")
    assert valid.tolist() == [True, True, True, False]
    assert out[:2].tolist() == [[0.5, 15.0], [2.5, 10.0]] and out[3].tolist() == [0.0, 0.0]


def test_bank_gives_each_frame_its_own_window_of_its_video(tmp_path):
    store = FeatureStore.for_spec(tmp_path, "mfcc")
    store.dir.mkdir(parents=True)
    for unit, offset in (("u1", 0.0), ("u2", 100.0)):
        store.save(unit, FeatureOutput(np.arange(40, dtype=np.float32)[:, None] + offset, t=np.arange(40) * 0.1))
    where = {"u1/00001": ("u1", 0.0), "u2/00021": ("u2", 2.0), "u1/00031": ("u1", 3.0)}
    windows = Windows(lambda ids: ([where[i][0] for i in ids], np.array([where[i][1] for i in ids])), 0.2, 0.2)
    bank = FeatureBank(tmp_path, ["mfcc"], windows)
    rows = [(outs[0].x[:, 0].tolist(), w) for outs, w in bank.outputs(list(where))]
    assert rows[0] == ([0.0, 1.0, 2.0], (-0.2, 0.2))
    assert rows[1][0] == pytest.approx([118.0, 119.0, 120.0, 121.0, 122.0])
    assert rows[2][0] == pytest.approx([28.0, 29.0, 30.0, 31.0, 32.0])
    pooled = bank.pooled(list(where))  # mean and std over each window
    assert pooled[:, 0] == pytest.approx([1.0, 120.0, 30.0]) and pooled.shape == (3, 2)
    assert bank.units(list(where)) == ["u1", "u2", "u1"]


def test_timeline_windows_are_views_of_one_resampled_video():
    out = FeatureOutput(np.arange(40, dtype=np.float32)[:, None], t=np.arange(40) * 0.1)  # 0 .. 3.9 s
    tl = build_timeline([out], {"a": [0]}, [1], {}, np.array([0.0, 2.0]), 1.0, 1.0, grid_len=4)
    w = tl.window(2.0)
    assert w["a"].x.base is not None  # a view of the video's timeline, not a copy
    assert w["a"].x[:, 0].tolist() == pytest.approx([12, 17, 22, 27]) and w["a"].mask.all()  # 0.5 s cells over [1, 3)
    # over [-1, 1): the first cell lies before the video; the second holds the first row (half a cell away)
    assert tl.window(0.0)["a"].mask.tolist() == [False, True, True, True]
    rows = build_timeline([out], {"a": [0]}, [1], {}, np.array([2.0]), 1.0, 1.0, max_len=5).window(2.0)
    # 21 rows in [1, 3], at most 5: every 5th, through the frame's row, spanning the window
    assert rows["a"].x[:, 0].tolist() == [10, 15, 20, 25, 30] and rows["a"].x.base is not None
    off = build_timeline([out], {"a": [0]}, [1], {}, np.array([2.0]), 1.0, 0.6, max_len=5).window(2.0)
    assert off["a"].x[:, 0].tolist() == [12, 16, 20, 24]  # rows 10..26, every 4th: the frame's row 20 is kept
    dense = build_timeline([out], {"a": [0]}, [1], {}, np.array([2.0]), 1.0, 1.0, max_len=30).window(2.0)
    assert dense["a"].x[:, 0].tolist() == list(range(10, 31))  # under max_len: every row
    far = build_timeline([out], {"a": [0]}, [1], {}, np.array([9.0]), 1.0, 1.0, max_len=5).window(9.0)
    assert far["a"].x.shape == (1, 1) and not far["a"].mask.any()  # no rows: one masked row


def test_mean_resampling_onto_uneven_rows_keeps_every_row_in_its_own_cell():
    """Sequence models without a shared grid put a modality's features on its first feature's rows, whose
    spacing is uneven (sampling picks the nearest video frame). Fixed-width bins counted from the first
    row drifted off those rows over a long video (found when windows became slices of whole videos)."""
    t = np.cumsum(np.where(np.arange(300) % 2, 0.116, 0.232))
    x = np.arange(300, dtype=np.float32)[:, None]
    out, valid = resample(x, t, np.ones(300, bool), t, float(np.median(np.diff(t))), "mean")
    assert valid.all() and out[:, 0].tolist() == x[:, 0].tolist()


def test_pooled_windows_from_prefix_sums_match_pooling_each_cropped_window(tmp_path):
    """FeatureBank.pooled for frames (prefix sums per unit) against pool(crop(...)) window by window:
    masked rows, a constant column with a large offset (std must stay ~0), windows past the video's end
    with no rows, a unit without the feature, and a clip-level vector feature."""
    from competition.features.store import pool
    rng = np.random.default_rng(0)
    seq, vec = FeatureStore.for_spec(tmp_path, "mfcc"), FeatureStore.for_spec(tmp_path, "egemaps")
    seq.dir.mkdir(parents=True), vec.dir.mkdir(parents=True)
    units = {"u1": 300, "u2": 120, "u3": 50}
    stored = {}
    for unit, n in units.items():
        x = rng.normal(-300, 40, (n, 3)).astype(np.float32)
        x[:, 2] = -324.3  # constant
        out = FeatureOutput(x, t=np.arange(n, dtype=np.float32) * 0.04, mask=rng.random(n) > 0.2)
        if unit != "u3":  # u3 has no sequence feature stored
            seq.save(unit, out)
            stored[unit] = out
        vec.save(unit, FeatureOutput(rng.normal(size=4).astype(np.float32)))
    where = {f"{u}/{k:05d}": (u, k * 0.04 * 7) for u, n in units.items() for k in range(0, n // 4)}
    where["u2/far"] = ("u2", 50.0)  # no rows in its window
    ids = list(where)
    rng.shuffle(ids)
    windows = Windows(lambda q: ([where[i][0] for i in q], np.array([where[i][1] for i in q])), 0.6, 0.4)
    got = FeatureBank(tmp_path, ["mfcc", "egemaps"], windows).pooled(ids)
    assert got.shape == (len(ids), 6 + 4)
    for k, sid in enumerate(ids):
        unit, t = where[sid]
        if unit in stored:
            want = pool(crop((stored[unit], stored[unit].t), t - 0.6, t + 0.4))
            np.testing.assert_allclose(got[k, :6], want, rtol=1e-5, atol=2e-3, equal_nan=True)
        else:
            assert np.isnan(got[k, :6]).all()
        assert np.array_equal(got[k, 6:], vec.load(unit).x)
    far = got[ids.index("u2/far")]
    assert np.isnan(far[:6]).all()
    ok = ~np.isnan(got[:, 5])
    assert np.abs(got[ok, 5]).max() < 1e-3  # the constant column's std
