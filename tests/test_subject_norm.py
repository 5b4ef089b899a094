"""Subject normalisation of features (config `subject_norm: true`) and the per-subject post-processing of
blends, on stored synthetic features and planted libraries."""
import numpy as np
import pandas as pd
import pytest

from competition.data.contract import HUME_EMOTIONS, Dataset, load_dataset
from competition.pipeline.ensembling.nested import NestedCV
from competition.pipeline.ensembling.postprocess import postprocess
from competition.data.subjects import SubjectsError, write_subjects
from competition.folds import make_folds
from competition.core.paths import Workdir
from competition.pipeline.run_fold import feature_bank, fit_fold, subjects_for
from tests.conftest import write_fake_dataset
from synthetic_features import write_features
from tests.test_blend_methods import library

N_TRAIN, N_VAL, N_TEST = 40, 12, 10
N = N_TRAIN + N_VAL + N_TEST


def subject_of(i: int) -> str:
    """Six subjects of ~10 clips spread over Train, Val and Test; clip 61 is the only clip of S9."""
    return "S9" if i == N - 1 else f"S{i % 6}"


@pytest.fixture
def setup(tmp_path):
    ds = load_dataset(write_fake_dataset(tmp_path / "data", N_TRAIN, N_VAL, N_TEST))
    y = np.nan_to_num(ds.labels(ds.ids), nan=0.5)
    offsets = np.arange(6)[:, None] * 2.0   # every subject shifts every feature: what normalisation removes
    from competition.features.store import FeatureStore, media_signatures
    media = media_signatures(ds, ds.ids)
    specs = write_features(tmp_path / "features", ds.ids, y, media=media)
    from competition.features.registry import FeatureOutput
    for spec in ("syn_vec", "syn_audio"):  # add a per-subject offset to two features
        store = FeatureStore.for_spec(tmp_path / "features", spec)
        for i, cid in enumerate(ds.ids):
            out = store.load(cid)
            if out is not None:
                store.save(cid, FeatureOutput(out.x + offsets[i % 6, 0], out.t, out.mask), media[cid])
    wd = Workdir.of(tmp_path / "work")
    wd.base.mkdir(parents=True)
    write_subjects(wd.subjects, pd.DataFrame({"File_ID": ds.ids, "subject": [subject_of(i) for i in range(N)]}),
                   "column:test", ds)
    cfg = {"name": "sn", "model": "ridge", "features": specs, "params": {"alpha": 1.0}, "seed": 0,
           "subject_norm": True}
    return ds, cfg, wd, tmp_path / "features"


def normalised(cfg, ds, wd, root):
    bank = feature_bank(cfg, ds, root, subjects_for(cfg, ds, wd))
    return bank.pooled(ds.ids), bank.sequences(ds.ids)


def test_planted_labels_never_change_the_normalised_features(setup, monkeypatch, tmp_path):
    """Labels planted as a copy of a feature and then shuffled: the normalised features are the same
    to the bit, and computing them with label access made to fail still works (labels are never read)."""
    ds, cfg, wd, root = setup
    pooled, seqs = normalised(cfg, ds, wd, root)
    table = ds.table.copy()
    labelled = table["Split"] != "Test"
    planted = np.clip(pooled[labelled.to_numpy(), -7:], 0, 1)
    table.loc[labelled, HUME_EMOTIONS] = np.random.default_rng(1).permutation(planted)
    other = Dataset(ds.root, table, ds.emotions, ds.fingerprint)  # same clips and subjects file, other labels
    monkeypatch.setattr(Dataset, "labels", lambda *a, **k: pytest.fail("normalisation read the labels"))
    pooled2, seqs2 = normalised(cfg, other, wd, root)
    np.testing.assert_array_equal(pooled, pooled2)
    for a, b in zip(seqs, seqs2):
        for x, z in zip(a, b):
            assert (x is None) == (z is None) and (x is None or np.array_equal(x.x, z.x))


