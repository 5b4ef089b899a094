"""The subjects file: written from a data_info column or a CSV, read back validated against the dataset;
a file that misses clips, names unknown clips or belongs to another dataset is an error naming it."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from competition.data.contract import load_dataset
from competition.data.subjects import (SubjectsError, from_column, from_csv, main, read_subjects,
                                       write_subjects)
from competition.core.io import read_json
from competition.core.paths import Workdir
from tests.conftest import write_fake_dataset


@pytest.fixture
def ds(tmp_path):
    root = write_fake_dataset(tmp_path / "d", n_train=20, n_val=6, n_test=6)
    info = pd.read_csv(root / "data_info.csv", dtype=str, keep_default_na=False)
    info["Subject"] = [f"p{i // 4}" for i in range(len(info))]
    info.to_csv(root / "data_info.csv", index=False)
    return load_dataset(root)


def frame(ds, n_per: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"File_ID": [f"[{i}]" for i in ds.ids],
                         "subject": [f"s{k // n_per}" for k in range(len(ds.ids))]})


def test_round_trip_and_record(ds, tmp_path):
    path = tmp_path / "subjects.csv"
    f = frame(ds).assign(confidence=0.5, source="estimated:test")
    f.loc[0, "source"] = "file:given.csv"
    written = write_subjects(path, f.iloc[::-1], "ignored:x", ds)  # any order in, dataset order out
    back = read_subjects(path, ds)
    assert list(back.table.index) == ds.ids and back.groups.equals(written.groups)
    assert pd.read_csv(path).columns.tolist() == ["File_ID", "subject", "source", "confidence"]
    rec = back.record()
    assert rec["n_groups"] == 8 and rec["mean_confidence"] == 0.5
    assert rec["source"] == {"estimated:test": len(ds.ids) - 1, "file:given.csv": 1}
    meta = read_json(path.with_suffix(".json"))
    assert meta["dataset"] == ds.fingerprint and meta["sha256"] == rec["sha256"]


def test_a_data_info_column_is_not_an_emotion(ds):
    assert "Subject" not in ds.emotions
    assert from_column(ds, "Subject").subject.tolist() == [f"p{i // 4}" for i in range(len(ds.ids))]
    with pytest.raises(SubjectsError, match=r"data_info.csv: no column 'Speaker' to take subjects from"):
        from_column(ds, "Speaker")


@pytest.mark.parametrize("edit,expect", [
    (lambda f: f.iloc[:-3], r"misses 3 clip\(s\) of the dataset .*'00029', '00030', '00031'"),
    (lambda f: pd.concat([f, pd.DataFrame({"File_ID": ["[x9]"], "subject": ["s0"]})]),
     r"names 1 clip\(s\) not in the dataset .*'x9'"),
    (lambda f: pd.concat([f, f.iloc[:1]]), r"1 File_ID\(s\) listed more than once: '00000'"),
    (lambda f: f.assign(subject=[""] + list(f.subject[1:])), r"empty subject for 1 clip\(s\): '00000'"),
    (lambda f: f.assign(confidence=1.5), r"confidence not a number in \[0, 1\] for 32 clip"),
    (lambda f: f.assign(source="guess"), r"source is not column:<name>, file:<path> or estimated:<method>"),
])
def test_bad_subjects_are_refused_when_written_and_when_read(ds, tmp_path, edit, expect):
    path = tmp_path / "subjects.csv"
    with pytest.raises(SubjectsError, match=expect):
        write_subjects(path, edit(frame(ds)), "file:x", ds)
    assert not path.exists()
    # the same problem in a file edited by hand after it was written
    write_subjects(path, frame(ds), "file:x", ds)
    edit(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)
    with pytest.raises(SubjectsError, match=re.escape(f"{path}: ") + expect):
        read_subjects(path, ds)


def test_other_dataset_or_no_record_is_refused(ds, tmp_path):
    path = tmp_path / "subjects.csv"
    write_subjects(path, frame(ds), "file:x", ds)
    other = load_dataset(write_fake_dataset(tmp_path / "other", n_train=20, n_val=6, n_test=6, seed=9))
    assert other.ids == ds.ids  # same clips, other labels: only the fingerprint tells them apart
    with pytest.raises(SubjectsError, match=rf"{path}: made for dataset {ds.fingerprint} .*not for .*other"):
        read_subjects(path, other)
    path.with_suffix(".json").unlink()
    with pytest.raises(SubjectsError, match=rf"{path}: no subjects.json beside it"):
        read_subjects(path, ds)
    with pytest.raises(SubjectsError, match=r"absent.csv: subjects file not found"):
        read_subjects(tmp_path / "absent.csv", ds)


def test_cli_from_column_and_from_csv(ds, tmp_path):
    wd = tmp_path / "w"
    main(["--data", str(ds.root), "--workdir", str(wd), "--column", "Subject"])
    s = read_subjects(Workdir.of(wd).subjects, ds)
    assert s.record()["source"] == "column:Subject" and s.groups.nunique() == 8
    csv = tmp_path / "who.csv"
    frame(ds, 2).rename(columns={"subject": "Person"}).to_csv(csv, index=False)
    main(["--data", str(ds.root), "--workdir", str(wd), "--csv", str(csv), "--csv-column", "Person"])
    s = read_subjects(Workdir.of(wd).subjects, ds)
    assert s.record()["source"] == f"file:{csv.resolve()}" and s.groups.nunique() == 16
    with pytest.raises(SubjectsError, match=rf"{csv}: needs columns 'File_ID' and 'subject'"):
        from_csv(csv)
