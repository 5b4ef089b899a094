"""Registries fill themselves by importing every module of their package once (so a new model or
extractor is one new module); this is that import."""
from __future__ import annotations

import functools
import importlib
import pkgutil


@functools.cache
def import_submodules(package: str, skip: frozenset[str] = frozenset()) -> None:
    pkg = importlib.import_module(package)
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in skip:
            importlib.import_module(f"{package}.{mod.name}")
