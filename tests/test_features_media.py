"""Video reading and frame sampling on real encoded clips (PyAV), including VFR and damaged files."""
from pathlib import Path

import numpy as np
import pytest

from competition.features.registry import FeatureError
from competition.features.video import frame_times, read_sampled, sample_times
from fixtures_media import write_video


def test_step_sampling_picks_nearest_frame_per_tick():
    ts = np.array([0.0, 0.05, 0.31, 0.32, 0.6, 1.01])
    # ticks 0 .2 .4 .6 .8 1.0 -> frames at 0, .31, .32, .6, .6 (nearer than 1.01), 1.01; duplicates merged
    assert sample_times(ts, "step", step=0.2).tolist() == [0, 2, 3, 4, 5]
    assert sample_times(np.arange(150) / 30, "step", step=0.2).tolist() == list(range(0, 150, 6))


def test_uniform_and_every_sampling():
    ts = np.arange(100) / 25
    u = sample_times(ts, "uniform", n=32)
    assert len(u) == 32 and u[0] == 0 and u[-1] == 99 and np.all(np.diff(u) > 0)
    short = sample_times(ts[:10], "uniform", n=32)  # fewer frames than n: repeats keep the length
    assert len(short) == 32 and set(short) == set(range(10))
    assert sample_times(ts, "every", every=30).tolist() == [0, 30, 60, 90]
    with pytest.raises(ValueError):
        sample_times(ts, "random")


def test_vfr_timestamps_come_from_the_container(tmp_path: Path):
    t = np.cumsum(np.r_[0, np.random.default_rng(0).uniform(0.03, 0.15, 39)])
    path = write_video(tmp_path / "vfr.mp4", n_frames=40, times=t)
    got = frame_times(path)
    assert len(got) == 40 and np.abs(got - t).max() < 2e-3
    vf = read_sampled(path, "step", step=0.5)
    ticks = np.arange(0, t[-1] + 1e-9, 0.5)
    want = np.unique([np.abs(t - k).argmin() for k in ticks])
    assert vf.indices.tolist() == want.tolist()
    assert np.allclose(vf.times, t[want], atol=2e-3)
    assert vf.frames.shape[1:] == (144, 192, 3) and vf.frames.dtype == np.uint8


def test_decoded_frame_matches_written_content(tmp_path: Path):
    from fixtures_media import astronaut_frame
    path = write_video(tmp_path / "a.mp4", n_frames=30)
    vf = read_sampled(path, "uniform", n=40)  # 40 picks from 30 frames: repeats, decoded once, kept in order
    want = sample_times(frame_times(path), "uniform", n=40)
    assert vf.indices.tolist() == want.tolist() and len(set(want.tolist())) == 30 and vf.n_total == 30
    assert all(np.array_equal(vf.frames[k], vf.frames[k + 1]) for k in np.flatnonzero(np.diff(want) == 0))
    err = np.abs(vf.frames[-1].astype(int) - astronaut_frame(29)).mean()
    assert err < 12  # lossy H.264, but the same picture (a different frame differs by far more)
    assert np.abs(vf.frames[0].astype(int) - astronaut_frame(29)).mean() > err
    small = read_sampled(path, "every", every=10, max_side=96)
    assert small.frames.shape == (3, 72, 96, 3)


def test_sparse_decoding_skips_non_reference_frames_and_returns_the_same_pixels(tmp_path: Path):
    """libx264's defaults (3 B-frames, most not referenced) as most H.264 cameras and encoders write."""
    import av
    from competition.features.video import _decode_skipping, _open
    path = write_video(tmp_path / "b.mp4", n_frames=60)
    with av.open(str(path)) as c:
        full = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    idx = np.arange(0, 60, 6)
    vf = read_sampled(path, "every", every=6)
    assert vf.indices.tolist() == idx.tolist()
    assert all(np.array_equal(vf.frames[k], full[i]) for k, i in enumerate(idx))  # bit-identical
    c = _open(path)
    try:
        pts = sorted(p.pts for p in c.demux(video=0) if p.size)
    finally:
        c.close()
    c = _open(path)
    try:
        decoded = sum(1 for _ in _decode_skipping(c, c.streams.video[0], {int(pts[i]): 0 for i in idx}))
    finally:
        c.close()
    assert len(idx) <= decoded < 60  # unwanted non-reference frames were never decoded


def test_corrupt_and_missing_videos_raise_feature_error_naming_the_file(tmp_path: Path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(FeatureError, match="junk.mp4"):
        read_sampled(junk)
    with pytest.raises(FeatureError, match="missing"):
        read_sampled(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(FeatureError, match="empty"):
        read_sampled(empty)


def test_truncated_video_raises_or_returns_partial(tmp_path: Path):
    full = write_video(tmp_path / "full.mp4", n_frames=60)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    try:
        vf = read_sampled(cut, "every", every=1)
    except FeatureError as exc:
        assert "cut.mp4" in str(exc)
    else:  # a readable head: fewer frames than written, flagged as truncated
        assert vf.truncated and len(vf.frames) < 60