def test_statistics_cover_every_split_of_the_subject(setup):
    """Over all of a subject's clips (Train, Val and Test together) each normalised vector column has
    mean 0 and std 1, and a sequence feature's real rows too: the statistics were computed on them all."""
    ds, cfg, wd, root = setup
    pooled, seqs = normalised(cfg, ds, wd, root)
    raw = feature_bank(cfg, ds, root).pooled(ds.ids)
    vec = seqs[-1]  # syn_vec: one vector per clip
    subjects = np.array([subject_of(i) for i in range(N)])
    splits = ds.table.loc[ds.ids, "Split"].to_numpy()
    for s in [f"S{k}" for k in range(6)]:
        rows = np.flatnonzero(subjects == s)
        assert {"Train", "Val", "Test"} <= set(splits[rows])
        x = np.stack([vec[i].x for i in rows])
        # people differ a lot here (planted offsets), so ~10 clips place each one: the shrunk mean is
        # almost the subject's own; the std is its own shrunk by 10/12 towards the pooled one
        np.testing.assert_allclose(x.mean(0), 0, atol=0.03)
        np.testing.assert_allclose(x.std(0), 1, atol=0.1)
        audio = np.concatenate([seqs[1][i].x for i in rows if seqs[1][i] is not None])
        np.testing.assert_allclose(audio.mean(0), 0, atol=0.05)  # rows: noisier subject means
        np.testing.assert_allclose(audio.std(0), 1, atol=0.1)
    # the per-subject offset planted in syn_vec dominates the raw features and is gone after normalisation
    owner = np.arange(N) % 6
    assert np.corrcoef(raw[:-1, -1], owner[:-1])[0, 1] > 0.9
    assert abs(np.corrcoef(pooled[:-1, -1], owner[:-1])[0, 1]) < 0.2


def test_a_single_clip_subject_is_standardised_by_shrunk_statistics(setup):
    """S9 has one clip: no variance of its own, so its spread is the pooled within-subject one (shrunk
    by 1/3 of nothing), finite and not blown up; its mean lies between its own value and the global mean."""
    ds, cfg, wd, root = setup
    _, seqs = normalised(cfg, ds, wd, root)
    raw = np.stack([o.x for o in feature_bank(cfg, ds, root).sequences(ds.ids)[-1]]).astype(np.float64)
    subjects = np.array([subject_of(i) for i in range(N)])
    within = np.mean([raw[subjects == s].var(0) for s in subjects[:-1]], axis=0)  # pooled over clips
    out = seqs[-1][-1].x
    sd = np.sqrt(2 / 3 * within)
    shift = raw[-1] - out * sd    # the shrunk mean
    lo, hi = np.minimum(raw[-1], raw.mean(0)), np.maximum(raw[-1], raw.mean(0))
    assert np.all(shift >= lo - 1e-3) and np.all(shift <= hi + 1e-3)
    assert np.isfinite(out).all() and np.abs(out).max() < 5


def test_a_fold_trains_on_normalised_features_and_needs_every_subject(setup):
    ds, cfg, wd, root = setup
    fold = make_folds(ds, 4, seed=0).set_index("File_ID")["fold"]
    fit = fit_fold(cfg, 0, ds, fold, root, extract_features=False, subjects=subjects_for(cfg, ds, wd))
    assert fit.val_pred.shape == (len(fit.val_ids), 7) and np.isfinite(fit.test_pred).all()
    with pytest.raises(ValueError, match="subject_norm"):
        fit_fold(cfg, 0, ds, fold, root, extract_features=False)
    table = pd.read_csv(wd.subjects)
    table.iloc[:-2].to_csv(wd.subjects, index=False)
    with pytest.raises(SubjectsError, match="misses 2 clip"):
        subjects_for(cfg, ds, wd)


