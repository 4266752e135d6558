"""Station-level preprocessing steps.

Each step is a frozen dataclass (validated on construction, ``get_params`` / ``repr`` for
free) around a numpy kernel that works along the last axis, so one call treats all
components of a station-window at once. Frequencies are in Hz, durations in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal
from scipy.ndimage import uniform_filter1d

from ..errors import ConfigError, DataError
from .base import Step

__all__ = [
    "RemoveMeanTrend",
    "Taper",
    "Bandpass",
    "Resample",
    "TemporalNorm",
    "Whiten",
    "taper_window",
    "whitening_weights",
]

_TINY = 1e-30


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _positive(name: str, value, owner: str) -> None:
    if not _is_number(value) or not value > 0:
        raise ConfigError(f"{owner} needs {name} > 0 (a number), got {value!r}")


def _check_band(freqmin, freqmax, owner: str) -> None:
    _positive("freqmin", freqmin, owner)
    _positive("freqmax", freqmax, owner)
    if not freqmin < freqmax:
        raise ConfigError(f"{owner} needs freqmin < freqmax, got freqmin={freqmin}, freqmax={freqmax}")


def _in_range(name: str, value, low: float, high: float, owner: str, *, low_open: bool = False, high_open: bool = True) -> None:
    ok = _is_number(value) and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        bounds = f"{low} {'<' if low_open else '<='} {name} {'<' if high_open else '<='} {high}"
        raise ConfigError(f"{owner} needs {bounds}, got {value!r}")


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
        return scipy.signal.detrend(data, axis=-1, type=self.detrend), sampling_rate


def taper_window(n_samples: int, fraction: float) -> np.ndarray:
    """A Hann-edged (Tukey) taper with ``fraction`` of the samples tapered at each end."""
    return scipy.signal.windows.tukey(n_samples, alpha=min(1.0, 2.0 * fraction))


@dataclass(frozen=True, kw_only=True)
class Taper(Step):
    """Taper both ends of each component with half a Hann window.

    Parameters
    ----------
    max_percentage
        Fraction of the window tapered at *each* end, ``0 < max_percentage <= 0.5``.
    """

    max_percentage: float = 0.05

    def __post_init__(self):
        _in_range("max_percentage", self.max_percentage, 0.0, 0.5, "Taper", low_open=True, high_open=False)

    def apply(self, data, sampling_rate, context=None):
        """Multiply by the taper."""
        return data * taper_window(data.shape[-1], self.max_percentage), sampling_rate


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
        if not isinstance(self.order, int) or isinstance(self.order, bool) or not 1 <= self.order <= 12:
            raise ConfigError(f"Bandpass order must be an integer in [1, 12], got {self.order!r}")
        if not isinstance(self.zerophase, bool):
            raise ConfigError(f"Bandpass zerophase must be True or False, got {self.zerophase!r}")

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
        if self.zerophase:
            return scipy.signal.sosfiltfilt(sos, data, axis=-1), sampling_rate
        return scipy.signal.sosfilt(sos, data, axis=-1), sampling_rate


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


_NORM_METHODS = (None, "ram", "clip", "onebit")


@dataclass(frozen=True, kw_only=True)
class TemporalNorm(Step):
    """Temporal normalisation: reduce the weight of earthquakes and glitches.

    Parameters
    ----------
    method
        ``'ram'`` running-absolute-mean (divide by the mean of ``|x|`` over ``window_s``
        centred on each sample; Bensen et al. 2007), ``'clip'`` (clip at ``factor`` times
        the standard deviation), ``'onebit'`` (keep the sign only) or None (do nothing).
    window_s
        Running-absolute-mean window in seconds (``'ram'`` only).
    factor
        Clip level in standard deviations (``'clip'`` only).
    """

    method: str | None = "ram"
    window_s: float = 10.0
    factor: float = 3.0

    def __post_init__(self):
        if self.method not in _NORM_METHODS:
            raise ConfigError(f"TemporalNorm method must be one of {_NORM_METHODS}, got {self.method!r}")
        _positive("window_s", self.window_s, "TemporalNorm")
        _positive("factor", self.factor, "TemporalNorm")

    def apply(self, data, sampling_rate, context=None):
        """Normalise along the last axis."""
        if self.method is None:
            return data, sampling_rate
        if self.method == "onebit":
            return np.sign(data), sampling_rate
        if self.method == "clip":
            level = self.factor * data.std(axis=-1, keepdims=True)
            return np.clip(data, -level, level), sampling_rate
        width = max(1, 2 * int(round(0.5 * self.window_s * sampling_rate)) + 1)
        weight = uniform_filter1d(np.abs(data), size=width, axis=-1, mode="nearest")
        return data / np.maximum(weight, _TINY), sampling_rate


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


@dataclass(frozen=True, kw_only=True)
class Whiten(Step):
    """Band-limited spectral whitening.

    The amplitude spectrum is divided out (optionally smoothed first) between ``freqmin``
    and ``freqmax``, with cosine ramps just outside the band and zero beyond, then the record
    goes back to the time domain.

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

    def apply(self, data, sampling_rate, context=None):
        """Whiten along the last axis."""
        if self.freqmin >= 0.5 * sampling_rate:
            raise DataError(
                f"Whiten freqmin={self.freqmin} Hz is above the Nyquist frequency of data at {sampling_rate} Hz"
            )
        n_samples = data.shape[-1]
        spectrum = scipy.fft.rfft(data, axis=-1)
        frequencies = scipy.fft.rfftfreq(n_samples, 1.0 / sampling_rate)
        amplitude = np.abs(spectrum)
        if self.smoothing_hz > 0:
            width = max(1, int(round(self.smoothing_hz * n_samples / sampling_rate)))
            amplitude = uniform_filter1d(amplitude, size=width, axis=-1, mode="nearest")
        weights = whitening_weights(frequencies, self.freqmin, self.freqmax, self.taper_fraction)
        spectrum = spectrum * (weights / np.maximum(amplitude, _TINY))
        return scipy.fft.irfft(spectrum, n_samples, axis=-1), sampling_rate
