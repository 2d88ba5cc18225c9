"""The errors a user's input can cause, and the errors that stop a training run.

``ConfigError`` is bad input: a config value, an expression, a data file, a checkpoint. Its
message starts with the config key (``problem.params.nu: expected a finite number but got
'abc'``), so ``train.py`` prints it as one line. ``TrainingFailure`` stops a run whose
numbers went wrong (non-finite or diverged loss); it names the last good checkpoint.
"""

from __future__ import annotations

import re

_KEYED = re.compile(r"[A-Za-z_][\w.\[\]]*: ")


class ConfigError(ValueError):
    """Bad input; the message is ``<key>: <what is wrong>; <what is valid>``.

    A ``ValueError``, so code that catches those keeps working.

    Examples:
        >>> raise ConfigError("params.nu: expected a finite number but got 'abc'")
        Traceback (most recent call last):
        ...
        lightning_pinn.errors.ConfigError: params.nu: expected a finite number but got 'abc'
    """

    def within(self, prefix: str) -> ConfigError:
        """The same error with its key placed under ``prefix``: ``within("problem")`` turns
        ``params.nu: ...`` into ``problem.params.nu: ...``; a message that starts with no key gets
        ``problem: ...``; a prefix ending in ``:`` (a file) is followed by a space instead of a dot."""
        message = str(self)
        if not _KEYED.match(message):
            joined = at(prefix, message)
        else:
            joined = subkey(prefix, message)
        error = type(self)(joined)
        error.__cause__ = self.__cause__
        return error


def subkey(key: str, name: object) -> str:
    """The key of ``name`` inside ``key``: ``problem.params``; inside a file's key (which ends in ``:``),
    ``path/to/file.yaml: params``."""
    return f"{key} {name}" if key.endswith(":") else f"{key}.{name}"


def at(key: str, message: str) -> str:
    """``<key>: <message>``, where a file's key already ends in ``:``."""
    return f"{key} {message}" if key.endswith(":") else f"{key}: {message}"


class TrainingFailure(RuntimeError):
    """A training run stopped because its numbers went wrong; the message says why and what to resume from."""


class NonFiniteLossError(TrainingFailure):
    """A loss term became NaN or infinite; the message names the term and the step."""


class DivergenceError(TrainingFailure):
    """The loss stayed far above its best value for too long (see ``lightning_pinn.lightning.divergence``)."""
