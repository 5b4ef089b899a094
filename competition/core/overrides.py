"""The one parser of dotted command-line overrides (`--set key.sub=value`), for experiment configs,
extractor parameters and tuning alike."""
from __future__ import annotations

import difflib
from typing import Iterable

import yaml

from competition.core.log import UserError


class ConfigError(UserError, ValueError):
    pass


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """' (did you mean 'alpha'?)' for the closest known name, '' when none is close."""
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def apply_override(cfg: dict, item: str) -> None:
    """`params.alpha=3` -> cfg['params']['alpha'] = 3 (value parsed as YAML; an empty value is '')."""
    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"override {item!r} is not key.sub=value")
    node = cfg
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a mapping")
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
