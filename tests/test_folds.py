import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from competition.data.contract import load_dataset
from competition.folds import (ALWAYS_TRAIN, TEST_FOLD, FoldsError, balanced_folds, fold_ids, grouping,
                               inner_split, load_groups, main, make_folds, read_folds)
from competition.core.io import read_json
from competition.core.paths import Workdir
from competition.data.subjects import SubjectsError, read_subjects, write_subjects
from tests.conftest import write_fake_dataset


@pytest.fixture
def ds(tmp_path):
    return load_dataset(write_fake_dataset(tmp_path / "d", n_train=150, n_val=50, n_test=20))


def test_deterministic_and_seed_dependent(ds):
    a, b = make_folds(ds, seed=1), make_folds(ds, seed=1)
    c = make_folds(ds, seed=2)
    assert a.equals(b) and not a.equals(c)


def test_covers_labelled_once_test_never(ds):
    f = make_folds(ds, n_folds=5).set_index("File_ID").fold
    assert set(f[f >= 0].index) == set(ds.labelled_ids)
    assert (f[ds.test_ids] == TEST_FOLD).all()
    assert not f.index.duplicated().any()
    for k in range(5):
        train, val = fold_ids(f, k)
        assert not set(train) & set(val)
        assert not set(train) & set(ds.test_ids) and not set(val) & set(ds.test_ids)
        assert set(train) | set(val) == set(ds.labelled_ids)


def test_balanced_sizes_and_strata(ds):
    f = make_folds(ds, n_folds=5).set_index("File_ID").fold
    sizes = f[f >= 0].value_counts()
    assert sizes.max() - sizes.min() <= 2
    # stratified: each dominant emotion and each country is spread evenly over the folds
    lab = f[ds.labelled_ids]
    dominant = pd.Series(ds.labels().argmax(1), index=ds.labelled_ids)
    for key in (dominant, ds.table.loc[ds.labelled_ids, "Country"]):
        counts = pd.crosstab(key, lab)
        assert (counts.max(axis=1) - counts.min(axis=1)).max() <= 3, counts


def test_groups_kept_together(ds):
    groups = pd.Series([f"s{i // 6}" for i in range(len(ds.ids))], index=ds.ids)
    f = make_folds(ds, n_folds=5, groups=groups).set_index("File_ID").fold
    lab = f[ds.labelled_ids]
    assert (lab.groupby(groups[ds.labelled_ids]).nunique() == 1).all()


def test_inner_split_of_a_training_fold_is_a_grouped_quarter_of_it(ds):
    groups = pd.Series([f"s{i // 6}" for i in range(len(ds.ids))], index=ds.ids)
    train, held = fold_ids(make_folds(ds, n_folds=5, groups=groups).set_index("File_ID").fold, 0)
    splits = {name: inner_split(ds, train, g, seed=3) for name, g in (("grouped", groups), ("plain", None))}
    for fit, select in splits.values():
        assert sorted(fit + select) == sorted(train) and not set(held) & set(fit + select)
        assert 0.2 < len(select) / len(train) < 0.3
    fit, select = splits["grouped"]
    assert not set(groups[fit]) & set(groups[select])  # no subject on both sides
    assert set(groups[splits["plain"][0]]) & set(groups[splits["plain"][1]])
    assert inner_split(ds, train, groups, seed=3) == (fit, select) != inner_split(ds, train, groups, seed=4)


def test_official_scheme(ds):
    f = make_folds(ds, scheme="official").set_index("File_ID").fold
    assert (f[ds.ids_in("Val")] == 0).all() and (f[ds.ids_in("Train")] == ALWAYS_TRAIN).all()
    train, val = fold_ids(f, 0)
    assert set(train) == set(ds.ids_in("Train")) and set(val) == set(ds.ids_in("Val"))


