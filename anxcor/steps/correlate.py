"""Cross-correlation of all station pairs of a window from per-station spectra.

Sign convention: ``corr(t) = sum_tau s(tau) * r(tau + t)`` for source ``s`` and receiver
``r``; a positive lag means energy travelling from the source to the receiver. In the
frequency domain that is ``conj(S) * R``. Spectra are zero-padded to at least
``n_samples + max_lag`` points, so the result is the *linear* (not circular) correlation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.fft
from scipy.ndimage import uniform_filter1d

from ..errors import ConfigError
from ..validation import is_number, require_positive
from .rowfft import transform_rows

__all__ = [
    "CrossCorrelate",
    "cross_spectra",
    "smooth_length",
    "lags_from_cross_spectra",
    "station_spectra",
    "window_summed_cross_spectra",
    "smoothed_amplitude",
]

_METHODS = ("xcorr", "coherency", "deconvolution")
_OUTPUTS = ("lags", "spectrum")
_PRECISIONS = ("single", "double")
_TINY = 1e-30


def station_spectra(data: np.ndarray, nfft: int) -> np.ndarray:
    """Zero-padded real FFT along the last axis: ``(..., samples) -> (..., nfft // 2 + 1)``.

    Single-precision rows go through :func:`~anxcor.steps.rowfft.transform_rows`: a station-window's
    three components are transformed with a zero fourth row, twice as fast (the same numbers).
    """
    return transform_rows(scipy.fft.rfft, data, n=nfft)


def smooth_length(minimum: int) -> int:
    """The smallest integer ``>= minimum`` whose only prime factors are 2, 3 and 5.

    Examples
    --------
    >>> smooth_length(14000)
    14400
    """
    best = 2 ** max(0, int(minimum - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < minimum:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def cross_spectra(spec_src: np.ndarray, spec_rec: np.ndarray) -> np.ndarray:
    """Cross-spectrum for the sign convention above: ``conj(S) * R``."""
    return np.conj(spec_src) * spec_rec


def window_summed_cross_spectra(spec_src: np.ndarray, spec_rec: np.ndarray) -> np.ndarray:
    """Cross-spectra of every source x receiver station and component, summed over windows.

    ``sum_w conj(S_src[i, w, a, f]) * S_rec[j, w, b, f]`` for all ``i, j, a, b, f``, computed as
    one small matrix product per frequency (the window sum is the inner dimension), which
    reads each spectrum once instead of writing one cross-spectrum per window.

    Parameters
    ----------
    spec_src, spec_rec
        Spectra shaped ``(stations, windows, components, frequencies)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(frequencies, source stations, components, receiver stations, components)``.
    """
    n_src, n_windows, n_comp, n_freq = spec_src.shape
    n_rec = spec_rec.shape[0]
    left = np.conj(spec_src).transpose(3, 0, 2, 1).reshape(n_freq, n_src * n_comp, n_windows)
    right = spec_rec.transpose(3, 1, 0, 2).reshape(n_freq, n_windows, n_rec * n_comp)
    return np.matmul(left, right).reshape(n_freq, n_src, n_comp, n_rec, n_comp)


def lags_from_cross_spectra(cross: np.ndarray, nfft: int, max_lag: int, first_bin: int = 0) -> np.ndarray:
    """Inverse FFT of cross-spectra, cut to lags ``-max_lag ... +max_lag`` samples.

    ``cross`` holds frequency bins ``first_bin ... first_bin + cross.shape[-1] - 1`` of the
    ``nfft``-point grid; the bins outside are zero. The result has the real dtype matching
    ``cross`` (float32 for complex64).
    """
    if first_bin:  # placed on the full grid at once (irfft would pad the short input again)
        padded = np.zeros((*cross.shape[:-1], nfft // 2 + 1), dtype=cross.dtype)
        padded[..., first_bin : first_bin + cross.shape[-1]] = cross
        cross = padded
    circular = transform_rows(scipy.fft.irfft, cross, n=nfft)
    return np.concatenate([circular[..., nfft - max_lag :], circular[..., : max_lag + 1]], axis=-1)


def smoothed_amplitude(spectra: np.ndarray, width_bins: int) -> np.ndarray:
    """``|S|`` smoothed by a running mean of ``width_bins`` frequency bins (1: no smoothing)."""
    amplitude = np.abs(spectra)
    if width_bins > 1:
        amplitude = uniform_filter1d(amplitude, size=width_bins, axis=-1, mode="nearest")
    return amplitude


@dataclass(frozen=True, kw_only=True)
class CrossCorrelate:
    """Correlate every station pair and channel pair of a window.

    Parameters
    ----------
    max_tau_shift
        Largest lag kept, in seconds; the result spans ``-max_tau_shift ... +max_tau_shift``.
        Must be shorter than the window.
    method
        ``'xcorr'``: plain cross-correlation, ``conj(S) R`` (no normalisation; stacks are
        means). ``'coherency'``: ``conj(S) R / (|S| |R|)``, each amplitude spectrum smoothed
        over ``smoothing_hz``. ``'deconvolution'``: ``conj(S) R / (|S|^2 + eps)``, the
        receiver deconvolved by the source, with ``eps = water_level * mean(|S|^2)`` of that
        source record. The sign convention is the same for all three (positive lag: source to
        receiver).
    smoothing_hz
        Running-mean width in Hz of the amplitude spectra dividing out in ``'coherency'`` (0:
        none).
    water_level
        Stabilisation of ``'deconvolution'``, relative to the source's mean power (> 0).
    output
        ``'lags'`` (the default): correlations over lag time. ``'spectrum'``: the stacked
        cross-spectra themselves, complex, over ``frequency`` (Hz) from 0 to Nyquist on the
        zero-padded FFT grid (linear stacks over all windows only).
    band
        Frequencies the correlation keeps. ``'auto'`` (the default): from 0 Hz up to the top
        of the band the last preprocessing step declares
        (:meth:`~anxcor.steps.base.Step.output_band`;
        :class:`~anxcor.steps.preprocess.Whiten` does: its band with the ramps), else all
        frequencies. ``None``: all frequencies. ``(fmin, fmax)`` in Hz: that band. Outside
        the band the cross-spectra are left out (zero), which saves most of the work when the
        band is narrow; after whitening, what is left out is the whitened windows' leakage
        (their spectra are zero there before zero-padding), about 2e-4 of the zero-lag
        autocorrelation.
    precision
        ``'single'`` (the default): spectra in complex64 and correlations in float32, about
        1e-6 of the peak from double precision, at twice the speed and half the memory.
        ``'double'``: complex128 and float64 throughout.
    """

    max_tau_shift: float = 100.0
    method: str = "xcorr"
    smoothing_hz: float = 0.0
    water_level: float = 0.01
    output: str = "lags"
    band: str | tuple[float, float] | None = "auto"
    precision: str = "single"

    def __post_init__(self):
        require_positive("max_tau_shift (s)", self.max_tau_shift, "CrossCorrelate")
        if self.method not in _METHODS:
            raise ConfigError(f"CrossCorrelate method must be one of {_METHODS}, got {self.method!r}")
        if not is_number(self.smoothing_hz) or not self.smoothing_hz >= 0:
            raise ConfigError(f"CrossCorrelate needs smoothing_hz >= 0 (Hz), got {self.smoothing_hz!r}")
        require_positive("water_level", self.water_level, "CrossCorrelate")
        if self.output not in _OUTPUTS:
            raise ConfigError(f"CrossCorrelate output must be one of {_OUTPUTS}, got {self.output!r}")
        if self.precision not in _PRECISIONS:
            raise ConfigError(f"CrossCorrelate precision must be one of {_PRECISIONS}, got {self.precision!r}")
        if self.band is not None and not isinstance(self.band, str):
            band = tuple(self.band) if isinstance(self.band, (tuple, list)) else ()
            if len(band) != 2 or not all(is_number(f) for f in band) or not 0 <= band[0] < band[1] < np.inf:
                raise ConfigError(
                    f"CrossCorrelate band must be 'auto', None or (fmin, fmax) in Hz with 0 <= fmin < fmax, got {self.band!r}"
                )
            object.__setattr__(self, "band", (float(band[0]), float(band[1])))
        elif isinstance(self.band, str) and self.band != "auto":
            raise ConfigError(f"CrossCorrelate band must be 'auto', None or (fmin, fmax) in Hz, got {self.band!r}")

    def get_params(self) -> dict:
        """The constructor arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def max_lag(self, sampling_rate: float) -> int:
        """``max_tau_shift`` in samples."""
        return int(round(self.max_tau_shift * sampling_rate))

    def nfft(self, n_samples: int, sampling_rate: float) -> int:
        """FFT length that keeps the correlation linear up to ``max_lag``.

        The smallest ``2^a 3^b 5^c`` of at least ``n_samples + max_lag``: any such length
        gives the same linear correlation, and these are the ones pocketfft transforms
        fastest (``next_fast_len`` also allows factors 7 and 11, about 15% slower here).
        """
        return smooth_length(n_samples + self.max_lag(sampling_rate))

    def frequencies(self, n_samples: int, sampling_rate: float) -> np.ndarray:
        """Frequency axis in Hz of the cross-spectra (``output='spectrum'``)."""
        return scipy.fft.rfftfreq(self.nfft(n_samples, sampling_rate), 1.0 / sampling_rate)

    @property
    def complex_dtype(self) -> np.dtype:
        """dtype of the spectra and cross-spectra (complex64 or complex128)."""
        return np.dtype(np.complex64 if self.precision == "single" else np.complex128)

    @property
    def real_dtype(self) -> np.dtype:
        """dtype of the correlations (float32 or float64)."""
        return np.dtype(np.float32 if self.precision == "single" else np.float64)

    def band_bins(self, nfft: int, sampling_rate: float, steps=()) -> tuple[int, int]:
        """First and one-past-last frequency bin kept on the ``nfft``-point grid.

        ``steps`` is the preprocessing pipeline, whose last step's
        :meth:`~anxcor.steps.base.Step.output_band` sets the band when ``band='auto'``.
        """
        n_freq = nfft // 2 + 1
        band, automatic = self.band, self.band == "auto"
        if automatic:
            band = steps[-1].output_band(sampling_rate) if steps else None
        if band is None:
            return 0, n_freq
        step = sampling_rate / nfft
        # 'auto' keeps the few bins below the band too: they hold most of the zero-padding leakage
        first = 0 if automatic else max(0, int(np.floor(band[0] / step)))
        last = min(n_freq, int(np.ceil(band[1] / step)) + 1)
        if last <= first:
            raise ConfigError(
                f"CrossCorrelate band {band} Hz holds no frequency of the {sampling_rate} Hz data"
            )
        return first, last

    def lags(self, sampling_rate: float) -> np.ndarray:
        """Lag axis in seconds."""
        max_lag = self.max_lag(sampling_rate)
        return np.arange(-max_lag, max_lag + 1) / sampling_rate

    def spectra(self, data: np.ndarray, nfft: int, sampling_rate: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-station spectra for the method: ``(as receiver, as source)``.

        The cross-spectrum of a pair is ``conj(source part of src) * receiver part of rec``;
        for ``'xcorr'`` both parts are the plain zero-padded spectrum.
        """
        spectra = station_spectra(data.astype(self.real_dtype, copy=False), nfft)
        if self.method == "xcorr":
            return spectra, spectra
        if self.method == "coherency":
            width = int(round(self.smoothing_hz * nfft / sampling_rate))
            normalised = spectra / np.maximum(smoothed_amplitude(spectra, width), _TINY)
            return normalised, normalised
        power = np.abs(spectra) ** 2
        floor = self.water_level * power.mean(axis=-1, keepdims=True)
        return spectra, spectra / np.maximum(power + floor, _TINY)

    def correlate(self, source: np.ndarray, receiver: np.ndarray, sampling_rate: float) -> np.ndarray:
        """Correlate two time series (same length, last axis) to ``+-max_tau_shift``.

        A convenience over :meth:`spectra`, :func:`~anxcor.steps.correlate.cross_spectra` and
        :func:`~anxcor.steps.correlate.lags_from_cross_spectra`, which the pipeline calls on
        whole blocks of pairs.
        """
        n_samples = source.shape[-1]
        nfft = self.nfft(n_samples, sampling_rate)
        first, last = self.band_bins(nfft, sampling_rate)
        _, source_part = self.spectra(source, nfft, sampling_rate)
        receiver_part, _ = self.spectra(receiver, nfft, sampling_rate)
        cross = cross_spectra(source_part[..., first:last], receiver_part[..., first:last])
        return lags_from_cross_spectra(cross, nfft, self.max_lag(sampling_rate), first)
