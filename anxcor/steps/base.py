"""The step contract: small objects with explicit parameters and one pure method.

A preprocessing step maps one station-window, a ``(components, samples)`` numpy array at a
known sampling rate, to a new array (and rate). Built-in steps are frozen, keyword-only
dataclasses validated on construction. Users write their own by subclassing
:class:`XArrayProcessor` (and working on a labelled ``xarray.DataArray``) or by wrapping a
plain function in :class:`FunctionStep`.
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ConfigError

__all__ = ["Step", "XArrayProcessor", "FunctionStep", "WindowContext", "as_step", "step_description"]


@dataclass(frozen=True)
class WindowContext:
    """What a step may need to know about the station-window it processes.

    Attributes
    ----------
    station
        ``'NET.STA'``.
    starttime
        Window start, UTC timestamp in seconds.
    components
        Component of each data row (``'Z'``, ``'N'``, ``'E'``).
    channels
        SEED id of the trace behind each row, e.g. ``'XX.S000.00.HHZ'``.
    inventory
        The station's obspy Inventory (coordinates, orientation, response) when known.
    output_dtype
        The precision the pipeline keeps of this step's output: ``float32`` for the last
        step before a single-precision correlation (which casts the step's output to it),
        ``float64`` otherwise. A step may do its final operation in this precision when its
        rounding stays at float32's level (:class:`~anxcor.steps.preprocess.Whiten` does its
        inverse FFT so: about 2e-7 of the peak, against 4e-8 for the cast alone).
    """

    station: str
    starttime: float
    components: tuple[str, ...]
    channels: tuple[str, ...]
    inventory: Any = None
    output_dtype: Any = np.float64


class Step(ABC):
    """Base class of every preprocessing step.

    Subclasses implement :meth:`apply` over plain numpy arrays. Calling a step on an
    ``xarray.DataArray`` with dims ``(component, time)`` and ``attrs['sampling_rate']``
    runs the same kernel and puts the labels back.
    """

    @abstractmethod
    def apply(
        self, data: np.ndarray, sampling_rate: float, context: WindowContext | None = None
    ) -> tuple[np.ndarray, float]:
        """Process ``data`` (..., samples) sampled at ``sampling_rate`` Hz.

        ``context`` describes the station-window (station, channels, start, inventory) for
        steps that need metadata; most steps ignore it. Returns the new array and its
        sampling rate (unchanged unless the step resamples).
        """

    def output_rate(self, sampling_rate: float) -> float:
        """Sampling rate (Hz) of this step's output for an input at ``sampling_rate``."""
        return sampling_rate

    def output_band(self, sampling_rate: float) -> tuple[float, float] | None:
        """Frequencies (Hz) outside which this step's output spectrum is zero, or None.

        When the last preprocessing step declares a band, the correlation keeps only those
        frequencies (``CrossCorrelate(band='auto')``); steps that do not zero any part of
        the spectrum return None (the default).
        """
        return None

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments of this step, as given."""
        if dataclasses.is_dataclass(self):
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        signature = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name in list(signature.parameters)[1:]
            if hasattr(self, name)
        }

    def __call__(self, array: xr.DataArray) -> xr.DataArray:
        """Apply the step to a labelled station-window."""
        rate = _rate_of(array)
        values, new_rate = self.apply(np.asarray(array.values, dtype=np.float64), rate)
        return window_dataarray(values, new_rate, array.coords.get("component"), array.attrs)


class XArrayProcessor(Step):
    """Base class for user-written steps that work on a labelled ``xarray.DataArray``.

    Override :meth:`process`. It receives one station-window with dims
    ``(component, time)`` (``time`` in seconds from the window start), ``attrs`` holding
    ``sampling_rate`` (Hz), ``station`` (``'NET.STA'``), ``starttime`` (UTC timestamp) and
    ``channels`` (SEED ids of the rows), and returns a DataArray of the same layout (change
    ``attrs['sampling_rate']`` if the step resamples).

    Examples
    --------
    >>> class Square(XArrayProcessor):
    ...     def process(self, array):
    ...         return array ** 2
    """

    @abstractmethod
    def process(self, array: xr.DataArray) -> xr.DataArray:
        """Return the processed station-window."""

    def apply(
        self, data: np.ndarray, sampling_rate: float, context: WindowContext | None = None
    ) -> tuple[np.ndarray, float]:
        """Wrap ``data`` in a DataArray (labelled from ``context``), run :meth:`process`, unwrap."""
        if context is None:
            array = window_dataarray(data, sampling_rate)
        else:
            attrs = {"station": context.station, "starttime": context.starttime, "channels": list(context.channels)}
            array = window_dataarray(data, sampling_rate, list(context.components), attrs)
        result = self.process(array)
        if not isinstance(result, xr.DataArray):
            raise ConfigError(
                f"{type(self).__name__}.process must return an xarray.DataArray, "
                f"got {type(result).__name__}"
            )
        return np.asarray(result.values, dtype=np.float64), _rate_of(result, sampling_rate)


class FunctionStep(XArrayProcessor):
    """A step made from a plain function ``f(DataArray) -> DataArray``.

    Parameters
    ----------
    function
        Receives and returns a station-window as described in :class:`XArrayProcessor`.
        It must be importable (a module-level function) to run on a dask cluster.
    """

    def __init__(self, function: Callable[[xr.DataArray], xr.DataArray]):
        if not callable(function):
            raise ConfigError(f"FunctionStep needs a callable, got {type(function).__name__}")
        self.function = function

    def process(self, array: xr.DataArray) -> xr.DataArray:
        """Call the wrapped function."""
        return self.function(array)

    def __repr__(self) -> str:
        name = getattr(self.function, "__qualname__", repr(self.function))
        return f"FunctionStep(function={name})"


def as_step(obj: Step | Callable) -> Step:
    """Return ``obj`` as a :class:`Step`: steps as they are, functions wrapped."""
    if isinstance(obj, Step):
        return obj
    if callable(obj):
        return FunctionStep(obj)
    raise ConfigError(
        f"expected a Step (subclass anxcor.xarray_routines.XArrayProcessor) or a function "
        f"f(DataArray) -> DataArray, got {type(obj).__name__}"
    )


def step_description(step: Any) -> dict[str, Any]:
    """A JSON-friendly description of a step: its class and its parameters."""
    params = {}
    for name, value in step.get_params().items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            params[name] = value
        elif isinstance(value, (tuple, list)):
            params[name] = list(value)
        else:
            params[name] = repr(value)
    cls = type(step)
    return {"step": f"{cls.__module__}.{cls.__qualname__}", "params": params}


def window_dataarray(
    values: np.ndarray, sampling_rate: float, components=None, attrs: dict | None = None
) -> xr.DataArray:
    """Label a ``(components, samples)`` array as a station-window DataArray."""
    n_rows, n_samples = values.shape[-2], values.shape[-1]
    if components is None or len(components) != n_rows:
        components = np.arange(n_rows)
    new_attrs = dict(attrs or {})
    new_attrs["sampling_rate"] = float(sampling_rate)
    return xr.DataArray(
        values,
        dims=("component", "time"),
        coords={"component": np.asarray(components), "time": np.arange(n_samples) / sampling_rate},
        attrs=new_attrs,
    )


def _rate_of(array: xr.DataArray, default: float | None = None) -> float:
    rate = array.attrs.get("sampling_rate", default)
    if rate is None:
        raise ConfigError("a station-window DataArray needs attrs['sampling_rate'] in Hz")
    return float(rate)
