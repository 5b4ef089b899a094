"""Temporary files of a killed writer are swept by the next run; a live writer's and another host's are
kept (they may still be renamed into place)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from competition.core.io import atomic_files, atomic_path, remove_orphans
from tests.tiny_data import REPO

KILLED_WRITER = """
import os, sys
from pathlib import Path
from competition.core.io import atomic_files, atomic_path
d = Path(sys.argv[1])
with atomic_files(d) as staging:
    (staging / "model.safetensors").write_bytes(b"half")
    with atomic_path(d / "val.csv") as tmp:
        tmp.write_text("File_ID,Adoration\\n")
        os.kill(os.getpid(), 9)
"""


def test_a_killed_writers_temporaries_are_removed_and_nothing_else(tmp_path: Path):
    d = tmp_path / "fold_0"
    d.mkdir()
    res = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(d)], cwd=REPO, capture_output=True)
    assert res.returncode == -9
    left = sorted(p.name for p in d.iterdir())
    assert len(left) == 2 and left[0].startswith(".staging.") and left[1].startswith(".val.csv.")
    (d / "fold.json").write_text("{}")
    (d / ".user-notes.tmp").write_text("not ours")
    other_host = d / ".test.csv.@some-other-host@1@abc.tmp"
    other_host.write_text("an NFS neighbour's work in progress")
    with atomic_path(d / "test.csv") as live:
        live.write_text("File_ID\n")
        removed = remove_orphans(d)
        assert live.exists()
    assert sorted(p.name for p in removed) == left
    assert sorted(p.name for p in d.iterdir()) == sorted([".test.csv.@some-other-host@1@abc.tmp",
                                                         ".user-notes.tmp", "fold.json", "test.csv"])
    assert remove_orphans(d) == [] and remove_orphans(tmp_path / "missing") == []


def test_atomic_files_leaves_no_staging_folder(tmp_path: Path):
    with atomic_files(tmp_path) as staging:
        (staging / "a.bin").write_bytes(b"1")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
