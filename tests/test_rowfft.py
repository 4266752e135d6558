"""Row-padded transforms give exactly scipy's numbers, and pad only single-precision rows."""

import numpy as np
import pytest
import scipy.fft

from anxcor.steps.correlate import lags_from_cross_spectra, station_spectra
from anxcor.steps.rowfft import SINGLE_PRECISION_LANES, transform_rows


@pytest.mark.parametrize("shape", [(3, 500), (7, 500), (1, 3, 500), (2, 3, 500), (1, 500), (500,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_station_spectra_equal_scipy_rfft_exactly(shape, dtype):
    data = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    expected = scipy.fft.rfft(data, n=720, axis=-1)
    got = station_spectra(data, 720)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_inverse_transform_of_three_complex64_rows_equals_scipy_exactly():
    rng = np.random.default_rng(4)
    spectra = (rng.standard_normal((3, 361)) + 1j * rng.standard_normal((3, 361))).astype(np.complex64)
    assert np.array_equal(transform_rows(scipy.fft.irfft, spectra, n=720), scipy.fft.irfft(spectra, n=720, axis=-1))
    lags = lags_from_cross_spectra(spectra, 720, 100)
    circular = scipy.fft.irfft(spectra, n=720, axis=-1)
    assert np.array_equal(lags, np.concatenate([circular[:, -100:], circular[:, :101]], axis=-1))


def _rows_seen(data):
    seen = []

    def spy(array, axis, **kwargs):
        seen.append(array.shape[0] if array.ndim > 1 else 1)
        return scipy.fft.rfft(array, axis=axis, **kwargs)

    transform_rows(spy, data)
    return seen[0]


def test_only_single_precision_rows_three_over_a_multiple_of_the_lanes_are_padded():
    assert SINGLE_PRECISION_LANES == 4
    assert _rows_seen(np.zeros((3, 64), np.float32)) == 4
    assert _rows_seen(np.zeros((7, 64), np.float32)) == 8
    assert _rows_seen(np.zeros((1, 3, 64), np.float32)) == 4
    assert _rows_seen(np.zeros((2, 64), np.float32)) == 2
    assert _rows_seen(np.zeros((4, 64), np.float32)) == 4
    assert _rows_seen(np.zeros((3, 64), np.float64)) == 3


def test_array_likes_are_transformed_like_arrays():
    rows = [[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, -1.0, 0.0], [2.0, 2.0, 2.0, 2.0]]
    assert np.array_equal(station_spectra(rows, 8), scipy.fft.rfft(np.asarray(rows), n=8, axis=-1))
