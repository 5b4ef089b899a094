import pandas as pd
import pytest

from competition.data.contract import (HUME_EMOTIONS, DataError, bracket_id, is_plain_token,
                                       load_dataset, media_path, normalise_id)
from tests.conftest import write_fake_dataset


@pytest.mark.parametrize("raw,bare", [("[00042]", "00042"), ("00042", "00042"), (" [00042] ", "00042"),
                                      ("[ 7 ]", "7"), (42, "42")])
def test_id_round_trip(raw, bare):
    assert normalise_id(raw) == bare
    assert bracket_id(raw) == f"[{bare}]"
    assert normalise_id(bracket_id(raw)) == bare


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "a b", "", "x.mp4", "[1]]"])
def test_path_like_ids_are_not_plain(bad):
    assert not is_plain_token(normalise_id(bad))


def test_media_path_layout(tmp_path):
    assert media_path(tmp_path, "Train", "[00042]", "mp4") == tmp_path / "train/mp4/00042.mp4"
    assert media_path(tmp_path, "Test", "7", "wav") == tmp_path / "test/wav/7.wav"


def test_loads_valid_dataset(fake_dataset):
    ds = load_dataset(fake_dataset)
    assert ds.emotions == list(HUME_EMOTIONS)
    assert len(ds.labelled_ids) == 52 and len(ds.test_ids) == 10
    assert ds.labels().shape == (52, 7)
    assert ds.ids[0] == "00000"
    assert ds.media("00000", "wav").exists()


def test_other_emotion_columns_work(tmp_path):
    root = write_fake_dataset(tmp_path / "d", emotions=("Joy", "Awe", "Boredom"))
    ds = load_dataset(root)
    assert ds.emotions == ["Joy", "Awe", "Boredom"]
    assert ds.labels().shape[1] == 3


def test_fingerprint_changes_with_labels(tmp_path):
    a = load_dataset(write_fake_dataset(tmp_path / "a", seed=0))
    b = load_dataset(write_fake_dataset(tmp_path / "b", seed=1))
    c = load_dataset(write_fake_dataset(tmp_path / "c", seed=0))
    assert a.fingerprint != b.fingerprint and a.fingerprint == c.fingerprint


def _edit(root, fn):
    df = pd.read_csv(root / "data_info.csv", dtype=str, keep_default_na=False)
    df = fn(df)
    df.to_csv(root / "data_info.csv", index=False)
    return root


def _problems(root, **kw):
    with pytest.raises(DataError) as err:
        load_dataset(root, **kw)
    return str(err.value)


def test_reports_every_problem_at_once_with_file_and_row(fake_dataset):
    def breakit(df):
        df.loc[1, "Fear"] = "1.7"            # out of range, line 3
        df.loc[2, "Disgust"] = ""            # NaN in Train, line 4
        df.loc[3, "File_ID"] = "[00000]"     # duplicate of line 2
        df.loc[55, "Surprise"] = "0.3"       # label in Test, line 57
        df.loc[4, "File_ID"] = "[../x]"      # path-like id, line 6
        df.loc[5, "Anxiety"] = "high"        # not a number, line 7
        return df
    msg = _problems(_edit(fake_dataset, breakit), check_media=False)
    path = str(fake_dataset / "data_info.csv")
    assert f"{path}:3: Fear value 1.7 is outside [0, 1]" in msg
    assert f"{path}:4: Disgust is empty in a Train row" in msg
    assert "duplicate File_ID '00000' on lines 2, 5" in msg
    assert f"{path}:57: Test row has labels in ['Surprise']" in msg
    assert f"{path}:6: File_ID '[../x]' is not a plain token" in msg
    assert f"{path}:7: Anxiety value 'high' is not a number" in msg
    assert msg.startswith("6 problem(s)")


def test_missing_and_extra_columns(fake_dataset):
    _edit(fake_dataset, lambda df: df.drop(columns=["Fear"]).assign(Mood="x"))
    msg = _problems(fake_dataset, emotions=list(HUME_EMOTIONS))
    assert "missing emotion column(s) ['Fear']" in msg and "unexpected column(s) ['Mood']" in msg


def test_missing_split_column(fake_dataset):
    msg = _problems(_edit(fake_dataset, lambda df: df.drop(columns=["Split"])))
    assert "missing column 'Split'" in msg


def test_bad_split_value(fake_dataset):
    msg = _problems(_edit(fake_dataset, lambda df: df.assign(Split=df.Split.replace("Val", "Valid"))))
    assert "Split 'Valid' is not one of" in msg


def test_missing_media_named(fake_dataset):
    (fake_dataset / "val" / "wav" / "00045.wav").unlink()
    msg = _problems(fake_dataset)
    assert "Val clip '00045' is listed but" in msg and "00045.wav is missing" in msg


def test_missing_file(tmp_path):
    assert "file not found" in _problems(tmp_path)


def test_bom_crlf_and_spaces_are_tolerated(fake_dataset):
    p = fake_dataset / "data_info.csv"
    text = p.read_text().replace(",", " , ").replace("\n", "\r\n")
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    ds = load_dataset(fake_dataset)
    assert ds.emotions == list(HUME_EMOTIONS) and len(ds.ids) == 62


def test_constant_emotion_column_warns(fake_dataset):
    def const(df):
        df.loc[df.Split != "Test", "Fear"] = "0.2"
        return df
    ds = load_dataset(_edit(fake_dataset, const))
    assert any("Fear has the same value" in w for w in ds.warnings)
