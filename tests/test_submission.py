import numpy as np
import pandas as pd
import pytest

from competition.data.contract import load_dataset
from competition.submission import check_submission, main, write_submission


@pytest.fixture
def ds(fake_dataset):
    return load_dataset(fake_dataset)


@pytest.fixture
def good(ds, tmp_path):
    pred = np.random.default_rng(0).random((len(ds.test_ids), len(ds.emotions)))
    return write_submission(tmp_path / "sub.csv", ds.test_ids[::-1], pred, ds.emotions)


def test_written_file_is_official(ds, good):
    assert check_submission(good, ds) == []
    df = pd.read_csv(good, dtype=str)
    assert list(df.columns) == ["File_ID", *ds.emotions]
    assert list(df.File_ID) == sorted(f"[{i}]" for i in ds.test_ids)
    assert good.with_suffix(".zip").exists()
    assert main(["check", str(good), "--data", str(ds.root)]) == 0


def _broken(good, fn, tmp_path):
    df = pd.read_csv(good, dtype=str)
    df = fn(df)
    p = tmp_path / "broken.csv"
    df.to_csv(p, index=False)
    return p


@pytest.mark.parametrize("fn,expect", [
    (lambda d: d.iloc[1:], "Test clip(s) missing"),
    (lambda d: pd.concat([d, d.iloc[:1]]), "duplicate id(s)"),
    (lambda d: pd.concat([d, d.iloc[:1].assign(File_ID="[99999]")]), "not in the Test split"),
    (lambda d: d.assign(File_ID=d.File_ID.str.strip("[]")), "not bracketed"),
    (lambda d: d.rename(columns={"Fear": "fear"}), "header"),
    (lambda d: d[["File_ID", *d.columns[2:], d.columns[1]]], "header"),
    (lambda d: d.assign(Fear=np.where(np.arange(len(d)) == 2, "", d.Fear)), "empty/NaN"),
    (lambda d: d.assign(Surprise=np.where(np.arange(len(d)) == 0, "1.5", d.Surprise)), "outside [0, 1]"),
    (lambda d: d.iloc[::-1], "not sorted"),
])
def test_checker_names_each_problem(ds, good, tmp_path, fn, expect):
    p = _broken(good, fn, tmp_path)
    problems = check_submission(p, ds)
    assert any(expect in x and str(p) in x for x in problems), problems
    assert main(["check", str(p), "--data", str(ds.root)]) == 1


def test_refuses_nan_predictions(ds, tmp_path):
    pred = np.full((len(ds.test_ids), len(ds.emotions)), np.nan)
    with pytest.raises(ValueError, match="NaN"):
        write_submission(tmp_path / "x.csv", ds.test_ids, pred, ds.emotions)
