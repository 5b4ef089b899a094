"""The embedded default dataset of a task, generated into the work directory on first use; prints its
root as the last line (scripts/prepare.sh reads it)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from competition.core.log import command, parse_and_log
from competition.data.contract import DataError
from competition.data.task import Task, add_task_argument, get_task


def ensure_embedded(task: Task, workdir: Path | None = None, jobs: int = 2, size: int | None = None) -> Path:
    """The task's embedded dataset root, generated (or completed, if a run was killed) when it does not
    load."""
    root = task.workdir(workdir).embedded_data
    try:
        task.load(root)
    except DataError:
        task.generate(root, jobs, size)
        task.load(root)
    return root


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--size", type=int, default=None, help="clips (eri) or videos (va, expr); default: the generator's")
    add_task_argument(ap)
    a = parse_and_log(ap, argv)
    print(ensure_embedded(get_task(a.task), a.workdir, a.jobs, a.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
