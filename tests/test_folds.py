import hashlib
from pathlib import Path

import pandas as pd
import pytest

from competition.data.contract import load_dataset
from competition.folds import (ALWAYS_TRAIN, TEST_FOLD, FoldsError, fold_ids, inner_split, main, make_folds,
                               read_folds)
from competition.core.io import read_json
from competition.core.paths import Workdir
from competition.data.subjects import SubjectsError, write_subjects
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
    main(["--data", str(d1), "--workdir", str(wd)])
    df = pd.read_csv(Workdir.of(wd).folds, dtype=str)
    assert list(df.columns) == ["File_ID", "fold"] and df.File_ID.str.match(r"^\[\d+\]$").all()
    with pytest.raises(FoldsError, match="was made for dataset"):
        read_folds(Workdir.of(wd).folds, load_dataset(d2))
    with pytest.raises(FoldsError, match="was made for dataset"):
        main.__wrapped__(["--data", str(d2), "--workdir", str(wd)])  # without the one-line error printer
    main(["--data", str(d2), "--workdir", str(wd), "--force"])
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
    main(["--data", str(ds.root), "--workdir", str(wd)])
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
    from types import SimpleNamespace

    from competition.folds import load_groups
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
