"""Model registry: `@register_model("name")` on a Model subclass in any module of competition.models
(imported on first lookup); `build_model` rejects undeclared params and wrongly typed values."""
from __future__ import annotations

from typing import Any

from competition.core.log import UserError
from competition.core.overrides import did_you_mean
from competition.core.plugins import import_submodules
from competition.models.base import Model

_MODELS: dict[str, type[Model]] = {}


class ParamError(UserError, ValueError):
    """A model parameter the model does not declare, or of the wrong type."""


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


def model_class(name: str) -> type[Model]:
    _load_all()
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}{did_you_mean(name, _MODELS)}; known: {sorted(_MODELS)}")
    return _MODELS[name]


def _expected_types(default: Any) -> tuple[type, ...] | None:
    """The types a value may have, read from the declared default (None: any)."""
    if default is None:
        return None
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, float):
        return (int, float)
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    return (type(default),)


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    """isinstance, except that a bool is no int or float (YAML `true` for `epochs` is a slip)."""
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def check_params(name: str, params: dict[str, Any], source: str | None = None) -> None:
    """Raise ParamError naming `source` (e.g. the config file) and the key for any parameter of model
    `name` that it does not declare, or whose value's type does not fit the declared one."""
    cls = model_class(name)
    where = f"{source}: " if source else ""
    if not isinstance(params, dict):
        raise ParamError(f"{where}params of model {name!r} must be a mapping, got {type(params).__name__}")
    defaults = cls.param_defaults()
    for key, value in params.items():
        if key not in defaults:
            raise ParamError(f"{where}unknown param {key!r} for model {name!r}{did_you_mean(key, defaults)}; "
                             f"known: {', '.join(sorted(defaults))}")
        types = cls.param_types.get(key, _expected_types(defaults[key]))
        if types is not None and not _fits(value, types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ParamError(f"{where}param {key!r} of model {name!r} must be {want}, "
                             f"got {type(value).__name__} {value!r}")


def build_model(name: str, params: dict[str, Any], n_targets: int, seed: int = 42, task: Any = None,
                source: str | None = None) -> Model:
    """A fresh model; `source` (the config's name or path) is named in parameter errors."""
    check_params(name, params, source)
    return _MODELS[name](params, n_targets, seed, task=task)
