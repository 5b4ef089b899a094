"""The bad-input matrix in one place: every broken input the data contract, the feature store, folds,
experiments, the blend library, submissions and configs can meet. Each case either fails with a message
that names the file (and the row or clip), or takes a documented fallback; nothing computed is lost."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from competition.pipeline.config import ConfigError, load_config
from competition.data.contract import DataError, load_dataset
from competition.pipeline.experiment import Experiment, ExperimentError
from competition.features.registry import register_extractor
from competition.features.store import FeatureStore, extract
from competition.data.subjects import SubjectsError, from_csv, write_subjects
from competition.folds import FoldsError, make_folds, read_folds, write_folds
from competition.pipeline.ensembling.library import load_library
from competition.core.metrics import ConstantPredictionWarning, mean_pcc
from competition.core.paths import Workdir
from competition.data.submission_format import check_submission, write_submission
from competition.pipeline.run_fold import run_fold
from tests.tiny_data import write_audio_dataset, write_config


@register_extractor("nan_probe", kind="vector")
def nan_probe(clip) -> np.ndarray:
    """Returns NaN for clip 00001 (an extractor bug), a number otherwise."""
    return np.array([np.nan if clip.clip_id == "00001" else 1.0], np.float32)


@pytest.fixture
def data(tmp_path):
    return write_audio_dataset(tmp_path / "data", n_train=14, n_val=6, n_test=4)


def edit_info(root, fn):
    p = root / "data_info.csv"
    fn(pd.read_csv(p, dtype=str, keep_default_na=False)).to_csv(p, index=False)


def data_error(root, **kw) -> str:
    with pytest.raises(DataError) as err:
        load_dataset(root, **kw)
    return str(err.value)


# ---------------------------------------------------------------- data_info.csv

def test_missing_data_info_names_the_path(tmp_path):
    assert f"{tmp_path / 'data_info.csv'}: file not found" in data_error(tmp_path)


def test_unreadable_csv(data):
    (data / "data_info.csv").write_bytes(b"\xff\xfe\x00\x01garbage\x00")
    assert f"{data / 'data_info.csv'}: not a readable CSV" in data_error(data)


def test_bom_crlf_and_extra_spaces_are_read_as_the_clean_file(data):
    clean = load_dataset(data)
    p = data / "data_info.csv"
    text = p.read_text().replace(",", " ,  ").replace("\n", "\r\n")
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    messy = load_dataset(data)
    assert messy.fingerprint == clean.fingerprint and messy.emotions == clean.emotions


@pytest.mark.parametrize("raw", ["[../00003]", "[a/b]", "[..]", "[x y]", "[C:\\x]", "[~/clip]"])
def test_path_like_ids_are_refused_with_their_line(data, raw):
    edit_info(data, lambda df: df.assign(File_ID=df.File_ID.where(df.index != 3, raw)))
    msg = data_error(data, check_media=False)
    assert f"{data / 'data_info.csv'}:5: File_ID {raw!r} is not a plain token" in msg


@pytest.mark.parametrize("col", ["File_ID", "Split"])
def test_missing_id_or_split_column(data, col):
    edit_info(data, lambda df: df.drop(columns=[col]))
    assert f"{data / 'data_info.csv'}: missing column {col!r}" in data_error(data)


def test_duplicate_ids_name_both_lines(data):
    edit_info(data, lambda df: df.assign(File_ID=df.File_ID.where(df.index != 4, "[00000]")))
    assert "duplicate File_ID '00000' on lines 2, 6" in data_error(data, check_media=False)


@pytest.mark.parametrize("value,expect", [("1.5", "Fear value 1.5 is outside [0, 1]"),
                                          ("-0.1", "Fear value -0.1 is outside [0, 1]"),
                                          ("high", "Fear value 'high' is not a number"),
                                          ("", "Fear is empty in a Train row")])
def test_bad_label_values_name_line_and_column(data, value, expect):
    def put(df):
        df.loc[2, "Fear"] = value
        return df
    edit_info(data, put)
    assert f"{data / 'data_info.csv'}:4: {expect}" in data_error(data)


def test_label_in_a_test_row(data):
    def put(df):
        df.loc[df.Split == "Test", "Surprise"] = "0.5"
        return df
    edit_info(data, put)
    assert "Test row has labels in ['Surprise']" in data_error(data)


def test_bad_split_value(data):
    edit_info(data, lambda df: df.assign(Split=df.Split.replace("Val", "validation")))
    assert "Split 'validation' is not one of ['Train', 'Val', 'Test']" in data_error(data)


def test_missing_media_names_the_file(data):
    wav = data / "train" / "wav" / "00002.wav"
    wav.unlink()
    assert f"Train clip '00002' is listed but {wav} is missing" in data_error(data)


def test_expected_emotions_missing_or_extra(data):
    edit_info(data, lambda df: df.rename(columns={"Fear": "Dread"}))
    from competition.data.contract import HUME_EMOTIONS
    msg = data_error(data, emotions=list(HUME_EMOTIONS))
    assert "missing emotion column(s) ['Fear']" in msg and "unexpected column(s) ['Dread']" in msg


def test_emotion_column_all_one_value_warns_and_scores_zero(data):
    """Documented fallback: the dataset loads with a warning; that emotion's PCC is 0."""
    def const(df):
        df.loc[df.Split != "Test", "Fear"] = "0.3000"
        return df
    edit_info(data, const)
    ds = load_dataset(data)
    assert any(f"{data / 'data_info.csv'}: Fear has the same value" in w for w in ds.warnings)
    y = ds.labels()
    with pytest.warns(ConstantPredictionWarning):
        score = mean_pcc(y + 0.01, y)
    assert score == pytest.approx(6 / 7)


