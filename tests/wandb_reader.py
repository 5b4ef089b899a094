"""Reads an offline W&B run back (run-*.wandb), so tests can check what a fold run or blend logged."""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LoggedRun:
    name: str = ""
    group: str = ""
    job_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    complete: bool = False  # the exit record is written: wandb writes offline runs asynchronously


def _records(blob: bytes) -> list[bytes]:
    """Payloads of a .wandb file: a 7-byte header, then LevelDB-log blocks of 32 KiB whose records are
    crc32 (4) | length (2) | type (1: full, 2: first, 3: middle, 4: last) | data."""
    block, pos, out, part = 32768, 7, [], b""
    while pos + 7 <= len(blob):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", blob[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        data = blob[pos + 7:pos + 7 + length]
        if len(data) < length:  # the writer is mid-record: stop at the last whole one
            break
        pos += 7 + length
        if kind == 1:
            out.append(data)
        elif kind == 2:
            part = data
        elif kind == 3:
            part += data
        elif kind == 4:
            out.append(part + data)
    return out


def read_offline_run(run_dir: Path | str) -> LoggedRun:
    """Config, history rows and summary recorded in an offline run directory's run-*.wandb file."""
    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb in {run_dir}")
    run = LoggedRun()
    for payload in _records(files[0].read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group, run.job_type = rec.run.display_name, rec.run.run_group, rec.run.job_type
            for item in rec.run.config.update:
                run.config[item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                run.config[item.key] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            for item in rec.summary.update:
                run.summary["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
        elif kind == "exit":
            run.complete = True
    return run
