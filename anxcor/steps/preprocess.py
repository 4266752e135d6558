"""Station-level preprocessing steps.

Each step is a frozen dataclass (validated on construction, ``get_params`` / ``repr`` for
free) around a numpy kernel that works along the last axis, so one call treats all
components of a station-window at once. Frequencies are in Hz, durations in seconds.

Steps that reject a station-window (no instrument response, a transient) raise
:class:`~anxcor.errors.DataError`; the pipeline records the message as the reason the window
was skipped.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import scipy.fft
import scipy.signal
from scipy.ndimage import uniform_filter1d

from ..errors import ConfigError, DataError
from ..validation import is_number
from .base import Step
from .iir import sosfilt_rows
from .rowfft import transform_rows

__all__ = [
    "RemoveMeanTrend",
    "RemoveResponse",
    "Taper",
    "Bandpass",
    "Highpass",
    "Lowpass",
    "Resample",
    "Decimate",
    "TemporalNorm",
    "RejectTransients",
    "Whiten",
    "remove_mean_trend",
    "sos_filtfilt",
    "taper_window",
    "cosine_prefilter",
    "water_level_normalise",
    "whitening_weights",
]

_TINY = 1e-30


def _positive(name: str, value, owner: str) -> None:
    if not is_number(value) or not value > 0:
        raise ConfigError(f"{owner} needs {name} > 0 (a number), got {value!r}")


def _check_band(freqmin, freqmax, owner: str) -> None:
    _positive("freqmin", freqmin, owner)
    _positive("freqmax", freqmax, owner)
    if not freqmin < freqmax:
        raise ConfigError(f"{owner} needs freqmin < freqmax, got freqmin={freqmin}, freqmax={freqmax}")


def _in_range(name: str, value, low: float, high: float, owner: str, *, low_open: bool = False, high_open: bool = True) -> None:
    ok = is_number(value) and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        bounds = f"{low} {'<' if low_open else '<='} {name} {'<' if high_open else '<='} {high}"
        raise ConfigError(f"{owner} needs {bounds}, got {value!r}")


def _check_order(order, owner: str) -> None:
    if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= 12:
        raise ConfigError(f"{owner} order must be an integer in [1, 12], got {order!r}")


def _check_flag(name: str, value, owner: str) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner} {name} must be True or False, got {value!r}")


def _frequency_tuple(name: str, value, length: int, owner: str) -> tuple[float, ...]:
    """``value`` as a tuple of ``length`` finite numbers >= 0 (lists accepted), else ConfigError."""
    if not isinstance(value, (tuple, list)) or len(value) != length or not all(is_number(v) for v in value):
        raise ConfigError(f"{owner} {name} must be a tuple of {length} frequencies in Hz, got {value!r}")
    values = tuple(float(v) for v in value)
    if not all(np.isfinite(v) and v >= 0 for v in values):
        raise ConfigError(f"{owner} {name} frequencies must be finite and >= 0, got {value!r}")
    return values


@dataclass(frozen=True, kw_only=True)
class RemoveMeanTrend(Step):
    """Remove the mean, or the mean and a straight-line trend, from each component.

    Parameters
    ----------
    detrend
        ``'linear'`` (mean and trend, the default) or ``'constant'`` (mean only).
    """

    detrend: str = "linear"

    def __post_init__(self):
        if self.detrend not in ("linear", "constant"):
            raise ConfigError(f"RemoveMeanTrend detrend must be 'linear' or 'constant', got {self.detrend!r}")

    def apply(self, data, sampling_rate, context=None):
        """Detrend along the last axis."""
        return remove_mean_trend(data, linear=self.detrend == "linear"), sampling_rate


def remove_mean_trend(data: np.ndarray, linear: bool = True) -> np.ndarray:
    """Subtract the mean (and, with ``linear``, the least-squares line) along the last axis.

    Closed form over centred sample times, ``slope = sum(t_c x) / sum(t_c^2)``: the same
    numbers as ``scipy.signal.detrend`` (to rounding) at a tenth of its cost.
    """
    data = np.asarray(data, dtype=float)
    detrended = data - data.mean(axis=-1, keepdims=True)
    n_samples = data.shape[-1]
    if linear and n_samples > 1:
        centred = np.arange(n_samples) - 0.5 * (n_samples - 1)
        # einsum and the closed-form sum of squares, not BLAS: its thread start-up costs more here
        slope = np.einsum("...i,i->...", detrended, centred) / (n_samples * (n_samples**2 - 1) / 12.0)
        detrended -= slope[..., None] * centred
    return detrended


_RESPONSE_OUTPUTS = ("DISP", "VEL", "ACC")


def cosine_prefilter(frequencies: np.ndarray, corners: tuple[float, float, float, float]) -> np.ndarray:
    """The cosine pre-filter of response removal: 0 below ``f1``, 1 in ``[f2, f3]``, 0 above ``f4``.

    Between ``f1`` and ``f2`` the weight rises as ``0.5 * (1 - cos(pi (f - f1) / (f2 - f1)))``,
    between ``f3`` and ``f4`` it falls as ``0.5 * (1 + cos(pi (f - f3) / (f4 - f3)))``
    (frequencies in Hz; the same shape as SAC's ``transfer freqlimits``).

    Examples
    --------
    >>> cosine_prefilter(np.array([0.0, 0.15, 1.0, 6.0, 20.0]), (0.1, 0.2, 5.0, 7.0))
    array([0. , 0.5, 1. , 0.5, 0. ])
    """
    f1, f2, f3, f4 = corners
    f = np.asarray(frequencies, dtype=np.float64)
    weights = ((f >= f2) & (f <= f3)).astype(np.float64)
    rising = (f > f1) & (f < f2)
    weights[rising] = 0.5 * (1.0 - np.cos(np.pi * (f[rising] - f1) / (f2 - f1)))
    falling = (f > f3) & (f < f4)
    weights[falling] = 0.5 * (1.0 + np.cos(np.pi * (f[falling] - f3) / (f4 - f3)))
    return weights


def _response_nfft(n_samples: int) -> int:
    """An even, FFT-friendly length >= 2 * n_samples (room against wrap-around)."""
    nfft = scipy.fft.next_fast_len(2 * n_samples, real=True)
    while nfft % 2:
        nfft = scipy.fft.next_fast_len(nfft + 1, real=True)
    return nfft


class _ResponseHandle:
    """A channel's obspy Response, hashed and compared by a key of plain values only.

    The key is ``(seed_id, epoch start, epoch end, digest of the pickled response)``, so equal
    responses met in different Inventory objects (e.g. on dask workers) share cache entries.
    """

    __slots__ = ("key", "response")

    def __init__(self, key: tuple, response: Any):
        self.key = key
        self.response = response

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _ResponseHandle) and other.key == self.key


def _find_response(inventory: Any, seed_id: str, time: float) -> _ResponseHandle:
    """The response of ``seed_id`` at UTC timestamp ``time``, or DataError saying why not."""
    from obspy import UTCDateTime

    when = UTCDateTime(time)

    def missing(reason: str) -> DataError:
        return DataError(f"no instrument response for {seed_id or '(unknown channel)'} at {when.isoformat()}: {reason}")

    if inventory is None:
        raise missing("no inventory for this station (pass inventory= to add_dataset, or give the database a get_inventory())")
    codes = seed_id.split(".")
    if len(codes) != 4:
        raise missing("the channel id is not NET.STA.LOC.CHA")
    network, station, location, channel = codes
    found = None
    for net in getattr(inventory, "networks", ()):
        if net.code != network:
            continue
        for sta in net.stations:
            if sta.code != station:
                continue
            for cha in sta.channels:
                if cha.code == channel and cha.location_code == location and cha.is_active(time=when):
                    found = cha
                    break
    if found is None:
        raise missing("the channel is not in the inventory at that time")
    response = found.response
    if response is None:
        raise missing("the inventory's channel has no response")
    stages = response.response_stages or []
    if not stages:
        raise missing("the response has no stages (only an overall sensitivity, or nothing)")
    if type(stages[0]).__name__ == "PolynomialResponseStage":
        raise missing("polynomial (non-linear) responses are not supported")
    digest = hashlib.blake2b(pickle.dumps(response, protocol=5), digest_size=16).hexdigest()
    end = None if found.end_date is None else float(found.end_date.timestamp)
    start = None if found.start_date is None else float(found.start_date.timestamp)
    return _ResponseHandle((seed_id, start, end, digest), response)


@lru_cache(maxsize=64)
def _deconvolution_filter(
    handle: _ResponseHandle,
    nfft: int,
    sampling_rate: float,
    output: str,
    pre_filt: tuple[float, float, float, float] | None,
    water_level: float | None,
) -> np.ndarray:
    """``pre_filter(f) / response(f)`` on the ``rfft`` grid of ``nfft`` samples (cached, read-only).

    Evaluating a response with evalresp costs far more than the FFTs, and a channel's filter
    is the same for every window of a run; each entry holds ``nfft // 2 + 1`` complex values.
    """
    frequencies = scipy.fft.rfftfreq(nfft, 1.0 / sampling_rate)
    seed_id = handle.key[0]
    try:
        response = np.asarray(
            handle.response.get_evalresp_response_for_frequencies(frequencies, output=output), dtype=np.complex128
        )
    except Exception as exc:  # evalresp raises plain Exceptions
        raise DataError(f"cannot evaluate the instrument response of {seed_id}: {exc}") from None
    amplitude = np.abs(response)
    if water_level is not None:
        level = amplitude.max() * 10.0 ** (-water_level / 20.0)
        low = (amplitude < level) & (amplitude > 0)
        response[low] *= level / amplitude[low]
    inverse = np.zeros_like(response)
    nonzero = response != 0
    inverse[nonzero] = 1.0 / response[nonzero]
    inverse[0] = 0.0  # the mean is not recoverable through an inertial sensor
    if not np.isfinite(inverse).all():
        raise DataError(f"the inverse instrument response of {seed_id} is not finite; give a water_level")
    if pre_filt is not None:
        inverse *= cosine_prefilter(frequencies, pre_filt)
    inverse.flags.writeable = False
    return inverse


@dataclass(frozen=True, kw_only=True)
class RemoveResponse(Step):
    """Remove the instrument response of each row, giving ground motion in metres (per second).

    For each row, the response of its channel (``context.channels``, e.g.
    ``'YA.UV05.00.HHZ'``) valid at the window's start time is taken from
    ``context.inventory`` and evaluated with obspy's evalresp
    (``Response.get_evalresp_response_for_frequencies``) on the frequency grid of an FFT of
    ``nfft >= 2 n`` samples. The record (mean removed and ends tapered when asked) is
    transformed, multiplied by ``pre_filter(f) / response(f)`` and transformed back, then cut
    to its ``n`` samples. This is the algorithm of obspy's ``Trace.remove_response``, done
    for all rows in one FFT; each channel's filter is cached (per response, epoch, ``nfft``,
    rate, output, ``pre_filt`` and ``water_level``), so evalresp runs once per channel and
    run, not once per window. The zero-frequency bin is set to 0.

    A row whose channel has no response (no inventory, the channel or its epoch missing,
    no response stages) makes :meth:`apply` raise :class:`~anxcor.errors.DataError`
    ("no instrument response for NET.STA.LOC.CHA at TIME: why"); the pipeline skips the
    station-window and records that reason. Data are never passed through uncorrected.

    Parameters
    ----------
    output
        ``'DISP'`` (m), ``'VEL'`` (m/s, the default) or ``'ACC'`` (m/s**2).
    pre_filt
        ``(f1, f2, f3, f4)`` in Hz, ``0 <= f1 < f2 <= f3 < f4``: cosine pre-filter applied
        with the deconvolution (see :func:`cosine_prefilter`), or None (none; then noise at
        frequencies where the response is small is amplified, so give a pre-filter or a
        water level).
    water_level
        None (invert the response as it is, the default) or a level in dB below the maximum
        of ``|response|`` on the grid: where ``|response|`` is smaller, it is raised to that
        level (phase kept) before inverting, as obspy's ``water_level``.
    zero_mean
        Remove the mean of each row first (the default).
    taper_fraction
        Fraction of the window tapered in all, half at each end, with a cosine taper
        (:func:`taper_window` type ``'cosine'``) before the FFT, ``0 <= taper_fraction <= 1``
        (0: no taper); 0.05 by default, as obspy.

    Examples
    --------
    >>> RemoveResponse(output="DISP", pre_filt=(0.005, 0.01, 8.0, 10.0))
    RemoveResponse(output='DISP', pre_filt=(0.005, 0.01, 8.0, 10.0), water_level=None, zero_mean=True, taper_fraction=0.05)
    """

    output: str = "VEL"
    pre_filt: tuple[float, float, float, float] | None = None
    water_level: float | None = None
    zero_mean: bool = True
    taper_fraction: float = 0.05

    def __post_init__(self):
        if self.output not in _RESPONSE_OUTPUTS:
            raise ConfigError(f"RemoveResponse output must be one of {_RESPONSE_OUTPUTS}, got {self.output!r}")
        if self.pre_filt is not None:
            corners = _frequency_tuple("pre_filt", self.pre_filt, 4, "RemoveResponse")
            f1, f2, f3, f4 = corners
            if not (f1 < f2 <= f3 < f4):
                raise ConfigError(f"RemoveResponse pre_filt needs f1 < f2 <= f3 < f4 (Hz), got {self.pre_filt!r}")
            object.__setattr__(self, "pre_filt", corners)
        if self.water_level is not None and (not is_number(self.water_level) or not self.water_level >= 0):
            raise ConfigError(f"RemoveResponse water_level must be None or a number of dB >= 0, got {self.water_level!r}")
        _check_flag("zero_mean", self.zero_mean, "RemoveResponse")
        _in_range("taper_fraction", self.taper_fraction, 0.0, 1.0, "RemoveResponse", high_open=False)

    def apply(self, data, sampling_rate, context=None):
        """Deconvolve each row's response; needs ``context.channels`` and ``context.inventory``."""
        if context is None:
            raise DataError("RemoveResponse needs the window's channel ids and inventory (a WindowContext); got none")
        rows = np.atleast_2d(np.asarray(data, dtype=np.float64))
        if len(context.channels) != rows.shape[0]:
            raise DataError(
                f"RemoveResponse got {rows.shape[0]} rows but {len(context.channels)} channel ids for {context.station}"
            )
        if self.pre_filt is not None and self.pre_filt[0] >= 0.5 * sampling_rate:
            raise DataError(
                f"RemoveResponse pre_filt f1={self.pre_filt[0]} Hz is not below the Nyquist frequency "
                f"of data sampled at {sampling_rate} Hz"
            )
        n_samples = rows.shape[-1]
        nfft = _response_nfft(n_samples)
        filters = np.stack(
            [
                _deconvolution_filter(
                    _find_response(context.inventory, seed_id, context.starttime),
                    nfft,
                    float(sampling_rate),
                    self.output,
                    self.pre_filt,
                    self.water_level,
                )
                for seed_id in context.channels
            ]
        )
        if self.zero_mean:
            rows = rows - rows.mean(axis=-1, keepdims=True)
        if self.taper_fraction > 0:
            rows = rows * taper_window(n_samples, 0.5 * self.taper_fraction, "cosine")
        spectrum = scipy.fft.rfft(rows, nfft, axis=-1) * filters
        corrected = scipy.fft.irfft(spectrum, nfft, axis=-1)[..., :n_samples]
        return corrected.reshape(np.shape(data)), sampling_rate


