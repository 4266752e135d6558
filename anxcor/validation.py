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
