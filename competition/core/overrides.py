"""The one parser of dotted command-line overrides (`--set key.sub=value`), for experiment configs,
extractor parameters and tuning alike."""
from __future__ import annotations

import yaml


class ConfigError(ValueError):
    pass


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
