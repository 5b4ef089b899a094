"""Experiment configs: one YAML per experiment in configs/, command-line overrides `key.sub=value`,
and the resolved config dumped into the experiment directory."""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from competition.core.overrides import ConfigError, apply_override  # noqa: F401  (re-exported)
from competition.core.paths import CONFIG_DIR
from competition.models.registry import ParamError, check_params

REQUIRED = ("model",)


def config_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    cand = CONFIG_DIR / f"{name_or_path}.yaml"
    if cand.exists():
        return cand
    known = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"no config {name_or_path!r} (looked for {p} and {cand}); known: {known}")


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    path = config_path(name_or_path)
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    cfg = copy.deepcopy(cfg)
    cfg.setdefault("name", path.stem)
    cfg.setdefault("features", [])
    cfg.setdefault("params", {})
    cfg.setdefault("seed", 42)
    cfg.setdefault("task", "eri")
    for item in overrides or []:
        apply_override(cfg, item)
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ConfigError(f"{path}: missing key(s) {missing}")
    from competition.data.task import TASKS
    if cfg["task"] not in TASKS:
        raise ConfigError(f"{path}: task {cfg['task']!r} is not one of {sorted(TASKS)}")
    try:
        check_params(cfg["model"], cfg["params"], source=str(path))
    except (KeyError, ParamError) as exc:  # an unknown model, or an unknown / mistyped parameter
        raise ConfigError(exc.args[0] if isinstance(exc, ParamError) else f"{path}: {exc.args[0]}") from exc
    return cfg


def config_hash(cfg: dict) -> str:
    """Identity of what an experiment computes (its name, tuning ranges and flags excluded)."""
    core = {k: v for k, v in cfg.items() if k not in ("name", "search_space", "default", "description")}
    return hashlib.sha1(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:12]


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)


def default_experiments(task: str = "eri") -> list[str]:
    """The task's configs flagged `default: true` run when run_fold is given no experiment."""
    names = []
    for p in sorted(CONFIG_DIR.glob("*.yaml")):
        cfg = yaml.safe_load(p.read_text()) or {}
        if cfg.get("default") and cfg.get("task", "eri") == task:
            names.append(p.stem)
    return names
