"""Stacking of windowed correlations.

The linear stack (the mean over windows) is accumulated in the frequency domain while the
windows of a read span are correlated, so it costs one inverse FFT per pair and span.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Stack"]

_METHODS = ("linear",)


@dataclass(frozen=True, kw_only=True)
class Stack:
    """How windows are combined.

    Parameters
    ----------
    method
        ``'linear'``: the mean of the windows that have data for a pair and channel pair.
    """

    method: str = "linear"

    def __post_init__(self):
        if self.method not in _METHODS:
            raise ConfigError(f"Stack method must be one of {_METHODS}, got {self.method!r}")

    def get_params(self) -> dict:
        """The constructor arguments."""
        return {"method": self.method}
