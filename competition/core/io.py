"""Atomic writes: every artifact goes to a temporary name in its folder and is renamed into place,
so a killed job never leaves a half-written file that a rerun would trust."""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd


def _host() -> str:
    return socket.gethostname().replace("@", "_")


def _owner() -> str:
    """Temporary names carry their writer (host, pid), so a later run can tell a killed writer's
    leftovers from a live writer's work in progress."""
    return f"@{_host()}@{os.getpid()}@"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def remove_orphans(directory: Path | str) -> list[Path]:
    """Delete the temporary files and staging folders in `directory` (not below it) left by writers on
    this host that were killed; those of live processes and of other hosts are kept. Returns them."""
    host, removed = _host(), []
    for p in Path(directory).glob(".*@*@*@*.tmp"):
        try:
            _, p_host, pid, _ = p.name.rsplit("@", 3)
            if p_host != host or _pid_alive(int(pid)):
                continue
        except ValueError:  # not one of ours
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_files(directory: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder inside `directory`; if the block succeeds, move every file written
    into it to `directory`, each by an atomic rename (for writers that take a folder, e.g. Model.save)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".staging.{_owner()}", suffix=".tmp", dir=directory))
    try:
        yield tmp
        for f in sorted(tmp.rglob("*")):
            if f.is_file():
                dest = directory / f.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: Path | str, df: pd.DataFrame, float_format: str | None = "%.6f") -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format=float_format)


def write_zip_beside(path: Path | str) -> Path:
    """A zip beside `path` holding only it, byte-identical for identical contents (fixed timestamp)."""
    path = Path(path)
    info = zipfile.ZipInfo(path.name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    with atomic_path(path.with_suffix(".zip")) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(info, path.read_bytes())
    return path.with_suffix(".zip")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
