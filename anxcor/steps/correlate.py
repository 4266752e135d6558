"""Cross-correlation of all station pairs of a window from per-station spectra.

Sign convention: ``corr(t) = sum_tau s(tau) * r(tau + t)`` for source ``s`` and receiver
``r``; a positive lag means energy travelling from the source to the receiver. In the
frequency domain that is ``conj(S) * R``. Spectra are zero-padded to at least
``n_samples + max_lag`` points, so the result is the *linear* (not circular) correlation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from ..errors import ConfigError

__all__ = [
    "CrossCorrelate",
    "cross_spectra",
    "lags_from_cross_spectra",
    "station_spectra",
    "window_summed_cross_spectra",
]

_METHODS = ("xcorr",)


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


@dataclass(frozen=True, kw_only=True)
class CrossCorrelate:
    """Correlate every station pair and channel pair of a window.

    Parameters
    ----------
    max_tau_shift
        Largest lag kept, in seconds; the result spans ``-max_tau_shift ... +max_tau_shift``.
        Must be shorter than the window.
    method
        ``'xcorr'``: plain cross-correlation (no normalisation; stacks are means).
    """

    max_tau_shift: float = 100.0
    method: str = "xcorr"

    def __post_init__(self):
        value = self.max_tau_shift
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0:
            raise ConfigError(f"CrossCorrelate needs max_tau_shift > 0 seconds, got {value!r}")
        if self.method not in _METHODS:
            raise ConfigError(f"CrossCorrelate method must be one of {_METHODS}, got {self.method!r}")

    def get_params(self) -> dict:
        """The constructor arguments."""
        return {"max_tau_shift": self.max_tau_shift, "method": self.method}

    def max_lag(self, sampling_rate: float) -> int:
        """``max_tau_shift`` in samples."""
        return int(round(self.max_tau_shift * sampling_rate))

    def nfft(self, n_samples: int, sampling_rate: float) -> int:
        """FFT length that keeps the correlation linear up to ``max_lag`` (a fast size)."""
        return scipy.fft.next_fast_len(n_samples + self.max_lag(sampling_rate), real=True)

    def lags(self, sampling_rate: float) -> np.ndarray:
        """Lag axis in seconds."""
        max_lag = self.max_lag(sampling_rate)
        return np.arange(-max_lag, max_lag + 1) / sampling_rate

    def correlate(self, source: np.ndarray, receiver: np.ndarray, sampling_rate: float) -> np.ndarray:
        """Correlate two time series (same length, last axis) to ``+-max_tau_shift``.

        A convenience over :func:`~anxcor.steps.correlate.station_spectra`,
        :func:`~anxcor.steps.correlate.cross_spectra` and
        :func:`~anxcor.steps.correlate.lags_from_cross_spectra`, which the pipeline calls on
        whole blocks of pairs.
        """
        n_samples = source.shape[-1]
        nfft = self.nfft(n_samples, sampling_rate)
        cross = cross_spectra(station_spectra(source, nfft), station_spectra(receiver, nfft))
        return lags_from_cross_spectra(cross, nfft, self.max_lag(sampling_rate))
