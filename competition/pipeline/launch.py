"""Run feature extraction and the (experiment, fold) grid as Ray tasks, locally or on a cluster (--address),
each in a fresh worker process running the scripts' own code, so finished folds are skipped and a dead
task is retried and resumes (docs/SCALE_OUT.md)."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from competition.core.io import write_json
from competition.core.log import command, parse_and_log
from competition.data.task import add_dataset_arguments, get_task
from competition.features.store import extract
from competition.folds import n_folds_of, read_folds
from competition.pipeline.config import default_experiments, load_config
from competition.pipeline.run_fold import run_fold

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    kind: str                    # "extract" | "fold"
    name: str                    # feature shard or experiment
    part: int                    # shard or fold index
    status: str = "ok"           # ok | failed
    error: str = ""
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)


def _load(task_name: str, data: str | None, workdir: str | None):
    task = get_task(task_name)
    wd = task.workdir(workdir, data)
    return task, wd, task.load(data or wd.embedded_data, check_media=False)


def extract_shard(task_name: str, data: str | None, workdir: str | None, specs: list, ids: list[str]) -> dict:
    """One shard of clips through every feature spec (the store skips clips already stored)."""
    _, wd, ds = _load(task_name, data, workdir)
    reports = extract(ds.units, specs, wd.features, ids=ids, jobs=1, progress=False)
    return {"computed": sum(r.done for r in reports), "failed": sum(r.failed for r in reports)}


def import_ray():
    """The ray module, or an error that says how to install it (it is in requirements-dev.txt)."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("the Ray launcher needs ray, which the demo's set-up leaves out: run "
                          "`bash scripts/setup.sh dev` (or pip install -r requirements-dev.txt)") from exc
    return ray


def fold_job(task_name: str, data: str | None, workdir: str | None, cfg: dict, k: int, no_wandb: bool) -> dict:
    """Fold k of one experiment, exactly as `run_fold --fold k` trains it (skipped when already done)."""
    _, wd, ds = _load(task_name, data, workdir)
    metrics = run_fold(cfg, k, ds, wd, jobs=1, progress=False, no_wandb=no_wandb)
    return {"finalized": bool(metrics)}


def _run_all(remote, calls: list[tuple[JobResult, tuple]]) -> list[JobResult]:
    """Submit every call, collect as they finish; an exception (after Ray's retries of dead workers)
    marks its job failed and the others go on."""
    ray = import_ray()

    started = time.perf_counter()
    pending = {remote.remote(*args): job for job, args in calls}
    done: list[JobResult] = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        try:
            job.result = ray.get(ready[0])
        except Exception as exc:  # RayTaskError (raised in the task) or WorkerCrashedError (retries used up)
            job.status, job.error = "failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"
            log.error("%s %s part %d failed: %s", job.kind, job.name, job.part, job.error)
        job.seconds = round(time.perf_counter() - started, 2)
        done.append(job)
        log.info("[%d/%d] %s %s part %d: %s", len(done), len(calls), job.kind, job.name, job.part, job.status)
    return done


def launch(names: list[str | dict], task_name: str = "eri", data: Path | None = None, workdir: Path | None = None,
           folds: list[int] | None = None, overrides: list[str] | None = None, address: str | None = None,
           cpus: int | None = None, cpus_per_task: float = 1, gpus_per_task: float = 0, shards: int | None = None,
           max_retries: int = 2, no_wandb: bool = False,
           worker_setup: Callable[[], None] | None = None) -> list[JobResult]:
    """Extraction shards, then every (experiment, fold) of the named (or given, as dicts) configs;
    returns what happened to each job and writes it to <workdir>/launch.json. `worker_setup` runs once in
    every worker process before its task (Ray's worker_process_setup_hook), e.g. to register an extractor
    or model defined outside the package."""
    ray = import_ray()

    task, wd, ds = _load(task_name, str(data) if data else None, str(workdir) if workdir else None)
    fold_table = read_folds(wd.folds, ds)
    folds = list(range(n_folds_of(fold_table))) if folds is None else folds
    cfgs = [n if isinstance(n, dict) else load_config(n, overrides, wd.tuned, task.name) for n in names]
    specs = [s for c in cfgs for s in c["features"]]
    specs = [s for i, s in enumerate(specs) if s not in specs[:i]]

    runtime_env: dict[str, Any] = {"env_vars": {"WANDB_MODE": "disabled"}} if no_wandb else {}
    if worker_setup is not None:
        runtime_env["worker_process_setup_hook"] = worker_setup
    ray.init(address=address, num_cpus=cpus if address is None else None, include_dashboard=False,
             ignore_reinit_error=True, log_to_driver=False, runtime_env=runtime_env or None)
    try:
        opts = dict(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries)
        args = (task.name, str(data) if data else None, str(wd.root))
        units = list(ds.units.ids)
        n_shards = max(1, min(len(units), shards or int(ray.cluster_resources().get("CPU", 1)) * 2))
        chunks = [units[i::n_shards] for i in range(n_shards)]
        jobs = _run_all(ray.remote(max_calls=1)(extract_shard).options(**opts),
                        [(JobResult("extract", "shard", i), (*args, specs, chunk)) for i, chunk in enumerate(chunks)])
        # Shards write their store manifests concurrently: one pass here rebuilds them from the stored
        # clips (nothing is recomputed) and records every failure in failures.csv.
        extract(ds.units, specs, wd.features, jobs=1, progress=False)
        jobs += _run_all(ray.remote(max_calls=1)(fold_job).options(**opts),
                         [(JobResult("fold", c["name"], k), (*args, c, k, no_wandb)) for c in cfgs for k in folds])
    finally:
        ray.shutdown()
    write_json(wd.base / "launch.json", {"address": address or "local", "jobs": [asdict(j) for j in jobs]})
    return jobs


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", nargs="*", default=None, help="config names or paths (default: default configs)")
    ap.add_argument("--folds", type=int, nargs="*", default=None, help="fold indices (default: all)")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: start a local instance)")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs of the local instance (default: all)")
    ap.add_argument("--cpus-per-task", type=float, default=1)
    ap.add_argument("--gpus-per-task", type=float, default=0)
    ap.add_argument("--shards", type=int, default=None, help="extraction shards (default: 2 per CPU)")
    ap.add_argument("--max-retries", type=int, default=2, help="reruns of a task whose process died")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    ap.add_argument("--no-wandb", action="store_true")
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    names = a.exp or default_experiments(a.task)
    if not names:
        ap.error(f"no --exp given and no {a.task} config is flagged `default: true`")
    jobs = launch(names, a.task, a.data, a.workdir, a.folds, a.overrides, a.address, a.cpus, a.cpus_per_task,
                  a.gpus_per_task, a.shards, a.max_retries, a.no_wandb)
    failed = [j for j in jobs if j.status != "ok"]
    print(f"{len(jobs) - len(failed)}/{len(jobs)} tasks ok" + (f"; failed: {[(j.name, j.part) for j in failed]}"
                                                             if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