def test_cli_writes_bracketed_file_and_refuses_other_dataset(tmp_path):
    d1 = write_fake_dataset(tmp_path / "d1", seed=0)
    d2 = write_fake_dataset(tmp_path / "d2", seed=1)
    wd = tmp_path / "work"
    main(["--data", str(d1), "--workdir", str(wd), "--groups", "none"])
    df = pd.read_csv(Workdir.of(wd).folds, dtype=str)
    assert list(df.columns) == ["File_ID", "fold"] and df.File_ID.str.match(r"^\[\d+\]$").all()
    with pytest.raises(FoldsError, match="was made for dataset"):
        read_folds(Workdir.of(wd).folds, load_dataset(d2))
    with pytest.raises(FoldsError, match="was made for dataset"):
        main.__wrapped__(["--data", str(d2), "--workdir", str(wd)])  # without the one-line error printer
    main(["--data", str(d2), "--workdir", str(wd), "--force", "--groups", "none"])
    assert len(read_folds(Workdir.of(wd).folds, load_dataset(d2))) == 62


def test_groups_subjects_needs_the_file(ds, tmp_path):
    with pytest.raises(SubjectsError, match="subjects.csv: subjects file not found"):
        main.__wrapped__(["--data", str(ds.root), "--workdir", str(tmp_path / "w"), "--groups", "subjects"])


def _write_subjects(ds, wd: Path, n_per: int = 6) -> pd.Series:
    subject = pd.Series([f"s{i // n_per}" for i in range(len(ds.ids))], index=ds.ids)
    write_subjects(Workdir.of(wd).subjects, pd.DataFrame({"File_ID": ds.ids, "subject": subject}),
                   "file:test", ds)
    return subject


def test_cli_groups_by_the_subjects_file_and_records_it(ds, tmp_path, capsys):
    wd = tmp_path / "w"
    subject = _write_subjects(ds, wd)
    main(["--data", str(ds.root), "--workdir", str(wd)])
    assert "groups: subjects from" in capsys.readouterr().err
    fold = read_folds(Workdir.of(wd).folds, ds)
    lab = fold[fold >= 0]
    assert (lab.groupby(subject[lab.index]).nunique() == 1).all()  # no subject on both sides of a split
    assert lab.nunique() == 5
    rec = read_json(Workdir.of(wd).folds.with_suffix(".json"))["groups"]
    assert rec["source"] == "subjects" and rec["subject_source"] == "file:test"
    assert rec["n_groups"] == subject.nunique()
    assert rec["sha256"] == hashlib.sha256(Workdir.of(wd).subjects.read_bytes()).hexdigest()
    # same seed, same folds; the ungrouped folds of the same data do split subjects
    main(["--data", str(ds.root), "--workdir", str(wd), "--force"])
    assert read_folds(Workdir.of(wd).folds, ds).equals(fold)
    main(["--data", str(ds.root), "--workdir", str(wd), "--groups", "none", "--force"])
    plain = read_folds(Workdir.of(wd).folds, ds)
    assert (plain[plain >= 0].groupby(subject[lab.index]).nunique() > 1).any()
    assert read_json(Workdir.of(wd).folds.with_suffix(".json"))["groups"] == {"source": "none"}


def test_existing_folds_made_without_the_subjects_are_not_reused(ds, tmp_path):
    wd = tmp_path / "w"
    main(["--data", str(ds.root), "--workdir", str(wd), "--groups", "none"])
    _write_subjects(ds, wd)
    with pytest.raises(FoldsError, match="was made with groups none .* now are subjects"):
        main.__wrapped__(["--data", str(ds.root), "--workdir", str(wd)])
    _write_subjects(ds, wd, n_per=5)  # other subjects: other file hash
    main(["--data", str(ds.root), "--workdir", str(wd), "--force"])
    _write_subjects(ds, wd, n_per=4)
    with pytest.raises(FoldsError, match="was made with groups subjects"):
        main.__wrapped__(["--data", str(ds.root), "--workdir", str(wd)])


