"""Fourier transforms of stacked rows that keep pocketfft's SIMD lanes full.

pocketfft (behind ``scipy.fft``) transforms several rows of an array side by side, four at a
time in single precision; rows left over go through more slowly. Three float32 rows (a
station-window's components) took about as long as three separate transforms, and adding
one zero row made the 3 x 12,000-sample transforms of the benchmark 1.8-2.1x faster (rfft
to 14,400 points: 0.53 -> 0.26 ms per station-window; interleaved medians). Double
precision showed no such step: padding or splitting its rows was 0-15 % slower. These are
measurements with the scipy build of the benchmark machine (pocketfft's SIMD width is set
when scipy is compiled), not guarantees.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["SINGLE_PRECISION_LANES", "transform_rows"]

#: Rows pocketfft transforms side by side in single precision.
SINGLE_PRECISION_LANES = 4


def transform_rows(transform: Callable[..., np.ndarray], data: np.ndarray, **kwargs) -> np.ndarray:
    """``transform(data, axis=-1, **kwargs)`` with single-precision rows padded to fill the lanes.

    A float32 or complex64 array whose rows leave three over a multiple of
    :data:`SINGLE_PRECISION_LANES` gets one zero row, transformed with the others and dropped
    again (the result is identical, checked in the tests); with one or two rows over, padding was
    not clearly faster. Other arrays go straight to ``transform``. The result of a padded
    transform is a view of the padded one (a caller keeping it for long should copy it).

    Examples
    --------
    >>> import scipy.fft
    >>> x = np.arange(6, dtype=np.float32).reshape(3, 2)
    >>> bool(np.array_equal(transform_rows(scipy.fft.rfft, x), scipy.fft.rfft(x, axis=-1)))
    True
    """
    data = np.asarray(data)
    n_rows = data.size // data.shape[-1] if data.ndim and data.shape[-1] else 0
    if data.dtype not in (np.float32, np.complex64) or n_rows % SINGLE_PRECISION_LANES != SINGLE_PRECISION_LANES - 1:
        return transform(data, axis=-1, **kwargs)
    padded = np.zeros((n_rows + 1, data.shape[-1]), dtype=data.dtype)
    padded[:n_rows] = data.reshape(n_rows, -1)
    return transform(padded, axis=-1, **kwargs)[:n_rows].reshape(*data.shape[:-1], -1)