_TAPER_TYPES = ("hann", "cosine", "hamming", "blackman")


def _taper_ramp(x: np.ndarray, taper_type: str) -> np.ndarray:
    """Taper ramp at ``x`` in [0, 1] (0 at the record's end, 1 where the taper stops)."""
    if taper_type == "hann":
        return 0.5 - 0.5 * np.cos(np.pi * x)
    if taper_type == "cosine":
        return np.sin(0.5 * np.pi * x)
    if taper_type == "hamming":
        return 0.54 - 0.46 * np.cos(np.pi * x)
    return 0.42 - 0.5 * np.cos(np.pi * x) + 0.08 * np.cos(2.0 * np.pi * x)  # blackman


def taper_window(n_samples: int, fraction: float, taper_type: str = "hann") -> np.ndarray:
    """A taper of ``n_samples`` samples with ``fraction`` of them tapered at each end.

    The ramps span ``L = min(1, 2 * fraction) * (n_samples - 1) / 2`` samples (as in
    ``scipy.signal.windows.tukey(n_samples, alpha=2 * fraction)``); sample ``k`` of a ramp,
    counted from the record's end, has weight ``w(k / L)`` with

    - ``'hann'``: ``0.5 - 0.5 cos(pi x)`` (the Tukey window, the default);
    - ``'cosine'``: ``sin(pi x / 2)`` (the SAC/obspy "cosine" taper, the square root of Hann);
    - ``'hamming'``: ``0.54 - 0.46 cos(pi x)`` (does not reach 0: 0.08 at the ends);
    - ``'blackman'``: ``0.42 - 0.5 cos(pi x) + 0.08 cos(2 pi x)``.

    When ``L`` is an integer, the ramps are the halves of the symmetric
    ``scipy.signal.windows`` window of the same name and length ``2 L + 1``.

    Examples
    --------
    >>> taper_window(11, 0.5, "hamming")[[0, 5, 10]]
    array([0.08, 1.  , 0.08])
    """
    if taper_type not in _TAPER_TYPES:
        raise ConfigError(f"taper_type must be one of {_TAPER_TYPES}, got {taper_type!r}")
    alpha = min(1.0, 2.0 * fraction)
    if taper_type == "hann":
        return scipy.signal.windows.tukey(n_samples, alpha=alpha)
    ramp_length = alpha * (n_samples - 1) / 2.0
    if ramp_length <= 0:
        return np.ones(n_samples)
    k = np.arange(n_samples)
    x = np.minimum(np.minimum(k, n_samples - 1 - k) / ramp_length, 1.0)
    return _taper_ramp(x, taper_type)


