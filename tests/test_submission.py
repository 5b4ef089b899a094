import zipfile

import numpy as np
import pandas as pd
import pytest

from competition.data.contract import load_dataset
from competition.data.submission_format import check_submission, write_submission
from competition.submission import main


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


def test_zip_is_checked_through_the_csv_it_holds(ds, good, tmp_path):
    z = good.with_suffix(".zip")
    assert check_submission(z, ds) == []
    assert main(["check", str(z), "--data", str(ds.root)]) == 0
    bad = _broken(good, lambda d: d.iloc[1:], tmp_path)
    bz = tmp_path / "bad.zip"
    with zipfile.ZipFile(bz, "w") as zf:
        zf.write(bad, arcname="bad.csv")
    assert any("Test clip(s) missing" in p and str(bz) in p for p in check_submission(bz, ds))
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.write(good, arcname="a.csv")
        zf.write(good, arcname="b.csv")
    assert any("exactly one .csv" in p for p in check_submission(two, ds))
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip")
    assert any("not a readable zip" in p for p in check_submission(fake, ds))


@pytest.mark.parametrize("text,expect", [("", "not a readable CSV"), (None, "file not found"),
                                         ("File_ID,Adoration\n[00052],0.5\n", "header")])
def test_unreadable_or_missing_files(ds, tmp_path, text, expect):
    p = tmp_path / "s.csv"
    if text is not None:
        p.write_text(text)
    assert any(expect in x for x in check_submission(p, ds))
    assert main(["check", str(p), "--data", str(ds.root)]) == 1
