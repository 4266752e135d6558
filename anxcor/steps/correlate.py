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

__all__ = [
    "CrossCorrelate",
    "cross_spectra",
    "lags_from_cross_spectra",
    "station_spectra",
    "window_summed_cross_spectra",
    "smoothed_amplitude",
]

_METHODS = ("xcorr", "coherency", "deconvolution")
_OUTPUTS = ("lags", "spectrum")
_TINY = 1e-30


def station_spectra(data: np.ndarray, nfft: int) -> np.ndarray:
    """Zero-padded real FFT along the last axis: ``(..., samples) -> (..., nfft // 2 + 1)``."""
    return scipy.fft.rfft(data, n=nfft, axis=-1)


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


def lags_from_cross_spectra(cross: np.ndarray, nfft: int, max_lag: int) -> np.ndarray:
    """Inverse FFT of cross-spectra, cut to lags ``-max_lag ... +max_lag`` samples."""
    circular = scipy.fft.irfft(cross, n=nfft, axis=-1)
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
    """

    max_tau_shift: float = 100.0
    method: str = "xcorr"
    smoothing_hz: float = 0.0
    water_level: float = 0.01
    output: str = "lags"

    def __post_init__(self):
        require_positive("max_tau_shift (s)", self.max_tau_shift, "CrossCorrelate")
        if self.method not in _METHODS:
            raise ConfigError(f"CrossCorrelate method must be one of {_METHODS}, got {self.method!r}")
        if not is_number(self.smoothing_hz) or not self.smoothing_hz >= 0:
            raise ConfigError(f"CrossCorrelate needs smoothing_hz >= 0 (Hz), got {self.smoothing_hz!r}")
        require_positive("water_level", self.water_level, "CrossCorrelate")
        if self.output not in _OUTPUTS:
            raise ConfigError(f"CrossCorrelate output must be one of {_OUTPUTS}, got {self.output!r}")

    def get_params(self) -> dict:
        """The constructor arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def max_lag(self, sampling_rate: float) -> int:
        """``max_tau_shift`` in samples."""
        return int(round(self.max_tau_shift * sampling_rate))

    def nfft(self, n_samples: int, sampling_rate: float) -> int:
        """FFT length that keeps the correlation linear up to ``max_lag`` (a fast size)."""
        return scipy.fft.next_fast_len(n_samples + self.max_lag(sampling_rate), real=True)

    def frequencies(self, n_samples: int, sampling_rate: float) -> np.ndarray:
        """Frequency axis in Hz of the cross-spectra (``output='spectrum'``)."""
        return scipy.fft.rfftfreq(self.nfft(n_samples, sampling_rate), 1.0 / sampling_rate)

    def lags(self, sampling_rate: float) -> np.ndarray:
        """Lag axis in seconds."""
        max_lag = self.max_lag(sampling_rate)
        return np.arange(-max_lag, max_lag + 1) / sampling_rate

    def spectra(self, data: np.ndarray, nfft: int, sampling_rate: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-station spectra for the method: ``(as receiver, as source)``.

        The cross-spectrum of a pair is ``conj(source part of src) * receiver part of rec``;
        for ``'xcorr'`` both parts are the plain zero-padded spectrum.
        """
        spectra = station_spectra(data, nfft)
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
        _, source_part = self.spectra(source, nfft, sampling_rate)
        receiver_part, _ = self.spectra(receiver, nfft, sampling_rate)
        return lags_from_cross_spectra(cross_spectra(source_part, receiver_part), nfft, self.max_lag(sampling_rate))