@dataclass(frozen=True, kw_only=True)
class Taper(Step):
    """Taper both ends of each component.

    Parameters
    ----------
    max_percentage
        Fraction of the window tapered at *each* end, ``0 < max_percentage <= 0.5``.
    taper_type
        Shape of the ramps: ``'hann'`` (half a Hann window, i.e. a Tukey window; the
        default), ``'cosine'`` (quarter sine, as SAC/obspy's cosine taper), ``'hamming'``
        or ``'blackman'``; see :func:`taper_window`.

    Examples
    --------
    >>> Taper(max_percentage=0.1, taper_type="cosine")
    Taper(max_percentage=0.1, taper_type='cosine')
    """

    max_percentage: float = 0.05
    taper_type: str = "hann"

    def __post_init__(self):
        _in_range("max_percentage", self.max_percentage, 0.0, 0.5, "Taper", low_open=True, high_open=False)
        if self.taper_type not in _TAPER_TYPES:
            raise ConfigError(f"Taper taper_type must be one of {_TAPER_TYPES}, got {self.taper_type!r}")

    def apply(self, data, sampling_rate, context=None):
        """Multiply by the taper."""
        return data * _cached_taper(data.shape[-1], self.max_percentage, self.taper_type), sampling_rate


@lru_cache(maxsize=16)
def _cached_taper(n_samples: int, fraction: float, taper_type: str) -> np.ndarray:
    """:func:`taper_window`, computed once per length (read-only)."""
    window = taper_window(n_samples, fraction, taper_type)
    window.flags.writeable = False
    return window