def test_frame_task_units_stay_with_their_video_and_their_subject(ds, tmp_path):
    """Frame tasks group units by source video; subjects join those groups (a person's videos, and both
    people of one video, end in one fold)."""
    ds.table["video"] = [f"v{i // 2}" for i in range(len(ds.ids))]  # units of one video: pairs
    subject = pd.Series([f"s{i // 6}" for i in range(len(ds.ids))], index=ds.ids)
    subject.iat[6] = "s0"  # video v3 shows s0 and s1: they must share a fold
    path = tmp_path / "subjects.csv"
    write_subjects(path, pd.DataFrame({"File_ID": ds.ids, "subject": subject}), "file:test", ds)
    task = SimpleNamespace(group_col="video")
    plain, rec = load_groups(ds, task, tmp_path / "absent.csv")
    assert rec == {"source": "column:video", "n_groups": ds.table.video.nunique()}
    groups, rec = load_groups(ds, task, path)
    assert rec["source"] == "subjects" and rec["also_grouped_by"] == "column:video"
    f = make_folds(ds, n_folds=5, groups=groups).set_index("File_ID").fold
    lab = f[ds.labelled_ids]
    for key in (subject, ds.table.video):
        assert (lab.groupby(key[lab.index]).nunique() == 1).all()
    assert groups.nunique() == subject.nunique() - 1
    with pytest.raises(FoldsError, match="5 groups cannot make 7 folds"):
        make_folds(ds.__class__(ds.root, ds.table.iloc[:36], ds.emotions, ds.fingerprint), 7,
                   groups=groups.iloc[:36])


# ---------------------------------------------------------------- subjects by default, and the fallbacks

def _with_subject_column(ds, names):
    info = pd.read_csv(ds.root / "data_info.csv", dtype=str, keep_default_na=False)
    info["Subject"] = names
    info.to_csv(ds.root / "data_info.csv", index=False)
    return load_dataset(ds.root)


def _plant_identities(ds, features: Path, person: np.ndarray, noise: float = 0.05) -> None:
    """Store an identity embedding per clip for every default modality of the estimator (what its
    extractors would cache): one random point per person plus a little noise per clip."""
    from competition.features.registry import FeatureOutput
    from competition.features.store import FeatureStore, media_signatures
    from competition.features.subjects import MODALITIES
    rng = np.random.default_rng(0)
    media = media_signatures(ds, ds.ids)  # stored from these clips' media, as an extractor would
    for name in MODALITIES:
        centre = rng.normal(0, 1, (person.max() + 1, 16))
        store = FeatureStore.for_spec(features, name)
        for cid, p in zip(ds.ids, person):
            store.save(cid, FeatureOutput(centre[p] + noise * rng.standard_normal(16)), media[cid])


def test_a_subject_column_is_used_without_a_command_and_na_is_a_name(ds, tmp_path):
    names = [["NA", "None", "null", "0", "nan"][i % 5] + ("" if i < 110 else "x") for i in range(len(ds.ids))]
    ds = _with_subject_column(ds, names)
    wd = Workdir.of(tmp_path / "w")
    main(["--data", str(ds.root), "--workdir", str(wd.root)])
    subjects = read_subjects(wd.subjects, ds)
    assert set(subjects.table["source"]) == {"column:Subject"}
    assert subjects.groups.tolist() == names and subjects.groups.nunique() == 10   # never read as missing
    rec = read_json(wd.folds.with_suffix(".json"))["groups"]
    assert rec["source"] == "subjects" and rec["subject_source"] == "column:Subject" and rec["n_groups"] == 10
    fold = read_folds(wd.folds, ds)
    lab = fold[fold >= 0]
    assert (lab.groupby(subjects.groups[lab.index]).nunique() == 1).all()
    assert grouping(wd.folds)["kind"] == "given"


@pytest.fixture
def small(tmp_path):
    return load_dataset(write_fake_dataset(tmp_path / "small", n_train=48, n_val=12, n_test=12))


