"""Objects from configs and configs from objects: the bridge between Python and Hydra YAML.

The library takes plain Python objects everywhere. Where a config is given instead
(a mapping with ``_target_``, as Hydra writes it), it is built by :func:`instantiate_data`,
which builds only allowed targets (``lightning_pinn.allowlist``); where an object is given,
:func:`config_of` records a config for it, so that checkpoints hold plain data and rebuild
their objects. :func:`instantiate` is Hydra's, for the run's own configs (trainer, loggers,
callbacks), which are code.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping

from hydra.errors import InstantiationException
from hydra.utils import get_object
from hydra.utils import instantiate as _hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from lightning_pinn.allowlist import check_targets
from lightning_pinn.errors import ConfigError, at, subkey


def instantiate(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` (for the run's own configs, not data) that raises the error of the failing constructor itself.

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
    """Build ``value`` when it is a config (through :func:`instantiate_data`); return anything else as is.

    ``defaults`` fill parameters the target accepts and the config lacks (e.g. a network's
    ``in_features``).

    Raises:
        ConfigError: when ``value`` is a mapping without ``_target_``, names a target outside the
            allow-list (``lightning_pinn.allowlist``), or its target refuses its arguments.
    """
    if not isinstance(value, (Mapping, DictConfig)):
        return value
    if "_target_" not in value:
        raise ConfigError(f"{key}: expected an object or a config with _target_ but got keys {sorted(value)}")
    return instantiate_data(to_plain(value), key, **defaults)


def build_factory(value: Any, key: str) -> Callable[..., Any]:
    """A callable from a config (built as a partial, through :func:`instantiate_data`) or a callable given directly."""
    if isinstance(value, (Mapping, DictConfig)):
        if "_target_" not in value:
            raise ConfigError(f"{key}: expected a callable or a config with _target_ but got keys {sorted(value)}")
        return instantiate_data({**to_plain(value), "_partial_": True}, key)
    if not callable(value):
        raise ConfigError(f"{key}: expected a callable or a config with _target_ but got {value!r}")
    return value


SPECIAL_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")
"""The keys of a config node that are not arguments (Hydra's meaning; ``_convert_`` is accepted and has no effect,
since data is plain already)."""


def instantiate_data(config: Any, key: str, **defaults: Any) -> Any:
    """Build plain data (mappings with ``_target_``, at any depth) whose every target is allowed.

    The whole tree is checked first (``lightning_pinn.allowlist.check_targets``), so nothing is
    imported or called unless every target in it is allowed. Then each ``_target_`` node is built
    bottom-up with its arguments, as ``hydra.utils.instantiate`` would, honouring ``_args_``,
    ``_partial_`` and ``_recursive_``; a class may name arguments it builds itself, after checking
    the others, in ``builds_own_arguments`` (``Problem`` checks its parameters before it builds a
    reference that uses them). Hydra's own ``instantiate`` is not used for data: it resolves
    ``${...}`` interpolations inside the data (a resolver can read the environment or return new
    ``_target_`` nodes after the check) and imports any target it is given.

    Raises:
        ConfigError: for a refused target, an unknown or missing argument (naming the valid ones),
            or a constructor that rejects its arguments; the key says where.
    """
    check_targets(config, key)
    return _construct(config, key, defaults)


def _construct(node: Any, key: str, defaults: Mapping[str, Any] | None = None) -> Any:
    if isinstance(node, (list, tuple)):
        return [_construct(value, f"{key}[{k}]") for k, value in enumerate(node)]
    if not isinstance(node, Mapping):
        return node
    if "_target_" not in node:
        return {name: _construct(value, subkey(key, name)) for name, value in node.items()}
    special = [k for k in node if isinstance(k, str) and k.startswith("_") and k.endswith("_") and len(k) > 2]
    unknown = sorted(set(special) - set(SPECIAL_KEYS))
    if unknown:
        raise ConfigError(at(key, f"unknown special keys {unknown}; expected keys among {sorted(SPECIAL_KEYS)}"))
    args = node.get("_args_", [])
    if not isinstance(args, (list, tuple)):
        raise ConfigError(at(subkey(key, "_args_"), f"expected a list of positional arguments but got {args!r}"))
    kwargs = {name: value for name, value in node.items() if name not in SPECIAL_KEYS}
    target = node["_target_"]
    obj = get_object(target)
    if node.get("_recursive_", True):
        own = getattr(obj, "builds_own_arguments", ())
        args = [_construct(value, f"{subkey(key, '_args_')}[{k}]") for k, value in enumerate(args)]
        kwargs = {name: value if name in own else _construct(value, subkey(key, name)) for name, value in kwargs.items()}
    parameters = _parameters(obj)
    if parameters is not None:
        names = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise ConfigError(at(key, f"unknown keys {unknown}; expected keys among {sorted(names)}"))
        kwargs.update({k: v for k, v in (defaults or {}).items() if k not in kwargs and k in names})
        required = [p.name for p in parameters[len(args):] if p.default is p.empty
                    and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        missing = [name for name in required if name not in kwargs]
        if missing and not node.get("_partial_", False):
            raise ConfigError(at(key, f"missing keys {missing} for {target}"))
    if node.get("_partial_", False):
        return functools.partial(obj, *args, **kwargs)
    try:
        return obj(*args, **kwargs)
    except ConfigError as err:
        raise err.within(key) from err
    except (TypeError, ValueError) as err:
        raise ConfigError(at(key, f"{target} refused its arguments: {err}")) from err


def _parameters(obj: Any) -> list[inspect.Parameter] | None:
    """The parameters of a callable, or None when it takes any keyword (``**kwargs``) or has no signature."""
    try:
        parameters = list(inspect.signature(obj).parameters.values())
    except (ValueError, TypeError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return parameters


def config_of(value: Any) -> Any:
    """A plain-data config for ``value``, or ``None`` when it has none.

    Configs pass through; objects with a ``to_config()`` method (the library's protocol) give
    theirs; ``functools.partial`` of an importable callable becomes a ``_partial_`` config.
    """
    if value is None or isinstance(value, (Mapping, DictConfig)):
        return to_plain(value)
    if callable(getattr(value, "to_config", None)):
        try:
            return value.to_config()
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