@lru_cache(maxsize=64)
def _butterworth(order: int, corners: tuple[float, ...], kind: str, sampling_rate: float) -> np.ndarray:
    """Second-order sections of a Butterworth filter (cached: designing costs more than filtering)."""
    return scipy.signal.butter(order, corners if len(corners) > 1 else corners[0], kind, fs=sampling_rate, output="sos")


@dataclass(frozen=True, kw_only=True)
class Bandpass(Step):
    """Butterworth band-pass filter.

    Parameters
    ----------
    freqmin, freqmax
        Corner frequencies in Hz, ``0 < freqmin < freqmax``. When ``freqmax`` is at or above
        95% of a record's Nyquist frequency, that record is only high-passed at ``freqmin``
        (a later :class:`Resample` does the anti-alias filtering).
    order
        Filter order (per pass).
    zerophase
        Filter forwards and backwards (no phase shift, twice the order), the default.
    """

    freqmin: float = 0.01
    freqmax: float = 8.0
    order: int = 4
    zerophase: bool = True

    def __post_init__(self):
        _check_band(self.freqmin, self.freqmax, "Bandpass")
        _check_order(self.order, "Bandpass")
        _check_flag("zerophase", self.zerophase, "Bandpass")

    def apply(self, data, sampling_rate, context=None):
        """Filter along the last axis."""
        nyquist = 0.5 * sampling_rate
        if self.freqmin >= 0.95 * nyquist:
            raise DataError(
                f"Bandpass freqmin={self.freqmin} Hz is not below the Nyquist frequency "
                f"{nyquist} Hz of data sampled at {sampling_rate} Hz"
            )
        if self.freqmax >= 0.95 * nyquist:
            sos = _butterworth(self.order, (self.freqmin,), "highpass", sampling_rate)
        else:
            sos = _butterworth(self.order, (self.freqmin, self.freqmax), "bandpass", sampling_rate)
        return _sos_filter(sos, data, self.zerophase), sampling_rate


def _sos_filter(sos: np.ndarray, data: np.ndarray, zerophase: bool) -> np.ndarray:
    """Run a second-order-section filter along the last axis, forwards-backwards if ``zerophase``."""
    if zerophase:
        return sos_filtfilt(sos, data)
    if np.iscomplexobj(data):
        return scipy.signal.sosfilt(sos, data, axis=-1)
    filtered = np.array(data, dtype=float)  # fresh and C-contiguous: filtered in place
    if filtered.size:
        rows = filtered.reshape(-1, filtered.shape[-1])
        sosfilt_rows(np.asarray(sos, dtype=float), rows, np.zeros((len(rows), len(sos), 2)))
    return filtered