# ---------------------------------------------------------------- media and features

def _failures(root, spec) -> pd.DataFrame:
    return FeatureStore.for_spec(root, spec).failures().set_index("clip")


@pytest.mark.parametrize("breakit,reason", [
    (lambda p: p.write_bytes(b""), "audio file is empty (0 bytes)"),
    (lambda p: p.write_bytes(b"RIFF\x00\x00garbage" * 20), "unreadable audio"),
    (lambda p: p.unlink(), "audio file missing"),
])
def test_broken_audio_becomes_a_failure_row_and_keeps_the_rest(data, tmp_path, breakit, reason):
    ds = load_dataset(data)
    feats = tmp_path / "features"
    extract(ds, ["mfcc_stats"], feats, progress=False)
    store = FeatureStore.for_spec(feats, "mfcc_stats")
    kept = {c: store.path(c).stat().st_mtime_ns for c in ds.ids}
    wav = ds.media("00003", "wav")
    breakit(wav)
    store.path("00003").unlink()  # force a recompute of the broken clip only
    with pytest.warns(UserWarning, match="1 clip\\(s\\) failed"):
        rep = extract(ds, ["mfcc_stats"], feats, progress=False)[0]
    assert (rep.done, rep.failed, rep.skipped) == (0, 1, len(ds.ids) - 1)
    fail = _failures(feats, "mfcc_stats")
    assert list(fail.index) == ["00003"]
    assert str(wav) in fail.at["00003", "reason"] and reason in fail.at["00003", "reason"]
    assert {c: store.path(c).stat().st_mtime_ns for c in ds.ids if c != "00003"} == \
        {c: t for c, t in kept.items() if c != "00003"}
    # fixing the file and rerunning computes that clip and clears its failure
    sf.write(wav, np.zeros(1600, np.float32), 16_000)
    rep = extract(ds, ["mfcc_stats"], feats, progress=False)[0]
    assert (rep.done, rep.failed) == (1, 0) and _failures(feats, "mfcc_stats").empty


@pytest.mark.parametrize("content,reason", [(b"", "video file is empty (0 bytes)"),
                                            (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "unreadable video")])
def test_broken_video_becomes_a_failure_row_naming_the_file(data, tmp_path, content, reason):
    ds = load_dataset(data)
    mp4 = ds.media("00005", "mp4")
    mp4.write_bytes(content)
    with pytest.warns(UserWarning):
        extract(ds, ["pose"], tmp_path, ids=["00005"], progress=False)
    fail = _failures(tmp_path, "pose")
    assert str(mp4) in fail.at["00005", "reason"] and reason in fail.at["00005", "reason"]


@pytest.mark.parametrize("wave,rate", [(np.zeros(16_000, np.float32), 16_000),          # silent
                                       (np.full(40, 0.1, np.float32), 16_000),           # 2.5 ms
                                       (np.random.default_rng(0).normal(0, .1, (44_100, 2)).astype(np.float32),
                                        44_100)])                                        # stereo 44.1 kHz
def test_odd_but_valid_audio_gives_finite_features(data, tmp_path, wave, rate):
    """Documented fallback: silent, very short, stereo or resampled audio is padded / mixed / resampled."""
    ds = load_dataset(data)
    sf.write(ds.media("00004", "wav"), wave, rate)
    rep = extract(ds, ["mfcc_stats", "egemaps"], tmp_path, ids=["00004", "00006"], progress=False)
    assert all(r.failed == 0 for r in rep)
    for spec in ("mfcc_stats", "egemaps"):
        a, b = (FeatureStore.for_spec(tmp_path, spec).load(c) for c in ("00004", "00006"))
        assert a.x.shape == b.x.shape and np.isfinite(a.x).all()


def test_non_finite_extractor_output_is_a_failure_not_a_stored_value(data, tmp_path):
    ds = load_dataset(data)
    with pytest.warns(UserWarning):
        rep = extract(ds, ["nan_probe"], tmp_path, ids=["00000", "00001"], progress=False)[0]
    assert (rep.done, rep.failed) == (1, 1)
    assert "non-finite values" in _failures(tmp_path, "nan_probe").at["00001", "reason"]
    assert not FeatureStore.for_spec(tmp_path, "nan_probe").has("00001")


# ---------------------------------------------------------------- folds, experiments, blend, submission