def test_without_ids_subjects_are_estimated_first_and_group_the_folds(small, tmp_path, capsys):
    """Default-on: no subjects file and no Subject column -> people estimated from the identity
    embeddings (cached in the feature store, Test clips included), said in one line, folds grouped."""
    ds, wd = small, Workdir.of(tmp_path / "w")
    person = np.arange(len(ds.ids)) % 12
    _plant_identities(ds, wd.features, person)
    main(["--data", str(ds.root), "--workdir", str(wd.root), "--jobs", "1"])
    said = [line for line in capsys.readouterr().err.splitlines() if "people estimated" in line]
    assert len(said) == 1 and f"over {len(ds.ids)} clips in" in said[0], said
    subjects = read_subjects(wd.subjects, ds)
    assert subjects.table["source"].iloc[0].startswith("estimated:")
    assert pd.crosstab(subjects.groups, person).gt(0).sum(axis=1).eq(1).all()   # no cluster mixes people
    assert subjects.groups.nunique() == 12
    fold = read_folds(wd.folds, ds)
    lab = fold[fold >= 0]
    assert (lab.groupby(pd.Series(person, index=ds.ids)[lab.index]).nunique() == 1).all()
    assert grouping(wd.folds)["kind"] == "estimated" and grouping(wd.folds)["n_folds"] == 5
    # --groups none opts out: nothing estimated, nothing grouped
    other = Workdir.of(tmp_path / "none")
    main(["--data", str(ds.root), "--workdir", str(other.root), "--groups", "none"])
    assert not other.subjects.exists() and grouping(other.folds)["kind"] == "none"


def test_a_degenerate_estimate_falls_back_to_ungrouped_folds_with_a_warning(small, tmp_path, capsys):
    """Everyone looks alike but a few: one cluster of nearly every clip. The run goes on, ungrouped,
    with a WARNING, and folds.json says what happened."""
    ds, wd = small, Workdir.of(tmp_path / "w")
    person = np.where(np.arange(len(ds.ids)) % 12 == 0, np.arange(len(ds.ids)) // 12 + 1, 0)
    _plant_identities(ds, wd.features, person, noise=0.01)
    main(["--data", str(ds.root), "--workdir", str(wd.root), "--jobs", "1"])
    warned = " ".join(line for line in capsys.readouterr().err.splitlines() if line.startswith("WARNING"))
    assert "NOT" in warned and "grouped" in warned
    assert grouping(wd.folds)["kind"] == "none"
    assert read_folds(wd.folds, ds).max() == 4    # still 5 folds, over all labelled clips
    assert not wd.subjects.exists()                # nor used by anything else (twins, post-processing)
    main(["--data", str(ds.root), "--workdir", str(wd.root)])   # and the folds are reused as they are


@pytest.mark.parametrize("n_groups,expect_folds,grouped", [(2, 5, False), (4, 4, True), (6, 4, True)])
def test_too_few_groups_make_fewer_folds_or_none_and_say_so(ds, tmp_path, capsys, n_groups, expect_folds, grouped):
    wd = tmp_path / "w"
    subject = pd.Series([f"s{i % n_groups}" for i in range(len(ds.ids))], index=ds.ids)
    write_subjects(Workdir.of(wd).subjects, pd.DataFrame({"File_ID": ds.ids, "subject": subject}), "file:t", ds)
    main(["--data", str(ds.root), "--workdir", str(wd)])
    fold = read_folds(Workdir.of(wd).folds, ds)
    g = grouping(Workdir.of(wd).folds)
    assert fold.max() + 1 == expect_folds == g["n_folds"]
    assert (g["kind"] == "given") == grouped and "5 folds" in g["fallback"] or "subjects not used" in g["fallback"]
    assert "WARNING" in capsys.readouterr().err
    lab = fold[fold >= 0]
    assert (lab.groupby(subject[lab.index]).nunique() == 1).all() == grouped
    main(["--data", str(ds.root), "--workdir", str(wd)])   # the fallback is reused, not refused


def test_one_person_holding_most_clips_is_not_a_balanced_grouping(ds, tmp_path):
    subject = pd.Series(["big" if i % 10 else f"s{i}" for i in range(len(ds.ids))], index=ds.ids)
    path = tmp_path / "subjects.csv"
    write_subjects(path, pd.DataFrame({"File_ID": ds.ids, "subject": subject}), "file:t", ds)
    groups, record = load_groups(ds, SimpleNamespace(group_col=None), path)
    folds, record = balanced_folds(ds, 5, 42, groups, record)
    assert record["source"] == "none" and "fold sizes" in record["fallback"]
    assert folds.fold.max() == 4
