import zipfile

import numpy as np
import pytest

from competition.data.frame_submission_format import (
    EXPR_CLASSES,
    check_frame_submission,
    expected_frames_from_example,
    frame_id,
    image_location,
    parse_frame_id,
    parse_image_location,
    write_frame_submission,
)

EXPECTED = {"10-60-1280x720_right": 4, "video_7": 3, "Abc-9": 5}
VA_HEADER = "image_location,valence,arousal"
EXPR_HEADER = "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"


def _ids(expected=EXPECTED):
    return [frame_id(n, k) for n, c in expected.items() for k in range(1, c + 1)]


@pytest.fixture
def ids():
    ids = _ids()
    return ids[::-1]  # the writer must sort


@pytest.fixture
def va_file(tmp_path, ids):
    pred = np.random.default_rng(0).uniform(-1.3, 1.3, (len(ids), 2))
    return write_frame_submission(tmp_path / "va" / "predictions.txt", "va", ids, pred, ["valence", "arousal"])


@pytest.fixture
def expr_file(tmp_path, ids):
    prob = np.random.default_rng(1).dirichlet(np.ones(8), len(ids))
    return write_frame_submission(tmp_path / "expr" / "predictions.txt", "expr", ids, prob, list(EXPR_CLASSES))


def _lines(p):
    return p.read_text().splitlines()


# ---------------------------------------------------------------- round trip

def test_va_round_trip_is_clean(va_file):
    assert check_frame_submission(va_file, "va", EXPECTED) == []
    assert check_frame_submission(va_file.with_suffix(".zip"), "va", EXPECTED) == []
    lines = _lines(va_file)
    assert lines[0] == VA_HEADER
    assert len(lines) == 1 + sum(EXPECTED.values())
    locs = [ln.split(",")[0] for ln in lines[1:]]
    assert locs == sorted(locs) and locs[0] == "10-60-1280x720_right/00001.jpg"
    vals = np.array([[float(x) for x in ln.split(",")[1:]] for ln in lines[1:]])
    assert np.abs(vals).max() <= 1.0 and np.isclose(np.abs(vals).max(), 1.0)  # clipped
    assert all(len(x.split(".")[1]) == 6 for ln in lines[1:] for x in ln.split(",")[1:])


def test_expr_round_trip_is_clean(expr_file):
    assert check_frame_submission(expr_file, "expr", EXPECTED) == []
    assert check_frame_submission(expr_file.with_suffix(".zip"), "expr", EXPECTED) == []
    lines = _lines(expr_file)
    assert lines[0] == EXPR_HEADER
    assert all(len(ln.split(",")) == 2 and ln.split(",")[1] in set("01234567") for ln in lines[1:])


def test_zip_holds_exactly_the_file_and_is_deterministic(tmp_path, ids):
    pred = np.zeros((len(ids), 2))
    a = write_frame_submission(tmp_path / "a" / "predictions.txt", "va", ids, pred, ["valence", "arousal"])
    b = write_frame_submission(tmp_path / "b" / "predictions.txt", "va", ids[::-1], pred, ["valence", "arousal"])
    with zipfile.ZipFile(a.with_suffix(".zip")) as zf:
        assert zf.namelist() == ["predictions.txt"]
        assert zf.read("predictions.txt") == a.read_bytes()
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".zip").read_bytes() == b.with_suffix(".zip").read_bytes()
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_expr_writes_argmax_class_and_target_order_is_by_name(tmp_path):
    ids = [frame_id("v", k) for k in (1, 2, 3, 4)]
    classes = list(EXPR_CLASSES)
    want = [4, 0, 7, 2]
    prob = np.full((4, 8), 0.01)
    for i, c in enumerate(want):
        prob[i, c] = 0.9
    perm = classes[::-1]  # columns given in another order, named
    p = write_frame_submission(tmp_path / "p.txt", "expr", ids, prob[:, [classes.index(c) for c in perm]], perm)
    assert [int(ln.split(",")[1]) for ln in _lines(p)[1:]] == want
    assert check_frame_submission(p, "expr", {"v": 4}) == []


def test_va_columns_mapped_by_name(tmp_path):
    p = write_frame_submission(tmp_path / "p.txt", "va", ["v/00001"], np.array([[0.25, -0.5]]),
                               ["arousal", "valence"])
    assert _lines(p)[1] == "v/00001.jpg,-0.500000,0.250000"