@pytest.fixture
def finished(data, tmp_path):
    """A finished ridge experiment on `data`, and a second dataset with other labels."""
    ds = load_dataset(data)
    wd = Workdir(tmp_path / "w")
    write_folds(ds, make_folds(ds, 3, 0), wd.folds, {"n_folds": 3})
    cfg = load_config(write_config(tmp_path / "r.yaml", "r", alpha=10.0))
    for k in range(3):
        run_fold(cfg, k, ds, wd, jobs=1, progress=False, no_wandb=True)
    other = write_audio_dataset(tmp_path / "other", n_train=14, n_val=6, n_test=4, seed=5)
    return {"ds": ds, "wd": wd, "cfg": cfg, "other": load_dataset(other)}


def test_folds_from_another_dataset_are_refused(finished):
    with pytest.raises(FoldsError, match=rf"{finished['wd'].folds} was made for dataset .* rerun competition.folds"):
        read_folds(finished["wd"].folds, finished["other"])


def test_experiment_dir_from_another_dataset_is_refused_and_kept(finished):
    wd, cfg, other = finished["wd"], finished["cfg"], finished["other"]
    before = sorted(p.name for p in wd.experiment("r").rglob("*"))
    fold = pd.Series(make_folds(other, 3, 0).fold.to_numpy(), index=other.ids)
    with pytest.raises(ExperimentError, match=rf"{wd.experiment('r')} holds results for a different dataset"):
        Experiment(wd.oof, cfg).bind(other, fold)
    assert sorted(p.name for p in wd.experiment("r").rglob("*")) == before  # nothing lost


def test_blend_refuses_experiments_of_another_dataset(finished):
    with pytest.raises(ExperimentError, match="refusing to blend artifacts of two datasets"):
        load_library(finished["wd"].oof, finished["other"])


def test_unfinished_experiment_is_named(finished):
    wd = finished["wd"]
    (wd.experiment("r") / "metrics.json").unlink()
    with pytest.raises(ExperimentError, match=rf"{wd.experiment('r')}: OOF incomplete \(no metrics.json"):
        load_library(wd.oof, finished["ds"], ["r"])


def test_subjects_csv_without_the_column(finished, tmp_path):
    g = tmp_path / "groups.csv"
    pd.DataFrame({"File_ID": finished["ds"].ids, "who": "x"}).to_csv(g, index=False)
    with pytest.raises(SubjectsError, match=rf"{g}: needs columns 'File_ID' and 'subject'"):
        from_csv(g)


def test_subjects_missing_clips(finished, tmp_path):
    ds = finished["ds"]
    frame = pd.DataFrame({"File_ID": ds.ids[:-8], "subject": "x"})
    with pytest.raises(SubjectsError, match=r"subjects.csv: misses 8 clip\(s\) of the dataset"):
        write_subjects(tmp_path / "subjects.csv", frame, "file:x", ds)


@pytest.mark.parametrize("corrupt,expect", [
    (lambda df: df.assign(File_ID=df.File_ID.str.strip("[]")), "id(s) not bracketed"),
    (lambda df: df.iloc[1:], "Test clip(s) missing"),
    (lambda df: df.assign(Fear=np.nan), "row(s) with empty/NaN/non-numeric values"),
    (lambda df: df.assign(Fear=1.5), "row(s) with values outside [0, 1]"),
    (lambda df: df.drop(columns=["Fear"]), "header"),
])
def test_bad_submission_files_are_named(finished, tmp_path, corrupt, expect):
    ds = finished["ds"]
    path = write_submission(tmp_path / "s.csv", ds.test_ids, np.full((len(ds.test_ids), 7), 0.5), ds.emotions)
    assert check_submission(path, ds) == []
    corrupt(pd.read_csv(path, dtype={"File_ID": str})).to_csv(path, index=False)
    problems = check_submission(path, ds)
    assert any(p.startswith(f"{path}: ") and expect in p for p in problems), problems


# ---------------------------------------------------------------- configs (safe loading)

def test_invalid_yaml_names_the_file(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("model: ridge\nparams: {alpha: [1,\n")
    with pytest.raises(ConfigError, match=rf"{p}: invalid YAML"):
        load_config(p)


def test_yaml_python_tags_are_not_executed(tmp_path):
    p = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    p.write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match=rf"{p}: invalid YAML"):
        load_config(p)
    assert not marker.exists()


def test_config_must_be_a_mapping_with_a_model(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(p)
    p.write_text("features: [egemaps]\n")
    with pytest.raises(ConfigError, match=r"missing key\(s\) \['model'\]"):
        load_config(p)


def test_refused_dataset_then_rerun_on_the_right_one_recomputes_nothing(finished):
    wd, cfg, ds, other = finished["wd"], finished["cfg"], finished["ds"], finished["other"]
    mt = {p: p.stat().st_mtime_ns for p in wd.experiment("r").glob("fold_*/*")}
    with pytest.raises(FoldsError):
        run_fold(cfg, 0, other, wd, jobs=1, progress=False, no_wandb=True)
    for k in range(3):
        run_fold(cfg, k, ds, wd, jobs=1, progress=False, no_wandb=True)
    assert {p: p.stat().st_mtime_ns for p in wd.experiment("r").glob("fold_*/*")} == mt
