"""Experiment configs: one YAML per experiment in configs/ (`base:` variants, `${VAR}` in feature
parameters), `--set key.sub=value` overrides, the resolved config dumped into the experiment directory.
More: docs/PIPELINE.md, "Experiment configs: config.py"."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from competition.core.overrides import ConfigError, apply_override, did_you_mean  # noqa: F401  (re-exported)
from competition.core.paths import CONFIG_DIR
from competition.models.registry import ParamError, check_params, list_models, model_class

REQUIRED = ("model",)
# Every top-level key a config may have (read by run_fold and tune): another key is a typo, refused like a param's.
KEYS = ("name", "description", "default", "task", "model", "features", "params", "seed", "seeds", "search_space",
        "subject_norm", "window", "train_stride")


_ENV_VAR = re.compile(r"\$\{(\w+)\}")


def expand_env(node: Any) -> Any:
    """`${VAR}` in every string of a nested structure -> the value of VAR ('' when unset)."""
    if isinstance(node, str):
        return _ENV_VAR.sub(lambda m: os.environ.get(m.group(1), ""), node)
    if isinstance(node, list):
        return [expand_env(v) for v in node]
    if isinstance(node, dict):
        return {k: expand_env(v) for k, v in node.items()}
    return node


def config_path(name_or_path: str | Path, tuned: Path | None = None) -> Path:
    """A config file by path, or by name in configs/ or `tuned` (the work directory's tuned configs)."""
    p = Path(name_or_path)
    folders = [CONFIG_DIR, *([tuned] if tuned else [])]
    found = [p] if p.suffix in (".yaml", ".yml") and p.exists() else [f / f"{p}.yaml" for f in folders]
    for hit in (f for f in found if f.exists()):
        return hit
    known = sorted(x.stem for folder in folders for x in folder.glob("*.yaml"))
    raise ConfigError(f"no config {str(name_or_path)!r}{did_you_mean(str(name_or_path), known)} (looked for {p} and "
                      f"NAME.yaml in {', '.join(map(str, folders))}); known: {known}")


def _merged(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The config file as written, with its `base` (if any) resolved."""
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    if "base" not in cfg:
        return cfg
    base = config_path(cfg.pop("base"))
    if base in seen + (path,):
        raise ConfigError(f"{path}: `base` chain loops back to {base}")
    own = ("description", "default")  # a variant says itself what it is and whether it runs by default
    return _merged({k: v for k, v in read_yaml(base, seen + (path,)).items() if k not in own}, cfg)


def load_config(name_or_path: str | Path, overrides: list[str] | None = None, tuned: Path | None = None,
                task: str | None = None) -> dict[str, Any]:
    """The config (a path, or a name in configs/ or `tuned`: config_path) with the overrides applied,
    validated: its top-level keys (KEYS), its task (and that it is `task`), its model and the model's params."""
    path = config_path(name_or_path, tuned)
    cfg = read_yaml(path)
    cfg.setdefault("name", path.stem)
    cfg.setdefault("features", [])
    cfg.setdefault("params", {})
    cfg.setdefault("seed", 42)
    cfg.setdefault("task", "eri")
    for item in overrides or []:
        apply_override(cfg, item)
    cfg["features"] = expand_env(cfg["features"])
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ConfigError(f"{path}: missing key(s) {missing}")
    for key in cfg:
        if key not in KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}{did_you_mean(key, KEYS)}; known: {', '.join(KEYS)}")
    from competition.data.task import TASKS
    if cfg["task"] not in TASKS:
        raise ConfigError(f"{path}: task {cfg['task']!r} is not one of {sorted(TASKS)}")
    if task and cfg["task"] != task:
        raise ConfigError(f"{path}: config for task {cfg['task']!r}, not {task!r}; pass --task {cfg['task']}")
    try:
        check_params(cfg["model"], cfg["params"], source=str(path))
    except (KeyError, ParamError) as exc:  # an unknown model, or an unknown / mistyped parameter
        raise ConfigError(exc.args[0] if isinstance(exc, ParamError) else f"{path}: {exc.args[0]}") from exc
    return cfg


def config_hash(cfg: dict, selects: bool | None = None) -> str:
    """Identity of what an experiment computes (name, tuning ranges, flags excluded; issue 24's selection in:
    `selects`, whether the model chooses on validation data, is asked of the model registry when not given)."""
    core = {k: v for k, v in cfg.items() if k not in ("name", "search_space", "default", "description")}
    if selects_on_validation(cfg) if selects is None else selects:
        core["selection"] = "inner split + refit"
    return hashlib.sha1(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:12]


def selects_on_validation(cfg: dict) -> bool:
    return cfg["model"] in list_models() and model_class(cfg["model"]).selects_on_validation


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)


def default_experiments(task: str = "eri") -> list[str]:
    """The task's configs flagged `default: true` run when run_fold is given no experiment."""
    names = []
    for p in sorted(CONFIG_DIR.glob("*.yaml")):
        cfg = read_yaml(p)
        if cfg.get("default") and cfg.get("task", "eri") == task:
            names.append(p.stem)
    return names