@pytest.mark.parametrize("task,pred,targets,match", [
    ("va", np.array([[np.nan, 0.0]]), ["valence", "arousal"], "NaN"),
    ("va", np.zeros((1, 2)), ["valence", "dominance"], "targets"),
    ("expr", np.zeros((1, 7)), list(EXPR_CLASSES[:7]), "targets"),
    ("va", np.zeros((2, 2)), ["valence", "arousal"], "do not match"),
    ("au", np.zeros((1, 2)), ["valence", "arousal"], "task"),
])
def test_writer_refuses_bad_input(tmp_path, task, pred, targets, match):
    with pytest.raises(ValueError, match=match):
        write_frame_submission(tmp_path / "p.txt", task, ["v/00001"], pred, targets)
    assert not (tmp_path / "p.txt").exists()


def test_writer_refuses_duplicate_and_bad_ids(tmp_path):
    with pytest.raises(ValueError, match="duplicate"):
        write_frame_submission(tmp_path / "p.txt", "va", ["v/00001", "v/00001"], np.zeros((2, 2)),
                               ["valence", "arousal"])
    with pytest.raises(ValueError, match="frame id"):
        write_frame_submission(tmp_path / "p.txt", "va", ["v/1"], np.zeros((1, 2)), ["valence", "arousal"])


# ---------------------------------------------------------------- checker: every problem kind

def _edit(src, tmp_path, fn, name="broken.txt"):
    lines = _lines(src)
    p = tmp_path / name
    p.write_text("\n".join(fn(lines)) + "\n")
    return p


def _set_value(lines, i, value):
    cells = lines[i].split(",")
    cells[1] = value
    return lines[:i] + [",".join(cells)] + lines[i + 1:]


VA_CASES = [
    (lambda L: ["image_location,arousal,valence", *L[1:]], "header"),
    (lambda L: ["valence,arousal", *L[1:]], "header"),
    (lambda L: L[:1] + L[2:], "frame(s) of Test videos missing"),
    (lambda L: [x for x in L if not x.startswith("video_7/")], "Test video(s) missing"),
    (lambda L: [*L, "other_video/00001.jpg,0.1,0.2"], "extra video(s)"),
    (lambda L: [*L, "video_7/00004.jpg,0.1,0.2"], "extra frame(s)"),
    (lambda L: [*L, L[3]], "duplicate frame(s)"),
    (lambda L: _set_value(L, 2, "nan"), "NaN"),
    (lambda L: _set_value(L, 2, "inf"), "NaN/inf"),
    (lambda L: _set_value(L, 2, "abc"), "non-numeric"),
    (lambda L: _set_value(L, 2, "1.5"), "outside [-1, 1]"),
    (lambda L: _set_value(L, 2, "-1.000001"), "outside [-1, 1]"),
    (lambda L: L[:2] + [L[2] + ",0.3"] + L[3:], "field(s) instead of 3"),
    (lambda L: L[:2] + ["video_7/7.jpg,0.1,0.2"] + L[3:], "not <name>/<k:05d>.jpg"),
    (lambda L: L[:2] + [""] + L[2:], "blank line"),
    (lambda L: L[:1], "no rows"),
]


@pytest.mark.parametrize("fn,expect", VA_CASES)
def test_va_checker_names_each_problem(va_file, tmp_path, fn, expect):
    p = _edit(va_file, tmp_path, fn)
    problems = check_frame_submission(p, "va", EXPECTED)
    assert any(expect in x and str(p) in x for x in problems), problems


EXPR_CASES = [
    (lambda L: ["image_location,Neutral,Anger", *L[1:]], "header"),
    (lambda L: [VA_HEADER, *L[1:]], "header"),
    (lambda L: _set_value(L, 2, "3.0"), "not an integer 0..7"),
    (lambda L: _set_value(L, 2, "0.5"), "not an integer 0..7"),
    (lambda L: _set_value(L, 2, "nan"), "not an integer 0..7"),
    (lambda L: _set_value(L, 2, ""), "not an integer 0..7"),
    (lambda L: _set_value(L, 2, "8"), "outside 0..7"),
    (lambda L: _set_value(L, 2, "-1"), "outside 0..7"),
    (lambda L: L[:2] + [L[2] + ",1"] + L[3:], "field(s) instead of 2"),
    (lambda L: L[:-1], "frame(s) of Test videos missing"),
    (lambda L: [*L, "zzz/00001.jpg,0"], "extra video(s)"),
]


@pytest.mark.parametrize("fn,expect", EXPR_CASES)
def test_expr_checker_names_each_problem(expr_file, tmp_path, fn, expect):
    p = _edit(expr_file, tmp_path, fn)
    problems = check_frame_submission(p, "expr", EXPECTED)
    assert any(expect in x and str(p) in x for x in problems), problems


