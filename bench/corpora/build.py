"""Build a real labelled face or speech corpus from a public GitHub snapshot with the toolkit's importer.

    python bench/corpora/build.py NAME --snapshot GIT_DIR --out DATA [--workdir W] [--jobs 2] [--keep-src]
    python bench/corpora/build.py --list

GIT_DIR is the bare git directory of the snapshot (e.g. /work/.mirror/<owner>+<name>/repo, what the
`fetch` tool brings). The recipe extracts the corpus files of the snapshot's HEAD (`git archive`) into
DATA.src/ (deleted afterwards unless --keep-src), renames what the importer cannot read as it is, and runs
`python -m competition.data.importer` with whole people held out as Test and the people written to
W/subjects.csv (default W: DATA.work). Reruns resume. No data is committed: only this recipe.
The corpora, their sources and licences: docs/CORPORA.md.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # run as a script from anywhere

from competition.data import importer  # noqa: E402


@dataclass(frozen=True)
class Corpus:
    repo: str                 # the GitHub repository the snapshot is of
    paths: tuple[str, ...]    # what to extract from it
    args: tuple[str, ...]     # importer arguments besides the source (--src or --csv) and --out
    about: str
    prepare: Callable[[Path], list[str]] | None = None  # extracted folder -> importer source arguments


def _yale_prepare(root: Path) -> list[str]:
    """yalefaces/subject01.happy (GIF without suffix) -> <condition>/subject01_happy.gif; the lighting and
    glasses conditions are dropped (not expressions)."""
    out = root / "by_condition"
    for p in sorted((root / "yalefaces").iterdir()):
        m = re.fullmatch(r"subject(\d\d)\.(happy|normal|sad|sleepy|surprised|wink)", p.name)
        if m:
            (out / m[2]).mkdir(parents=True, exist_ok=True)
            p.rename(out / m[2] / f"subject{m[1]}_{m[2]}.gif")
    return ["--src", str(out)]


LFW_LABELS = ("neutral", "happiness", "surprise", "anger", "sadness")  # the others have < 10 images
LFW_MIN, LFW_MAX = 5, 10  # people with at least LFW_MIN such images, at most LFW_MAX each (file order)


def _lfw_prepare(root: Path) -> list[str]:
    """data/legend.csv (annotator, image, emotion) -> labels.csv (path,label,person) of the LFW-named
    images (<First>_<Last>_<nnnn>.jpg: the person is the name), see LFW_LABELS and LFW_MIN/LFW_MAX."""
    import pandas as pd
    legend = pd.read_csv(root / "data" / "legend.csv", dtype=str).drop_duplicates("image")
    legend["label"] = legend["emotion"].str.strip().str.lower()
    name = legend["image"].str.extract(r"^(?P<person>[A-Z][A-Za-z'-]*(?:_[A-Za-z'-]+)+)_\d{4}\.jpg$")["person"]
    rows = legend.assign(person=name).dropna(subset=["person"])
    rows = rows[rows["label"].isin(LFW_LABELS)].sort_values("image")
    rows = rows.groupby("person").head(LFW_MAX)
    rows = rows[rows.groupby("person")["image"].transform("size") >= LFW_MIN]
    csv = root / "labels.csv"
    rows.assign(path="images/" + rows["image"])[["path", "label", "person"]].to_csv(csv, index=False)
    return ["--csv", str(csv)]


def _regroup(frames: list[tuple[str, int, bytes]], out: Path, per_clip: int, label: str) -> list[str]:
    """(person, frame number from 1, jpg bytes) of one capture sequence per person ->
    out/<label>/<person>_c<k>_<frame>.jpg, clip k holding frames per_clip*(k-1)+1 .. per_clip*k."""
    (out / label).mkdir(parents=True)
    for person, n, data in frames:
        (out / label / f"{person}_c{(n - 1) // per_clip + 1}_{n:03d}.jpg").write_bytes(data)
    return ["--src", str(out)]


FRAME_CLIP = r"^(?P<label>[^/]+)/(?P<clip>(?P<person>[a-z0-9]+)_c\d+)_\d+$"  # what _regroup writes


def _faces94_prepare(root: Path) -> list[str]:
    """Training.zip (Training/<n>/<name>.<frame>.jpg: the Essex faces94 sequence of a person speaking) ->
    1-s clips of 4 consecutive frames (at --fps 4): four of each person's 16 frames, five of asamma's 20."""
    import zipfile
    with zipfile.ZipFile(root / "Training.zip") as z:
        frames = [(m[1], int(m[2]), z.read(m[0])) for m in
                  (re.fullmatch(r"Training/\d+/([a-z0-9]+)\.(\d+)\.jpg", i) for i in z.namelist()) if m]
    return _regroup(frames, root / "by_clip", per_clip=4, label="speaking")


def _webcam11_prepare(root: Path) -> list[str]:
    """dataset/User.<id>.<frame>.jpg (Haar face crops of 30 webcam frames per person, taken 0.1 s apart by
    the repository's notebook) -> 1-s clips of 10 consecutive frames (at --fps 10), three per person."""
    frames = [(f"user{m[1]}", int(m[2]), p.read_bytes()) for p in (root / "dataset").iterdir()
              if (m := re.fullmatch(r"User\.(\d+)\.(\d+)\.jpg", p.name))]
    return _regroup(frames, root / "by_clip", per_clip=10, label="looking")


CORPORA: dict[str, Corpus] = {
    "ckplus48": Corpus(
        repo="WuJie1010/Facial-Expression-Recognition.Pytorch", paths=("CK+48",),
        args=("--pattern", r"^(?P<label>[^/]+)/(?P<clip>(?P<person>S\d+)_\d+)_\d+$",
              "--emotions", "anger=Anger,contempt=Contempt,disgust=Disgust,fear=Fear,happy=Happiness,"
                            "sadness=Sadness,surprise=Surprise", "--fps", "5"),
        about="CK+ (extended Cohn-Kanade) as 48x48 grey face crops: the last 3 frames of each labelled "
              "sequence, one frame-sequence clip each; person from the S### of the file name"),
    "yale": Corpus(
        repo="leecarraher/pattern_recognition", paths=("yalefaces",), prepare=_yale_prepare,
        args=("--pattern", r"^(?P<label>[^/]+)/(?P<person>subject\d\d)_",
              "--emotions", "happy=Happy,normal=Normal,sad=Sad,sleepy=Sleepy,surprised=Surprised,wink=Wink"),
        about="Yale face database: 15 people, 320x243 grey GIF photos, 6 expression conditions each"),
    "london": Corpus(
        repo="debruine/webmorphR.stim", paths=("inst/neutral_front", "inst/smiling_front"),
        args=("--pattern", r"^(?P<label>neutral|smiling)_front/(?P<person>\d{3})_\d\d$",
              "--emotions", "neutral=Neutral,smiling=Smiling"),
        about="Face Research Lab London set (CC-BY): 102 people, 1350x1350 colour photos, neutral and smiling"),
    "lfw_expressions": Corpus(
        repo="muxspace/facial_expressions", paths=("data/legend.csv", "images"), prepare=_lfw_prepare,
        args=("--emotions", "neutral=Neutral,happiness=Happiness,surprise=Surprise,anger=Anger,sadness=Sadness"),
        about="LFW news photos (250x250 colour, in the wild) labelled by students with one expression each; "
              "the person is the LFW name in the file name"),
    "faces94": Corpus(
        repo="chaoSefat/Faces94-LBPHF-Face-Detection-Python-OpenCV", paths=("Training.zip",),
        prepare=_faces94_prepare,
        args=("--pattern", FRAME_CLIP, "--emotions", "speaking=Speaking", "--fps", "4"),
        about="Essex faces94 (18 of its 153 people): colour 180x200 frame sequences of a person speaking to "
              "the camera; 1-s clips of 4 consecutive frames, no emotion labels (one constant class)"),
    "webcam11": Corpus(
        repo="shahzaibarif12/face_detection", paths=("dataset",), prepare=_webcam11_prepare,
        args=("--pattern", FRAME_CLIP, "--emotions", "looking=Looking", "--fps", "10"),
        about="a class project's webcam captures: 11 named people, 30 grey Haar face crops each (0.1 s "
              "apart); 1-s clips of 10 consecutive frames, no emotion labels (one constant class)"),
    "emovo": Corpus(
        repo="fp1acm8/SER", paths=("data/EMOVO",),
        args=("--pattern", r"^EMOVO/(?P<person>[fm]\d)/(?P<label>[a-z]+)-", "--test-people", "2",
              "--emotions", "dis=Disgust,gio=Joy,neu=Neutral,pau=Fear,rab=Anger,sor=Surprise,tri=Sadness"),
        about="EMOVO: Italian acted speech, 6 actors, 7 emotions, 14 sentences, 588 wav files (speech only)"),
}


def extract(snapshot: Path, paths: tuple[str, ...], dest: Path) -> None:
    """`git archive HEAD paths` of a bare repository, unpacked into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["git", "--git-dir", str(snapshot), "archive", "--format=tar", "HEAD", *paths],
                            stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        tar.extractall(dest, filter="data")
    if proc.wait() != 0:
        raise SystemExit(f"git archive of {paths} in {snapshot} failed")


def head_commit(snapshot: Path) -> str:
    return subprocess.run(["git", "--git-dir", str(snapshot), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", choices=sorted(CORPORA))
    ap.add_argument("--list", action="store_true", help="list the corpora and their source repositories")
    ap.add_argument("--snapshot", type=Path, help="bare git directory of the source repository")
    ap.add_argument("--out", type=Path, help="dataset folder to write")
    ap.add_argument("--workdir", type=Path, default=None, help="work directory for subjects.csv (DATA.work)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep-src", action="store_true", help="keep the extracted files (DATA.src)")
    a = ap.parse_args(argv)
    if a.list or a.name is None:
        for name, c in CORPORA.items():
            print(f"{name:10s} github:{c.repo}\n           {c.about}")
        return
    if a.snapshot is None or a.out is None:
        ap.error("NAME needs --snapshot and --out")
    corpus = CORPORA[a.name]
    src = a.out.with_name(a.out.name + ".src")
    workdir = a.workdir or a.out.with_name(a.out.name + ".work")
    print(f"{a.name}: {corpus.repo} at {head_commit(a.snapshot)} -> {src}")
    shutil.rmtree(src, ignore_errors=True)
    extract(a.snapshot, corpus.paths, src)
    source = corpus.prepare(src) if corpus.prepare else ["--src", str(src / Path(corpus.paths[0]).parts[0])]
    importer.main([*source, *corpus.args, "--out", str(a.out), "--workdir", str(workdir),
                   "--jobs", str(a.jobs)])
    if not a.keep_src:
        shutil.rmtree(src)


if __name__ == "__main__":
    main()