def sos_filtfilt(sos: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Zero-phase second-order-section filtering along the last axis.

    What ``scipy.signal.sosfiltfilt(sos, data, axis=-1)`` computes (odd extension of
    ``3 * taps`` samples at each end, initial conditions scaled to the edge samples), with the
    filter's steady-state initial conditions computed once per filter instead of once per call
    (a linear solve per section, which costs as much as the filtering of a 10-minute window)
    and the passes run by :func:`~anxcor.steps.iir.sosfilt_rows`: the same numbers with
    scipy's loop, to about 1e-12 of the signal with the compiled one (numba installed).
    Records too short for the padding go to scipy, which raises its usual error.
    """
    sos = np.asarray(sos, dtype=float)
    taps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    edge = 3 * taps
    data = np.asarray(data, dtype=float)
    if data.shape[-1] <= edge:
        return scipy.signal.sosfiltfilt(sos, data, axis=-1)
    extended = np.concatenate(
        [
            2 * data[..., :1] - data[..., edge:0:-1],
            data,
            2 * data[..., -1:] - data[..., -2 : -(edge + 2) : -1],
        ],
        axis=-1,
    )
    steady = _steady_state(sos.tobytes(), sos.shape)
    rows = extended.reshape(-1, extended.shape[-1])  # a fresh array: filtered in place
    sosfilt_rows(sos, rows, steady[None] * rows[:, :1, None])
    backward = rows[:, ::-1].copy()
    sosfilt_rows(sos, backward, steady[None] * backward[:, :1, None])
    return backward[:, ::-1].reshape(extended.shape)[..., edge:-edge]


@lru_cache(maxsize=64)
def _steady_state(sos_bytes: bytes, shape: tuple[int, int]) -> np.ndarray:
    """``scipy.signal.sosfilt_zi`` of a filter given by its bytes (hashable, for the cache)."""
    zi = scipy.signal.sosfilt_zi(np.frombuffer(sos_bytes, dtype=float).reshape(shape))
    zi.flags.writeable = False
    return zi


def _below_nyquist(owner: str, freq: float, sampling_rate: float) -> None:
    if not freq < 0.5 * sampling_rate:
        raise DataError(
            f"{owner} freq={freq} Hz is not below the Nyquist frequency {0.5 * sampling_rate} Hz "
            f"of data sampled at {sampling_rate} Hz"
        )


@dataclass(frozen=True, kw_only=True)
class _OneCornerFilter(Step):
    """Butterworth filter with one corner frequency; subclasses name the kind."""

    _kind: ClassVar[str]
    freq: float
    order: int = 4
    zerophase: bool = True

    def __post_init__(self):
        name = type(self).__name__
        _positive("freq", self.freq, name)
        _check_order(self.order, name)
        _check_flag("zerophase", self.zerophase, name)

    def apply(self, data, sampling_rate, context=None):
        """Filter along the last axis."""
        _below_nyquist(type(self).__name__, self.freq, sampling_rate)
        sos = _butterworth(self.order, (float(self.freq),), self._kind, float(sampling_rate))
        return _sos_filter(sos, data, self.zerophase), sampling_rate


@dataclass(frozen=True, kw_only=True)
class Highpass(_OneCornerFilter):
    """Butterworth high-pass filter.

    Parameters
    ----------
    freq
        Corner frequency in Hz (-3 dB per pass); must be below the data's Nyquist frequency,
        otherwise :meth:`apply` raises :class:`~anxcor.errors.DataError`.
    order
        Filter order (per pass), an integer in [1, 12].
    zerophase
        Filter forwards and backwards (no phase shift, twice the order), the default.

    Examples
    --------
    >>> Highpass(freq=0.01)
    Highpass(freq=0.01, order=4, zerophase=True)
    """

    _kind: ClassVar[str] = "highpass"


@dataclass(frozen=True, kw_only=True)
class Lowpass(_OneCornerFilter):
    """Butterworth low-pass filter.

    Parameters
    ----------
    freq
        Corner frequency in Hz (-3 dB per pass); must be below the data's Nyquist frequency,
        otherwise :meth:`apply` raises :class:`~anxcor.errors.DataError`.
    order
        Filter order (per pass), an integer in [1, 12].
    zerophase
        Filter forwards and backwards (no phase shift, twice the order), the default.

    Examples
    --------
    >>> Lowpass(freq=2.0, order=2)
    Lowpass(freq=2.0, order=2, zerophase=True)
    """

    _kind: ClassVar[str] = "lowpass"


@dataclass(frozen=True, kw_only=True)
class Resample(Step):
    """Resample to ``target_rate`` with an ideal (FFT) anti-alias low-pass.

    The spectrum is truncated (or zero-padded) at the new Nyquist frequency, so nothing
    above it aliases. Taper first: the FFT treats the window as periodic.

    Parameters
    ----------
    target_rate
        Output sampling rate in Hz.
    """

    target_rate: float = 20.0

    def __post_init__(self):
        _positive("target_rate", self.target_rate, "Resample")

    def output_rate(self, sampling_rate):
        """Always ``target_rate``."""
        return float(self.target_rate)

    def apply(self, data, sampling_rate, context=None):
        """Resample along the last axis (no-op when already at the target rate).

        The output keeps the input's start time and has samples exactly ``1 / target_rate``
        apart: the input is zero-padded to a length whose duration is a whole number of
        output samples before the FFT resampling, then cut to ``round(n * target / rate)``.
        """
        if abs(sampling_rate - self.target_rate) <= 1e-9 * self.target_rate:
            return data, float(self.target_rate)
        ratio = Fraction(self.target_rate / sampling_rate).limit_denominator(10_000)
        n_in = data.shape[-1]
        n_out = int(round(n_in * self.target_rate / sampling_rate))
        padded = -(-n_in // ratio.denominator) * ratio.denominator
        if padded != n_in:
            pad = [(0, 0)] * (data.ndim - 1) + [(0, padded - n_in)]
            data = np.pad(data, pad)
        resampled = scipy.signal.resample(data, padded * ratio.numerator // ratio.denominator, axis=-1)
        return resampled[..., :n_out], float(self.target_rate)


#: Largest decimation factor done in one IIR stage (scipy's advice for its Chebyshev filter).
_MAX_IIR_STAGE = 13


def _decimation_stages(factor: int) -> list[int]:
    """Split ``factor`` into stages of at most 13 each, largest first (prime factors merged)."""
    primes, rest, p = [], factor, 2
    while p * p <= rest:
        while rest % p == 0:
            primes.append(p)
            rest //= p
        p += 1
    if rest > 1:
        primes.append(rest)
    stages: list[int] = []
    for prime in sorted(primes, reverse=True):
        for i, stage in enumerate(stages):
            if stage * prime <= _MAX_IIR_STAGE:
                stages[i] = stage * prime
                break
        else:
            stages.append(prime)
    return sorted(stages, reverse=True)


@dataclass(frozen=True, kw_only=True)
class Decimate(Step):
    """Anti-aliased decimation by an integer factor (``scipy.signal.decimate``).

    Keeps every ``factor``-th sample (the first one included) after a low-pass filter:

    - ``ftype='iir'`` (the default): an order-8 Chebyshev type I filter (0.05 dB ripple) with
      its corner at 0.8 x the new Nyquist frequency. Factors above 13 are done in stages of
      at most 13 each, largest first (``factor`` must then have no prime factor above 13).
    - ``ftype='fir'``: a Hamming-windowed FIR filter of order ``20 * factor`` with its corner
      at the new Nyquist frequency, in one stage; linear phase, sharper aliasing protection
      near the new Nyquist, slower.

    Parameters
    ----------
    factor
        Integer decimation factor, >= 1 (1 does nothing). The output rate is
        ``sampling_rate / factor`` Hz and the output has ``ceil(n / factor)`` samples.
    zerophase
        Filter forwards and backwards (IIR) or compensate the FIR delay, so nothing shifts
        in time (the default).
    ftype
        ``'iir'`` or ``'fir'``, see above.

    Examples
    --------
    >>> Decimate(factor=5).output_rate(100.0)
    20.0
    """

    factor: int
    zerophase: bool = True
    ftype: str = "iir"

    def __post_init__(self):
        if not isinstance(self.factor, (int, np.integer)) or isinstance(self.factor, bool) or self.factor < 1:
            raise ConfigError(f"Decimate factor must be an integer >= 1, got {self.factor!r}")
        _check_flag("zerophase", self.zerophase, "Decimate")
        if self.ftype not in ("iir", "fir"):
            raise ConfigError(f"Decimate ftype must be 'iir' or 'fir', got {self.ftype!r}")
        if self.ftype == "iir" and max(_decimation_stages(int(self.factor)), default=1) > _MAX_IIR_STAGE:
            raise ConfigError(
                f"Decimate factor={self.factor} has a prime factor above {_MAX_IIR_STAGE}, which an "
                f"IIR stage cannot decimate stably; use ftype='fir' or a Resample step"
            )

    def output_rate(self, sampling_rate):
        """``sampling_rate / factor``."""
        return float(sampling_rate) / int(self.factor)

    def apply(self, data, sampling_rate, context=None):
        """Decimate along the last axis."""
        factor = int(self.factor)
        if factor == 1:
            return data, float(sampling_rate)
        stages = _decimation_stages(factor) if self.ftype == "iir" else [factor]
        try:
            for stage in stages:
                data = scipy.signal.decimate(data, stage, ftype=self.ftype, axis=-1, zero_phase=self.zerophase)
        except ValueError as exc:
            raise DataError(f"Decimate factor={factor} cannot filter {data.shape[-1]} samples: {exc}") from None
        return data, self.output_rate(sampling_rate)


_NORM_METHODS = (None, "ram", "clip", "onebit", "water_level")
#: Most passes of the water-level normalisation.
_WATER_LEVEL_PASSES = 10


def _segment_bounds(n_samples: int, segment: int) -> np.ndarray:
    """Start indices of consecutive ``segment``-sample pieces (a short rest joins the last piece)."""
    n_segments = max(1, n_samples // segment)
    return np.arange(n_segments) * segment


def _segment_rms(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """RMS of each piece beginning at ``starts`` (the last runs to the end): (..., pieces)."""
    lengths = np.diff(np.append(starts, data.shape[-1]))
    return np.sqrt(np.add.reduceat(np.square(data), starts, axis=-1) / lengths)


def water_level_normalise(data: np.ndarray, segment: int, factor: float) -> np.ndarray:
    """Down-weight the loud pieces of each row to a water level (Bensen et al. 2007, sect. 2.2).

    Each row is cut into consecutive pieces of ``segment`` samples (a shorter rest joins the
    last piece). The water level is ``W = factor * median(RMS of the pieces)``. Every piece
    whose RMS exceeds ``W`` is multiplied by ``W / RMS`` (so its RMS becomes ``W``; its
    waveform keeps its shape, unlike clipping). Because ``W`` is recomputed from the
    down-weighted row, this repeats until no piece exceeds the level (at most 10 passes).
    Pieces at or below the level are not changed at all.
    """
    out = np.array(data, dtype=np.float64, copy=True)
    starts = _segment_bounds(out.shape[-1], segment)
    lengths = np.diff(np.append(starts, out.shape[-1]))
    for _ in range(_WATER_LEVEL_PASSES):
        rms = _segment_rms(out, starts)
        level = factor * np.median(rms, axis=-1, keepdims=True)
        loud = rms > level * (1.0 + 1e-9)
        if not loud.any():
            break
        gain = np.where(loud, level / np.maximum(rms, _TINY), 1.0)
        out *= np.repeat(gain, lengths, axis=-1)
    return out


@dataclass(frozen=True, kw_only=True)
class TemporalNorm(Step):
    """Temporal normalisation: reduce the weight of earthquakes and glitches.

    Parameters
    ----------
    method
        ``'ram'`` running-absolute-mean (divide by the mean of ``|x|`` over ``window_s``
        centred on each sample; Bensen et al. 2007), ``'clip'`` (clip at ``factor`` times
        the standard deviation), ``'onebit'`` (keep the sign only), ``'water_level'``
        (down-weight every ``window_s`` piece whose RMS exceeds ``factor`` times the median
        piece RMS, repeated until none does; see :func:`water_level_normalise`) or None (do
        nothing).
    window_s
        Running-absolute-mean window (``'ram'``) or piece length (``'water_level'``), in
        seconds.
    factor
        Clip level in standard deviations (``'clip'``) or water level in median piece RMS
        (``'water_level'``).
    ram_band
        ``'ram'`` only: ``(fmin, fmax)`` in Hz, or None (the default). When given, the
        running-absolute-mean weights are computed on a copy band-passed to this band
        (:class:`Bandpass`, order 4, zero phase; e.g. the earthquake band ``(0.02, 0.067)``
        of Bensen et al. 2007) and the original record is divided by them, so energy outside
        the band does not set the weights.

    References
    ----------
    Bensen, G. D., et al. (2007). Processing seismic ambient noise data to obtain reliable
    broad-band surface wave dispersion measurements. Geophys. J. Int. 169, 1239-1260.

    Examples
    --------
    >>> TemporalNorm(method="ram", window_s=64.0, ram_band=(0.02, 0.067)).ram_band
    (0.02, 0.067)
    """

    method: str | None = "ram"
    window_s: float = 10.0
    factor: float = 3.0
    ram_band: tuple[float, float] | None = None

    def __post_init__(self):
        if self.method not in _NORM_METHODS:
            raise ConfigError(f"TemporalNorm method must be one of {_NORM_METHODS}, got {self.method!r}")
        _positive("window_s", self.window_s, "TemporalNorm")
        _positive("factor", self.factor, "TemporalNorm")
        if self.ram_band is not None:
            if self.method != "ram":
                raise ConfigError(f"TemporalNorm ram_band applies to method='ram' only, got method={self.method!r}")
            band = _frequency_tuple("ram_band", self.ram_band, 2, "TemporalNorm")
            if not 0 < band[0] < band[1]:
                raise ConfigError(f"TemporalNorm ram_band needs 0 < fmin < fmax, got {self.ram_band!r}")
            object.__setattr__(self, "ram_band", band)

    def apply(self, data, sampling_rate, context=None):
        """Normalise along the last axis."""
        if self.method is None:
            return data, sampling_rate
        if self.method == "onebit":
            return np.sign(data), sampling_rate
        if self.method == "clip":
            level = self.factor * data.std(axis=-1, keepdims=True)
            return np.clip(data, -level, level), sampling_rate
        if self.method == "water_level":
            segment = max(1, int(round(self.window_s * sampling_rate)))
            return water_level_normalise(data, segment, self.factor), sampling_rate
        width = max(1, 2 * int(round(0.5 * self.window_s * sampling_rate)) + 1)
        reference = data
        if self.ram_band is not None:
            reference, _ = Bandpass(freqmin=self.ram_band[0], freqmax=self.ram_band[1]).apply(data, sampling_rate)
        weight = uniform_filter1d(np.abs(reference), size=width, axis=-1, mode="nearest")
        return data / np.maximum(weight, _TINY), sampling_rate


@dataclass(frozen=True, kw_only=True)
class RejectTransients(Step):
    """Reject a station-window that holds an earthquake, a spike or a glitch.

    Two amplitude tests, on each row (component) of the window; when any row fails, the
    whole station-window is rejected: :meth:`apply` raises :class:`~anxcor.errors.DataError`
    and the pipeline skips the window, recording the message as the reason.

    1. Spikes: the largest ``|x - median(x)|`` of a row is compared with ``max_std_factor``
       times the row's robust standard deviation ``1.4826 * median(|x - median(x)|)``
       (the scaled median absolute deviation, which equals the standard deviation for
       Gaussian noise and is hardly moved by a transient). For Gaussian noise a sample beyond
       10 robust standard deviations has probability about 1e-23, so the default never rejects
       pure noise.
    2. Energy bursts (only when ``max_rms_factor`` is given): the row is cut into pieces of
       ``window_s`` seconds (a short rest joins the last piece); the largest piece RMS is
       compared with ``max_rms_factor`` times the median piece RMS.

    Place it before temporal normalisation (which hides transients). A row with a robust
    standard deviation of 0 (e.g. mostly constant) is rejected when any sample differs from
    its median.

    Parameters
    ----------
    max_std_factor
        Spike threshold in robust standard deviations (> 0), or None to skip test 1.
    max_rms_factor
        Burst threshold in median piece RMS (> 0), or None (the default) to skip test 2.
    window_s
        Piece length in seconds for test 2.

    Examples
    --------
    >>> RejectTransients(max_std_factor=8.0)
    RejectTransients(max_std_factor=8.0, max_rms_factor=None, window_s=10.0)
    """

    max_std_factor: float | None = 10.0
    max_rms_factor: float | None = None
    window_s: float = 10.0

    def __post_init__(self):
        if self.max_std_factor is not None:
            _positive("max_std_factor", self.max_std_factor, "RejectTransients")
        if self.max_rms_factor is not None:
            _positive("max_rms_factor", self.max_rms_factor, "RejectTransients")
        if self.max_std_factor is None and self.max_rms_factor is None:
            raise ConfigError("RejectTransients needs max_std_factor or max_rms_factor (or both); both are None")
        _positive("window_s", self.window_s, "RejectTransients")

    def apply(self, data, sampling_rate, context=None):
        """Return the data unchanged, or raise DataError naming the failing row and numbers."""
        rows = np.atleast_2d(data)
        if self.max_std_factor is not None:
            deviation = np.abs(rows - np.median(rows, axis=-1, keepdims=True))
            robust_std = 1.4826 * np.median(deviation, axis=-1)
            peak = deviation.max(axis=-1)
            bad = peak > self.max_std_factor * robust_std
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(
                    f"rejected: max |x| = {peak[row]:.6g} > {self.max_std_factor} x robust std "
                    f"{robust_std[row]:.6g} (1.4826 x median absolute deviation){_row_name(context, row)}"
                )
        if self.max_rms_factor is not None:
            segment = max(1, int(round(self.window_s * sampling_rate)))
            rms = _segment_rms(rows, _segment_bounds(rows.shape[-1], segment))
            median = np.median(rms, axis=-1)
            loudest = rms.max(axis=-1)
            bad = loudest > self.max_rms_factor * median
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(
                    f"rejected: max {self.window_s} s RMS = {loudest[row]:.6g} > {self.max_rms_factor} x "
                    f"median {self.window_s} s RMS {median[row]:.6g}{_row_name(context, row)}"
                )
        return data, sampling_rate


def _row_name(context, row: int) -> str:
    if context is not None and row < len(context.channels) and context.channels[row]:
        return f" on {context.channels[row]}"
    return ""


def whitening_weights(frequencies: np.ndarray, freqmin: float, freqmax: float, taper_fraction: float) -> np.ndarray:
    """Band weights for whitening: 1 in ``[freqmin, freqmax]``, cosine ramps outside, 0 beyond.

    The lower ramp runs over ``[freqmin * (1 - taper_fraction), freqmin]`` and the upper one
    over ``[freqmax, freqmax * (1 + taper_fraction)]``.
    """
    weights = ((frequencies >= freqmin) & (frequencies <= freqmax)).astype(np.float64)
    if taper_fraction > 0:
        low = freqmin * (1.0 - taper_fraction)
        ramp = (frequencies >= low) & (frequencies < freqmin)
        weights[ramp] = 0.5 * (1 - np.cos(np.pi * (frequencies[ramp] - low) / (freqmin - low)))
        high = freqmax * (1.0 + taper_fraction)
        ramp = (frequencies > freqmax) & (frequencies <= high)
        weights[ramp] = 0.5 * (1 + np.cos(np.pi * (frequencies[ramp] - freqmax) / (high - freqmax)))
    return weights


@lru_cache(maxsize=16)
def _whitening_weights_cached(n_samples: int, sampling_rate: float, freqmin: float, freqmax: float, taper_fraction: float):
    """:func:`whitening_weights` on the ``rfft`` grid of ``n_samples`` (read-only, cached)."""
    frequencies = scipy.fft.rfftfreq(n_samples, 1.0 / sampling_rate)
    weights = whitening_weights(frequencies, freqmin, freqmax, taper_fraction)
    weights.flags.writeable = False
    return weights


@dataclass(frozen=True, kw_only=True)
class Whiten(Step):
    """Band-limited spectral whitening.

    The amplitude spectrum is divided out (optionally smoothed first) between ``freqmin``
    and ``freqmax``, with cosine ramps just outside the band and zero beyond, then the record
    goes back to the time domain: in single precision when the pipeline keeps only that of
    this step's output (``context.output_dtype``, see
    :class:`~anxcor.steps.base.WindowContext`), else in double precision.

    Parameters
    ----------
    freqmin, freqmax
        Whitening band in Hz.
    taper_fraction
        Width of each cosine ramp relative to its corner frequency (see
        :func:`~anxcor.steps.preprocess.whitening_weights`).
    smoothing_hz
        Width in Hz of the running mean applied to the amplitude spectrum before dividing;
        0 keeps only the phase (the default).
    """

    freqmin: float = 0.05
    freqmax: float = 1.0
    taper_fraction: float = 0.2
    smoothing_hz: float = 0.0

    def __post_init__(self):
        _check_band(self.freqmin, self.freqmax, "Whiten")
        _in_range("taper_fraction", self.taper_fraction, 0.0, 1.0, "Whiten")
        _in_range("smoothing_hz", self.smoothing_hz, 0.0, np.inf, "Whiten")

    def output_band(self, sampling_rate: float) -> tuple[float, float]:
        """The whitening band with its cosine ramps: zero outside it."""
        return (self.freqmin * (1.0 - self.taper_fraction), min(self.freqmax * (1.0 + self.taper_fraction), 0.5 * sampling_rate))

    def apply(self, data, sampling_rate, context=None):
        """Whiten along the last axis."""
        if self.freqmin >= 0.5 * sampling_rate:
            raise DataError(
                f"Whiten freqmin={self.freqmin} Hz is above the Nyquist frequency of data at {sampling_rate} Hz"
            )
        n_samples = data.shape[-1]
        spectrum = scipy.fft.rfft(data, axis=-1)
        weights = _whitening_weights_cached(n_samples, sampling_rate, self.freqmin, self.freqmax, self.taper_fraction)
        used = np.flatnonzero(weights)  # only these bins are worked on: the others become zero
        first, last = (used[0], used[-1] + 1) if used.size else (0, 0)
        band = spectrum[..., first:last]
        if self.smoothing_hz > 0:
            width = max(1, int(round(self.smoothing_hz * n_samples / sampling_rate)))
            amplitude = uniform_filter1d(np.abs(spectrum), size=width, axis=-1, mode="nearest")[..., first:last]
        else:
            amplitude = np.abs(band)
        band *= weights[first:last] / np.maximum(amplitude, _TINY)
        # Where the pipeline keeps only float32 of this output, the inverse of the (near) unit-
        # amplitude spectrum is done in single precision: about 2e-7 of the peak (the cast alone
        # 4e-8; the correlation's float32 FFTs add as much). The forward FFT stays double:
        # whitening lifts weak bins, with their rounding, to unit amplitude.
        single = context is not None and np.dtype(context.output_dtype) == np.float32
        whitened = np.zeros(spectrum.shape, dtype=np.complex64 if single else spectrum.dtype)
        whitened[..., first:last] = band
        return transform_rows(scipy.fft.irfft, whitened, n=n_samples), sampling_rate
