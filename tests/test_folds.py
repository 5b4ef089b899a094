import pandas as pd
import pytest

from competition.data.contract import load_dataset
from competition.folds import (ALWAYS_TRAIN, TEST_FOLD, FoldsError, fold_ids, main, make_folds,
                               read_folds)
from competition.core.paths import Workdir
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
        main(["--data", str(d2), "--workdir", str(wd)])
    main(["--data", str(d2), "--workdir", str(wd), "--force"])
    assert len(read_folds(Workdir.of(wd).folds, load_dataset(d2))) == 62


def test_group_col_must_exist(ds, tmp_path):
    with pytest.raises(FoldsError, match="no column 'Subject'"):
        main(["--data", str(ds.root), "--workdir", str(tmp_path / "w"), "--group-col", "Subject"])
