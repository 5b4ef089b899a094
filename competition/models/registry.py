"""Model registry: `@register_model("name")` on a Model subclass in any module of competition.models.
Modules are imported on first lookup, so a new model is its module plus a config in configs/."""
from __future__ import annotations

from typing import Any

from competition.models.base import Model
from competition.core.plugins import import_submodules

_MODELS: dict[str, type[Model]] = {}


def register_model(name: str):
    def deco(cls: type[Model]) -> type[Model]:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = cls
        cls.registry_name = name
        return cls
    return deco


def _load_all() -> None:
    import_submodules("competition.models", frozenset({"registry", "base"}))


def list_models() -> list[str]:
    _load_all()
    return sorted(_MODELS)


def build_model(name: str, params: dict[str, Any], n_targets: int, seed: int = 42, task: Any = None) -> Model:
    _load_all()
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(_MODELS)}")
    return _MODELS[name](params, n_targets, seed, task=task)
