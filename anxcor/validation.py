"""Small shared checks for public arguments (numbers, positivity), raising ConfigError."""

from __future__ import annotations

import math
import numbers

from .errors import ConfigError

__all__ = ["is_number", "require_positive", "as_float"]


def is_number(value) -> bool:
    """True for real numbers (Python or numpy, ints or floats), False for bools and the rest."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_float(name: str, value, owner: str) -> float:
    """``value`` as a finite Python float, or a ConfigError naming ``name``."""
    if not is_number(value) or not math.isfinite(float(value)):
        raise ConfigError(f"{owner} needs {name} to be a finite number, got {value!r}")
    return float(value)


def require_positive(name: str, value, owner: str) -> float:
    """``value`` as a Python float when it is a number > 0, else a ConfigError naming ``name``."""
    number = as_float(name, value, owner)
    if not number > 0:
        raise ConfigError(f"{owner} needs {name} > 0, got {value!r}")
    return number


def result_variable(result, variable, owner: str):
    """The DataArray to work on: ``result`` itself, or its ``variable`` (default the first).

    ``result`` is a result Dataset or one of its DataArrays; anything else, a Dataset without
    data variables or an unknown ``variable`` raises ConfigError naming ``owner``.

    Returns
    -------
    tuple
        The DataArray and its name.
    """
    import xarray as xr

    if isinstance(result, xr.DataArray):
        return result, result.name
    if not isinstance(result, xr.Dataset):
        raise ConfigError(f"{owner}: expected an xarray Dataset or DataArray (a result of process), got {type(result).__name__}")
    names = list(result.data_vars)
    if not names:
        raise ConfigError(f"{owner}: the Dataset has no data variables")
    if variable is None:
        return result[names[0]], names[0]
    if variable not in result.data_vars:
        raise ConfigError(f"{owner}: no variable {variable!r} in the result; it has {names}")
    return result[variable], variable
