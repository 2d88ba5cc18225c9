"""Objects from configs and configs from objects: the bridge between Python and Hydra YAML.

The library takes plain Python objects everywhere. Where a config is given instead
(a mapping with ``_target_``, as Hydra writes it), it is built with
``hydra.utils.instantiate``; where an object is given, :func:`config_of` records a
config for it, so that checkpoints hold plain data and rebuild their objects.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping

from hydra.errors import InstantiationException
from hydra.utils import get_object
from hydra.utils import instantiate as _hydra_instantiate
from omegaconf import DictConfig, OmegaConf


def instantiate(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that raises the error of the failing constructor itself.

    Hydra wraps every failure in nested ``InstantiationException``s; the message a user
    needs (which config key, which value) is the innermost one, so it is re-raised as is.
    """
    try:
        return _hydra_instantiate(config, **kwargs)
    except InstantiationException as err:
        cause: BaseException = err
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if cause is err:
            raise
        raise cause from None


def to_plain(value: Any) -> Any:
    """A DictConfig/ListConfig as plain dicts and lists (resolved); anything else unchanged."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def is_config(value: Any) -> bool:
    """True for a mapping with a ``_target_`` key."""
    return isinstance(value, (Mapping, DictConfig)) and "_target_" in value


def build(value: Any, key: str, **defaults: Any) -> Any:
    """Instantiate ``value`` when it is a config; ``defaults`` fill parameters the target accepts and the config lacks.

    Raises:
        ValueError: when ``value`` is a mapping without ``_target_``.
    """
    if not isinstance(value, (Mapping, DictConfig)):
        return value
    if "_target_" not in value:
        raise ValueError(f"{key}: expected an object or a config with _target_ but got keys {sorted(value)}")
    value = to_plain(value)
    accepted = _accepted_parameters(value["_target_"])
    fill = {k: v for k, v in defaults.items() if k not in value and (accepted is None or k in accepted)}
    return instantiate(value, **fill)


def build_factory(value: Any, key: str) -> Callable[..., Any]:
    """A callable from a config (instantiated as a partial) or a callable given directly."""
    if isinstance(value, (Mapping, DictConfig)):
        if "_target_" not in value:
            raise ValueError(f"{key}: expected a callable or a config with _target_ but got keys {sorted(value)}")
        return instantiate(to_plain(value), _partial_=True)
    if not callable(value):
        raise ValueError(f"{key}: expected a callable or a config with _target_ but got {value!r}")
    return value


def config_of(value: Any) -> Any:
    """A plain-data config for ``value``, or ``None`` when it has none.

    Configs pass through; objects with a ``config()`` or ``to_config()`` method give
    theirs; ``functools.partial`` of an importable callable becomes a ``_partial_`` config.
    """
    if value is None or isinstance(value, (Mapping, DictConfig)):
        return to_plain(value)
    for method in ("to_config", "config"):
        if callable(getattr(value, method, None)):
            try:
                return getattr(value, method)()
            except ValueError:
                return None
    if isinstance(value, functools.partial) and not value.args and _importable(value.func):
        return {"_target_": _path(value.func), "_partial_": True, **value.keywords}
    if _importable(value):
        return {"_target_": _path(value), "_partial_": True}
    return None


def _path(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _importable(obj: Any) -> bool:
    if not (inspect.isfunction(obj) or inspect.isclass(obj)) or "<" in obj.__qualname__:
        return False
    try:
        return get_object(_path(obj)) is obj
    except Exception:
        return False


def _accepted_parameters(target: str) -> set[str] | None:
    try:
        signature = inspect.signature(get_object(target))
    except (ValueError, TypeError, ImportError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return set(signature.parameters)
