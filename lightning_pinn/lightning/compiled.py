"""``torch.compile`` of a module's loss terms: the options, one compiled function per device."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from lightning_pinn.config import to_plain
from lightning_pinn.errors import ConfigError


class CompiledLoss:
    """Calls ``fn`` through ``torch.compile`` when compiling is on, else directly.

    Compiled on first use for each device. On CPU without options of your own, inductor's C++
    wrapper is used (it calls the generated kernels without Python in between), unless
    ``repeated_backward`` says the loss is differentiated more than once per graph (a balancer
    that takes per-term gradients), which neither the C++ wrapper nor aot_autograd's donated
    buffers support; those are then turned off for the process. Dynamo's ``recompile_limit`` is
    raised to 64, since every module compiles the same method.

    Args:
        fn: the function to compile (a module's ``loss_terms``).
        options: ``False``/``None`` (eager), ``True``, or a mapping of ``torch.compile`` options such as
            ``{"mode": "reduce-overhead"}``.
        repeated_backward: whether the result is differentiated more than once (read when compiling).

    Raises:
        ConfigError: for options that are neither a boolean nor a mapping.
    """

    def __init__(self, fn: Callable[..., Any], options: Any, repeated_backward: Callable[[], bool]):
        if options is not False and options is not None and options is not True \
                and not isinstance(to_plain(options), Mapping):
            raise ConfigError(f"compile: expected true, false or a mapping of torch.compile options like "
                              f"{{mode: reduce-overhead}} but got {options!r}")
        self.fn = fn
        self.options: dict[str, Any] | None = None if options in (False, None) else (
            {} if options is True else dict(to_plain(options)))
        self.repeated_backward = repeated_backward
        self._compiled: dict[str, Callable[..., Any]] = {}

    @property
    def enabled(self) -> bool:
        """Whether calls go through ``torch.compile``."""
        return self.options is not None

    def __call__(self, device: str, *args: Any) -> Any:
        """``fn(*args)``, compiled for ``device`` (``"cpu"``, ``"cuda"``) when compiling is on."""
        if self.options is None:
            return self.fn(*args)
        if device not in self._compiled:
            dynamo_config = torch._dynamo.config
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
            repeated = self.repeated_backward()
            # a second backward through one graph: the C++ wrapper returned wrong gradients and donated buffers
            # refused it (torch 2.13); aot_autograd reads the flag when compiling and at each backward
            if repeated:
                torch._functorch.config.donated_buffer = False
            cpp_wrapper = device == "cpu" and not repeated
            options = self.options or ({"options": {"cpp_wrapper": True}} if cpp_wrapper else {})
            self._compiled[device] = torch.compile(self.fn, **{"dynamic": False, **options})
        return self._compiled[device](*args)