def test_problem_reports_line_number(va_file, tmp_path):
    p = _edit(va_file, tmp_path, lambda L: _set_value(L, 4, "nan"))  # file line 5
    (problem,) = check_frame_submission(p, "va", EXPECTED)
    assert "line 5" in problem and "1 line(s)" in problem


def test_all_problems_reported_together(va_file, tmp_path):
    p = _edit(va_file, tmp_path, lambda L: ["bad,header"] + _set_value(L, 2, "2")[1:-1] + ["x/00001.jpg,0,0"])
    problems = check_frame_submission(p, "va", EXPECTED)
    for expect in ("header", "outside [-1, 1]", "frame(s) of Test videos missing", "extra video(s)"):
        assert any(expect in x for x in problems), (expect, problems)


def test_bad_zips(tmp_path, va_file):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    assert any("not a readable zip" in x and str(junk) in x for x in check_frame_submission(junk, "va", EXPECTED))

    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.write(va_file, "predictions.txt")
        zf.writestr("notes.txt", "hello")
    assert any("exactly one" in x and str(two) in x for x in check_frame_submission(two, "va", EXPECTED))

    bad_inside = tmp_path / "inside.zip"
    with zipfile.ZipFile(bad_inside, "w") as zf:
        zf.writestr("predictions.txt", "image_location,valence,arousal\nv/00001.jpg,nan,0\n")
    problems = check_frame_submission(bad_inside, "va", {"v": 1})
    assert problems and all(f"{bad_inside}:predictions.txt" in x for x in problems), problems


def test_missing_unreadable_and_folder(tmp_path):
    assert "file not found" in check_frame_submission(tmp_path / "nope.txt", "va", EXPECTED)[0]
    assert "folder" in check_frame_submission(tmp_path, "va", EXPECTED)[0]
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "UTF-8" in check_frame_submission(binary, "va", EXPECTED)[0]
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert "empty file" in check_frame_submission(empty, "va", EXPECTED)[0]


def test_windows_line_endings_are_fine(va_file, tmp_path):
    p = tmp_path / "crlf.txt"
    p.write_bytes(va_file.read_bytes().replace(b"\n", b"\r\n"))
    assert check_frame_submission(p, "va", EXPECTED) == []


def test_expected_from_example_file(tmp_path, expr_file):
    assert expected_frames_from_example(expr_file) == EXPECTED
    gap = tmp_path / "gap.txt"
    gap.write_text(f"{EXPR_HEADER}\nv/00001.jpg,\nv/00003.jpg,\n")
    with pytest.raises(ValueError, match="not exactly 1..2"):
        expected_frames_from_example(gap)


# ---------------------------------------------------------------- frame ids

@pytest.mark.parametrize("name,k,fid", [
    ("10-60-1280x720_right", 1, "10-60-1280x720_right/00001"),
    ("video_7", 12345, "video_7/12345"),
    ("a", 123456, "a/123456"),
    ("A-b_9", np.int64(42), "A-b_9/00042"),
])
def test_frame_id_round_trip(name, k, fid):
    assert frame_id(name, k) == fid
    assert parse_frame_id(fid) == (name, int(k))
    assert image_location(name, k) == fid + ".jpg"
    assert parse_image_location(fid + ".jpg") == (name, int(k))


@pytest.mark.parametrize("name", ["", "a/b", "a b", "a.b", "../x", "é", "a\n", None, 3])
def test_frame_id_rejects_bad_names(name):
    with pytest.raises(ValueError, match="annotation name"):
        frame_id(name, 1)


@pytest.mark.parametrize("k", [0, -1, 1.0, "1", True])
def test_frame_id_rejects_bad_k(k):
    with pytest.raises(ValueError, match="frame number"):
        frame_id("v", k)


@pytest.mark.parametrize("fid", ["v/1", "v/000001", "v/00000", "v/00001.jpg", "v", "/00001", "a/b/00001",
                                 "v /00001", "v/00001\n", "v/-0001", "", None])
def test_parse_frame_id_rejects(fid):
    with pytest.raises(ValueError):
        parse_frame_id(fid)


@pytest.mark.parametrize("loc", ["v/00001", "v/1.jpg", "v/00001.png", "v/00000.jpg", "a/b/00001.jpg"])
def test_parse_image_location_rejects(loc):
    with pytest.raises(ValueError):
        parse_image_location(loc)