def test_a_twin_without_subjects_is_skipped_with_its_reason(setup):
    """--groups none (or an unusable estimate) leaves no subjects file: a subject_norm experiment is
    skipped with the reason in its experiment.json, and the plain one still runs."""
    from competition.folds import write_folds
    from competition.pipeline.experiment import skipped_experiments
    from competition.pipeline.run_fold import run_fold
    ds, cfg, wd, root = setup
    wd.subjects.unlink()
    write_folds(ds, make_folds(ds, 2, seed=0), wd.folds, {"n_folds": 2})
    (wd.root / "features").symlink_to(root)
    assert run_fold(cfg, 0, ds, wd, no_wandb=True, progress=False) is None
    why = skipped_experiments(wd.oof, ds.fingerprint)["sn"]["reason"]
    assert "no subjects file" in why and "--groups none" in why
    plain = {**cfg, "name": "plain", "subject_norm": False}
    for k in range(2):
        metrics = run_fold(plain, k, ds, wd, no_wandb=True, progress=False)
    assert metrics is not None


def planted_library(subject_in_labels: bool, seed: int = 0):
    """Members that see the label plus a per-subject offset. When the offset is a nuisance (the labels do
    not carry it), centring within subject removes it; when the labels carry it too, centring throws
    away what the members got right."""
    rng = np.random.default_rng(seed)
    n, subjects = 400, np.repeat(np.arange(40), 10)
    offset = rng.normal(0, 0.3, (40, 4))[subjects]
    y = rng.random((n, 4)) * 0.4 + (offset if subject_in_labels else 0)
    preds = np.stack([y + offset * (0 if subject_in_labels else 1) + rng.normal(0, s, y.shape) for s in (0.15, 0.2)])
    lib = library(preds, y, ["a", "b"])
    lib.fold = subjects % 5   # subject-grouped folds
    lib.subjects = np.array([f"S{s}" for s in subjects])
    return lib


def test_subject_post_processing_ships_only_when_nested_cv_says_it_wins():
    helps = NestedCV(planted_library(subject_in_labels=False)).evaluate("mean")
    assert helps.post in ("subject_centre", "subject_z")
    assert helps.by_post[helps.post][1] > helps.by_post["none"][1] + 0.1
    hurts = NestedCV(planted_library(subject_in_labels=True)).evaluate("mean")
    assert hurts.post not in ("subject_centre", "subject_z")
    assert hurts.by_post["subject_centre"][1] < hurts.by_post["none"][1] - 0.1
    without = planted_library(subject_in_labels=False)
    without.subjects = None   # no subjects file: the per-subject kinds are not candidates at all
    assert set(NestedCV(without).evaluate("mean").by_post) == {"none", "clip", "max_norm"}


def test_subject_post_processing_shrinks_small_subjects_and_leaves_alike_people_alone():
    rng = np.random.default_rng(0)
    who = np.repeat(np.arange(30), 6)
    who[-1] = 99                                     # one person with a single clip
    offset = rng.normal(0, 0.3, (100, 2))[who]
    pred = offset + rng.normal(0, 0.05, (len(who), 2))
    out = postprocess(pred, "subject_centre", lo=-9, hi=9, subjects=who.astype(str))
    # people differ: each one's offset is removed (per-subject means now vary 20x less)
    by = pd.DataFrame(out).groupby(who[:-1].tolist() + [99]).mean()
    assert by.iloc[:-1].std().max() < pd.DataFrame(pred).groupby(who).mean().iloc[:-1].std().min() / 20
    # the single clip moves towards the overall mean but keeps a finite value (no hard minimum needed)
    assert np.all(np.abs(out[-1] - pred.mean(0)) <= np.abs(pred[-1] - pred.mean(0)) + 1e-9)
    # people alike (no offsets): centring barely moves anything
    alike = rng.normal(0.5, 0.05, pred.shape)
    moved = postprocess(alike, "subject_centre", lo=-9, hi=9, subjects=who.astype(str)) - alike
    assert np.abs(moved).max() < 0.05
    with pytest.raises(ValueError, match="needs the subject"):
        postprocess(pred, "subject_z")
