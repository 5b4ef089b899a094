"""Command line: extract features of a dataset into the work directory's feature store (docs/FEATURES.md).
Reruns skip stored clips; failed clips are listed in <store>/failures.csv; `faces` runs first."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from competition.core.log import command, parse_and_log
from competition.core.overrides import ConfigError, apply_override
from competition.data.contract import normalise_id
from competition.features.registry import list_extractors
from competition.features.store import extract
from competition.data.task import add_dataset_arguments, open_dataset

log = logging.getLogger(__name__)
# `--extractors default`: one decode of each video (faces; pose reuses its cache) plus cheap audio.
DEFAULT_EXTRACTORS: tuple[str, ...] = ("faces", "pose", "egemaps", "mfcc")
_FIRST = ("faces",)  # producers of caches that other extractors read


def parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """['visual.model=resnet18', 'faces.size=224'] -> {'visual': {'model': 'resnet18'}, 'faces': {'size': 224}}
    Values are parsed as YAML (numbers, booleans, lists, {dicts}), as every override is."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "." not in item.partition("=")[0]:
            raise ConfigError(f"--set expects EXTRACTOR.PARAM=VALUE, got {item!r}")
        apply_override(out, item)
    return out


def build_specs(names: list[str], sets: dict[str, dict[str, Any]]) -> list[str | dict]:
    names = [n for name in names for n in (DEFAULT_EXTRACTORS if name == "default" else (name,))]
    unknown = [n for n in [*names, *sets] if n not in list_extractors()]
    if unknown:
        raise ConfigError(f"unknown extractor(s) {unknown}; known: {list_extractors()}")
    stray = [n for n in sets if n not in names]
    if stray:
        raise ConfigError(f"--set for extractor(s) {stray} that are not in --extractors")
    ordered = sorted(dict.fromkeys(names), key=lambda n: 0 if n in _FIRST else 1)
    return [{"name": n, "params": sets[n]} if n in sets else n for n in ordered]


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m competition.features.extract", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extractors", nargs="+", default=[], metavar="NAME",
                    help=f"extractor names, or 'default' for {' '.join(DEFAULT_EXTRACTORS)}")
    ap.add_argument("--jobs", type=int, default=1, help="parallel clips (joblib)")
    ap.add_argument("--ids", nargs="+", default=None, help="only these clip ids")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="EXTRACTOR.PARAM=VALUE")
    ap.add_argument("--list", action="store_true", help="list the extractors and exit")
    ap.add_argument("--no-progress", action="store_true")
    add_dataset_arguments(ap)  # features go to WORKDIR/features (frame tasks: WORKDIR/tasks/<family>/features)
    args = parse_and_log(ap, argv)
    if args.list:
        from competition.features.registry import get_extractor
        for name in list_extractors():
            ex = get_extractor(name)
            print(f"{name:14s} {ex.kind:8s} {ex.dtype:8s} {ex.description}")
        return 0
    if args.data is None or not args.extractors:
        ap.error("--data and --extractors are required (or --list)")
    specs = build_specs(args.extractors, parse_sets(args.sets))
    _, wd, dataset = open_dataset(args, check_media=False)  # missing media become failure rows
    dataset, root = dataset.units, wd.features
    ids = None
    if args.ids:
        ids = [normalise_id(i) for i in args.ids]
        missing = [i for i in ids if i not in dataset.table.index]
        if missing:
            ap.error(f"ids not in the dataset {args.data}: {missing}")
    for r in extract(dataset, specs, root, ids=ids, jobs=args.jobs, progress=not (args.no_progress or args.quiet)):
        if not r.done + r.failed:  # extraction logs the stores it worked on
            log.info("features %s: all %d clips already stored -> %s", r.key, r.skipped, root / r.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
