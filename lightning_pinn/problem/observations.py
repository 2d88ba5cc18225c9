"""Observations from files: ``.npz``, ``.csv`` and ``.mat`` with one named column per coordinate and field."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lightning_pinn.errors import ConfigError


def load_observations(path: str | Path, coords: Sequence[str], fields: Sequence[str],
                      key: str = "data") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read observation points and observed field values from a file.

    The file holds one 1-D column per name: every coordinate, and one or more fields (the
    observed ones). ``.npz``: arrays by name; ``.csv``: a header row of names; ``.mat``:
    variables by name (``(n,)``, ``(n, 1)`` or ``(1, n)``).

    Returns:
        ``(points (n, len(coords)), {field: (n,)})`` in float64, fields in the problem's order.

    Raises:
        ValueError: naming ``key`` when the file is missing or unreadable, a column is neither a
            coordinate nor a field, a coordinate or every field is missing, columns differ in
            length, or a value is not finite.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}: no observation file at {str(path)!r} (relative paths start at {str(Path.cwd())!r})")
    columns = _read_columns(path, key)
    unknown = [name for name in columns if name not in coords and name not in fields]
    if unknown:
        raise ConfigError(f"{key}: {path.name} has columns {unknown} that are neither coordinates {list(coords)} "
                         f"nor fields {list(fields)}")
    missing = [name for name in coords if name not in columns]
    if missing:
        raise ConfigError(f"{key}: {path.name} lacks the coordinate column(s) {missing}; it has {sorted(columns)}")
    observed = [name for name in fields if name in columns]
    if not observed:
        raise ConfigError(f"{key}: {path.name} has no column for any field {list(fields)}; it has {sorted(columns)}")
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ConfigError(f"{key}: {path.name} has columns of different lengths {lengths}")
    for name, column in columns.items():
        if not np.all(np.isfinite(column)):
            raise ConfigError(f"{key}: {path.name} column {name!r} holds non-finite values")
    points = np.stack([columns[name] for name in coords], axis=1)
    return points, {name: columns[name] for name in observed}


def _read_columns(path: Path, key: str) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path) as archive:
                raw = {name: archive[name] for name in archive.files}
        elif suffix == ".csv":
            table = np.genfromtxt(path, delimiter=",", names=True, dtype=np.float64)
            raw = {name: table[name] for name in table.dtype.names}
        elif suffix == ".mat":
            from scipy.io import loadmat

            raw = {name: value for name, value in loadmat(path).items() if not name.startswith("__")}
        else:
            raise ConfigError(f"{key}: {path.name}: expected a .npz, .csv or .mat file")
    except ValueError:
        raise
    except Exception as err:
        raise ConfigError(f"{key}: cannot read {str(path)!r}: {err}") from err
    columns = {}
    for name, value in raw.items():
        array = np.atleast_1d(np.asarray(value, dtype=np.float64))  # a file of one row reads as scalars
        if array.ndim == 2 and 1 in array.shape:
            array = array.ravel()
        if array.ndim != 1:
            raise ConfigError(f"{key}: {path.name} column {name!r} has shape {array.shape}; expected one value "
                             "per observation (flatten gridded data into columns first)")
        columns[name] = array
    return columns
