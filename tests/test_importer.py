"""The corpus importer: a small fake corpus laid out like EmoDB (and the generic CSV form) round-trips into
a dataset the contract accepts, with whole speakers held out, true Test labels kept aside, placeholder
videos as long as the audio, resumable reruns and errors that name the bad file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from competition.data.contract import load_dataset, media_path
from competition.data.heldout import heldout_score
from competition.data.importer import PRESETS, TRUTH_CSV, CorpusError, assign_splits, main
from competition.data.subjects import read_subjects
from competition.core.io import read_json
from competition.features.video import frame_times
from competition.core.paths import Workdir

EMODB = Path("/work/shared/data/emodb")
SPEAKERS = ("03", "08", "09", "10", "11")
LETTERS = "WFTN"


def write_wav(path: Path, seconds: float, sr: int = 22050, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    y = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))
    sf.write(str(path), y.astype(np.float32), sr, subtype="PCM_16")
    return path


def fake_emodb(root: Path) -> Path:
    """5 speakers x 4 emotions, EmoDB names, 0.3-0.7 s at 22.05 kHz."""
    for i, spk in enumerate(SPEAKERS):
        for j, letter in enumerate(LETTERS):
            write_wav(root / "wav" / f"{spk}a0{j}{letter}a.wav", 0.3 + 0.1 * ((i + j) % 5), seed=i * 10 + j)
    return root


def run(*args: str) -> dict:
    """The importer command (without its one-line error printer, so errors raise); returns the import
    record it wrote (import.json)."""
    argv = [*map(str, args), "--jobs", "1"]
    main.__wrapped__(argv)
    return read_json(Path(argv[argv.index("--out") + 1]) / "import.json")


def test_emodb_layout_round_trips(tmp_path):
    src = fake_emodb(tmp_path / "src")
    out, wd = tmp_path / "out", tmp_path / "work"
    rec = run("--preset", "emodb", "--src", src, "--out", out, "--test-speakers", "1", "--val-speakers", "1",
              "--workdir", wd)
    ds = load_dataset(out)
    assert ds.emotions == list(PRESETS["emodb"].emotions.values()) and len(ds.ids) == 20
    assert rec["splits"] == {"Train": 12, "Val": 4, "Test": 4}
    # whole speakers per split; labels one-hot from the emotion letter; Test labels only in the truth file
    assert (ds.table.groupby("Subject")["Split"].nunique() == 1).all()
    y = ds.labels()
    assert ((y == 0) | (y == 1)).all() and (y.sum(1) == 1).all()
    name_of = PRESETS["emodb"].emotions
    for cid in ds.labelled_ids:
        assert ds.emotions[int(ds.labels([cid]).argmax())] == name_of[cid[5]]
    truth = pd.read_csv(out / TRUTH_CSV, dtype=str).set_index("File_ID")
    for cid in ds.test_ids:
        assert ds.table.loc[cid, ds.emotions].isna().all()
        assert float(truth.loc[f"[{cid}]", name_of[cid[5]]]) == 1.0
        assert truth.loc[f"[{cid}]", "Subject"] == cid[:2]
    # media: the wav is the source file unchanged; the video is grey, 5 fps, as long as the audio
    for cid in ds.ids:
        wav = ds.media(cid, "wav")
        assert wav.read_bytes() == (src / "wav" / f"{cid}.wav").read_bytes()
        t = frame_times(ds.media(cid, "mp4"))
        assert abs(len(t) / 5.0 - sf.info(str(wav)).duration) <= 0.1 + 1e-9
    # the speakers are the subjects of the work directory
    subjects = read_subjects(Workdir.of(wd).subjects, ds)
    assert subjects.groups.to_dict() == ds.table["Subject"].to_dict()
    assert subjects.record()["source"] == "column:Subject"

    # resumable: a rerun writes nothing and changes nothing; a removed clip comes back
    before = (out / "data_info.csv").read_bytes()
    os.remove(media_path(out, ds.split_of(ds.ids[0]), ds.ids[0], "mp4"))
    rec2 = run("--preset", "emodb", "--src", src, "--out", out, "--test-speakers", "1", "--val-speakers", "1")
    assert rec2["n_written_files"] == 1 and (out / "data_info.csv").read_bytes() == before
    # other parameters into the same folder: refused unless --force
    with pytest.raises(CorpusError, match=r"import.json: .* other parameters \(\['seed'\]\)"):
        run("--preset", "emodb", "--src", src, "--out", out, "--test-speakers", "1", "--val-speakers", "1",
            "--seed", "1")


def test_speaker_choice_is_deterministic_and_can_be_named(tmp_path):
    speakers = [f"{i:02d}" for i in range(10)]
    a = assign_splits(speakers, seed=3)
    assert a == assign_splits(speakers[::-1], seed=3)
    assert sorted(a.values()).count("Test") == 2 and sorted(a.values()).count("Val") == 2
    assert len({tuple(sorted(k for k, v in assign_splits(speakers, s).items() if v == "Test"))
                for s in range(5)}) > 1  # the seed decides
    src = fake_emodb(tmp_path / "src")
    named = run("--preset", "emodb", "--src", src, "--out", tmp_path / "n", "--test-speakers", "08,11",
                "--val-speakers", "03")
    assert named["people"] == {"Train": ["09", "10"], "Val": ["03"], "Test": ["08", "11"]}
    with pytest.raises(CorpusError, match=r"unknown people \['99', 'x'\]"):
        run("--preset", "emodb", "--src", src, "--out", tmp_path / "x", "--test-speakers", "99,x")


def test_bad_source_files_are_named_all_at_once(tmp_path):
    src = fake_emodb(tmp_path / "src")
    odd = write_wav(src / "wav" / "recording 1.wav", 0.3)
    broken = src / "wav" / "08b01Wa.wav"
    broken.write_bytes(b"RIFF not really a wav")
    with pytest.raises(CorpusError) as err:
        run("--preset", "emodb", "--src", src, "--out", tmp_path / "out")
    msg = str(err.value)
    assert f"{odd}: path 'wav/recording 1' does not match --pattern" in msg
    assert f"{broken}: unreadable audio" in msg and "--skip-bad" in msg
    assert not (tmp_path / "out").exists()  # nothing written
    rec = run("--preset", "emodb", "--src", src, "--out", tmp_path / "out", "--skip-bad")
    assert rec["n_clips"] == 20


def test_csv_forms(tmp_path):
    src = tmp_path / "src"
    rows = []
    for i in range(12):
        p = write_wav(src / f"spk{i % 4}" / f"take {i}.wav", 0.4, sr=16000, seed=i)
        if i == 5:  # a flac source is written as 16-bit wav
            y, sr = sf.read(str(p))
            p.unlink()
            p = p.with_suffix(".flac")
            sf.write(str(p), y, sr)
        rows.append({"path": str(p.relative_to(src)), "label": ["calm", "angry", "happy"][i % 3],
                     "speaker": f"p{i % 4}"})
    csv = src / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    rec = run("--csv", csv, "--out", tmp_path / "cat", "--test-speakers", "1", "--val-speakers", "1")
    ds = load_dataset(tmp_path / "cat")
    assert ds.emotions == ["angry", "calm", "happy"] and rec["splits"]["Test"] == 3
    assert "take_5" in ds.ids and sf.info(str(ds.media("take_5", "wav"))).format == "WAV"
    assert (ds.table.groupby("Subject")["Split"].nunique() == 1).all()

    # one column per emotion, no speakers: a random clip split, no Subject column
    rng = np.random.default_rng(0)
    num = pd.DataFrame({"path": [r["path"] for r in rows], "joy": rng.uniform(0, 1, 12).round(3),
                        "fear": rng.uniform(0, 1, 12).round(3)})
    num.to_csv(csv, index=False)
    run("--csv", csv, "--out", tmp_path / "num")
    ds = load_dataset(tmp_path / "num")
    assert ds.emotions == ["joy", "fear"] and "Subject" not in ds.table.columns
    lab = num.set_index(num.path.map(lambda p: Path(p).stem.replace(" ", "_")))
    assert np.allclose(ds.labels(), lab.loc[ds.labelled_ids, ["joy", "fear"]].to_numpy(), atol=1e-4)

    num.rename(columns={"path": "file"}).to_csv(csv, index=False)
    with pytest.raises(CorpusError, match=rf"{csv}: missing column 'path'"):
        run("--csv", csv, "--out", tmp_path / "bad")
    num.assign(joy=num.joy + 1).to_csv(csv, index=False)
    with pytest.raises(CorpusError, match=rf"{csv}:2: emotion value\(s\) not numbers in \[0, 1\]: joy="):
        run("--csv", csv, "--out", tmp_path / "bad")


def test_heldout_score_reads_the_truth_file(tmp_path):
    src = fake_emodb(tmp_path / "src")
    out = tmp_path / "out"
    run("--preset", "emodb", "--src", src, "--out", out, "--test-speakers", "2", "--val-speakers", "1")
    truth = pd.read_csv(out / TRUTH_CSV, dtype={"File_ID": str})
    test = truth[truth.Split == "Test"].drop(columns=["Split", "Subject", "source"])
    perfect, sub = tmp_path / "perfect.csv", tmp_path / "sub.csv"
    test.to_csv(perfect, index=False)
    rep = heldout_score(perfect, out)
    # the fake corpus has 4 of EmoDB's 7 emotions: the 3 others are constant and score 0, as officially
    assert rep["mean_pcc"] == pytest.approx(4 / 7) and sorted(rep["pcc"].values())[3:] == pytest.approx([1] * 4)
    assert rep["subjects"] == ["09", "11"]
    noisy = test.copy()
    emos = noisy.columns[1:]
    noisy[emos] = 0.5 * noisy[emos] + np.random.default_rng(0).uniform(0, 1, noisy[emos].shape)
    noisy.to_csv(sub, index=False)
    assert 0 < heldout_score(sub, out)["mean_pcc"] < 1
    noisy.iloc[1:].to_csv(sub, index=False)
    with pytest.raises(ValueError, match=r"misses .* 1 Test clip"):
        heldout_score(sub, out)


def test_heldout_prints_the_claim_beside_the_held_out_score_and_na_is_a_speaker(tmp_path, capsys):
    from competition.core.io import write_json
    from competition.data.heldout import main as heldout_main
    src = fake_emodb(tmp_path / "src")
    out = tmp_path / "out"
    run("--preset", "emodb", "--src", src, "--out", out, "--test-speakers", "2", "--val-speakers", "1")
    truth = pd.read_csv(out / TRUTH_CSV, dtype=str, keep_default_na=False)
    truth.loc[truth.Subject == "09", "Subject"] = "NA"
    truth.to_csv(out / TRUTH_CSV, index=False)
    test = truth[truth.Split == "Test"].drop(columns=["Split", "Subject", "source"])
    sub = tmp_path / "blend-x.csv"
    test.to_csv(sub, index=False)
    assert heldout_score(sub, out)["subjects"] == ["11", "NA"]
    write_json(sub.with_suffix(".json"), {"claimed_mean_pcc": 0.5, "folds_grouped_by": {
        "kind": "estimated", "n_groups": 7, "n_folds": 5}})
    capsys.readouterr()
    heldout_main([str(sub), "--data", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["claimed", "(nested,", "choice", "included)", "held-out", "Test", "held-out", "-",
                                "claimed"]
    assert lines[3].split() == ["0.5000", f"{4 / 7:.4f}", f"{4 / 7 - 0.5:+.4f}"]
    assert "5 folds grouped by estimated subjects (7 groups) (blend-x.json)" in lines[4]


@pytest.mark.slow
def test_real_emodb_imports(tmp_path):
    if not (EMODB / "wav").is_dir():
        pytest.skip(f"{EMODB} is absent (the shared real-data folder of the development machine)")
    main(["--preset", "emodb", "--src", str(EMODB), "--out", str(tmp_path / "emodb"), "--jobs", "2"])
    rec = read_json(tmp_path / "emodb" / "import.json")
    ds = load_dataset(tmp_path / "emodb")
    assert len(ds.ids) == 535 and ds.table["Subject"].nunique() == 10
    assert [len(v) for v in rec["people"].values()] == [6, 2, 2]
    counts = pd.read_csv(tmp_path / "emodb" / TRUTH_CSV).iloc[:, 4:].sum().astype(int).to_dict()
    assert counts == {"Anger": 127, "Boredom": 81, "Disgust": 46, "Fear": 69, "Happiness": 71,
                      "Sadness": 62, "Neutral": 79}
    assert rec["done"]


@pytest.mark.slow  # about 10 s of CPU: feature extraction, 4 folds, the blend
def test_an_imported_audio_only_corpus_runs_through_the_normal_commands(tmp_path):
    """import -> subjects -> speaker-grouped folds -> every fold of a ridge on MFCC statistics -> blended
    submission -> official check -> held-out speaker score, with the commands a user runs."""
    from competition.folds import main as folds_main, read_folds
    from competition.pipeline.run_fold import main as run_fold_main
    from competition.submission import main as submission_main
    from tests.tiny_data import write_config

    out, wd = tmp_path / "data", tmp_path / "work"
    run("--preset", "emodb", "--src", fake_emodb(tmp_path / "src"), "--out", out, "--test-speakers", "1",
        "--val-speakers", "1", "--workdir", wd)
    folds_main(["--data", str(out), "--workdir", str(wd), "--n-folds", "4"])
    ds = load_dataset(out)
    fold = read_folds(Workdir.of(wd).folds, ds)
    assert (fold[fold >= 0].groupby(ds.table["Subject"]).nunique() == 1).all()
    cfg = write_config(tmp_path / "ridge_mfcc.yaml", "ridge_mfcc", features=("mfcc_stats",), alpha=10.0)
    run_fold_main(["--all-folds", "--exp", str(cfg), "--data", str(out), "--workdir", str(wd), "--jobs", "1",
                   "--no-wandb"])
    assert submission_main(["--blend", "best", "--data", str(out), "--workdir", str(wd), "--no-wandb"]) == 0
    sub = next(Workdir.of(wd).submissions.glob("*.csv"))
    assert submission_main(["check", str(sub), "--data", str(out)]) == 0
    rep = heldout_score(sub, out)
    assert rep["n"] == 4 and np.isfinite(rep["mean_pcc"])
