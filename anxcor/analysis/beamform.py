"""Beamforming of the ambient-noise field from the stacked correlations of a result.

The stacked correlation of stations ``i`` (source) and ``j`` (receiver) is, in the frequency
domain, the cross-spectrum ``C_ij(f) = conj(S_i(f)) S_j(f)`` averaged over windows (anxcor's
sign convention: ``corr(t) = sum_tau s(tau) r(tau + t)``, a positive lag is energy travelling
from the source to the receiver). These cross-spectra fill the array's cross-spectral matrix
``R_ij = S_i conj(S_j) = conj(C_ij)`` (``R_ji = C_ij``); the beam power of a plane wave of
horizontal slowness vector ``s`` is a quadratic form of ``R`` with the steering vector
``a_k = exp(-2 pi i f s . r_k)`` of the station positions ``r_k``.

The maths is in small numpy kernels (:func:`steering_vectors`, :func:`bartlett_power`,
:func:`mvdr_power`); :func:`beamform` reads a result, builds the matrix and labels the answer.
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np
import xarray as xr

from anxcor.errors import ConfigError, DataError
from anxcor.validation import result_variable

__all__ = ["beamform", "bartlett_power", "mvdr_power", "steering_vectors"]

logger = logging.getLogger(__name__)

#: Default slowness grid, s/km: 0 to 0.6 in steps of 0.01 (phase velocities from 1.7 km/s up).
_DEFAULT_SLOWNESS = np.round(np.arange(0.0, 0.6 + 1e-9, 0.01), 10)
#: Default backazimuth grid, degrees: 0 to 358 in steps of 2.
_DEFAULT_BACKAZIMUTH = np.arange(0.0, 360.0, 2.0)
_METHODS = ("bartlett", "mvdr")
#: Complex elements of the steering array handled at once (a few frequencies per chunk): 64 MB.
_CHUNK_ELEMENTS = 1 << 22
#: Autospectra below this fraction of the median autospectrum (per frequency) are raised to it.
_AUTO_FLOOR = 1e-6


# ---------------------------------------------------------------------------- numpy kernels
def steering_vectors(freqs_hz: np.ndarray, positions_km: np.ndarray, slowness_vectors: np.ndarray) -> np.ndarray:
    """Plane-wave steering vectors of an array.

    Parameters
    ----------
    freqs_hz : numpy.ndarray
        Frequencies, Hz, shape ``(F,)``.
    positions_km : numpy.ndarray
        Station positions east and north, km, shape ``(N, 2)``.
    slowness_vectors : numpy.ndarray
        Horizontal slowness vectors east and north (pointing where the waves travel to), s/km,
        shape ``(G, 2)``.

    Returns
    -------
    numpy.ndarray
        Complex array ``(F, G, N)``: ``exp(-2 pi i f s . r_k)``, the spectrum a unit plane
        wave of slowness ``s`` has at station ``k`` (numpy's FFT sign, a delay ``t`` is
        ``exp(-2 pi i f t)``).

    Notes
    -----
    For evenly spaced frequencies, each frequency after the first is the previous one times
    ``exp(-2 pi i df s . r_k)`` (one complex product per element instead of a sine and a
    cosine); the rounding error grows by about 1e-16 per frequency.

    Examples
    --------
    >>> a = steering_vectors(np.array([0.2]), np.array([[0.0, 0.0], [3.0, 0.0]]), np.array([[1 / 3, 0.0]]))
    >>> bool(np.allclose(a[0, 0], [1.0, np.exp(-0.4j * np.pi)]))  # the 1 s delay at 0.2 Hz: -0.4 pi
    True
    """
    freqs_hz = np.asarray(freqs_hz, dtype=float).reshape(-1)
    delays_s = np.asarray(slowness_vectors, dtype=float) @ np.asarray(positions_km, dtype=float).T  # (G, N)
    steps = np.diff(freqs_hz)
    if freqs_hz.size < 3 or not np.allclose(steps, steps[0], rtol=1e-9, atol=0.0):
        return _phasor((-2.0 * np.pi) * freqs_hz[:, None, None] * delays_s[None])
    out = np.empty((freqs_hz.size, *delays_s.shape), dtype=complex)
    out[0] = _phasor((-2.0 * np.pi * freqs_hz[0]) * delays_s)
    increment = _phasor((-2.0 * np.pi * steps[0]) * delays_s)
    for m in range(1, freqs_hz.size):
        np.multiply(out[m - 1], increment, out=out[m])
    return out


def _phasor(phase: np.ndarray) -> np.ndarray:
    """``exp(1j * phase)`` for a real array, without the complex exponential."""
    out = np.empty(phase.shape, dtype=complex)
    np.cos(phase, out=out.real)
    np.sin(phase, out=out.imag)
    return out


def bartlett_power(csdm: np.ndarray, steering: np.ndarray) -> np.ndarray:
    """Bartlett (conventional, delay-and-sum) beam power.

    Parameters
    ----------
    csdm : numpy.ndarray
        Hermitian cross-spectral matrices ``R_ij = S_i conj(S_j)``, complex, shape ``(F, N, N)``.
    steering : numpy.ndarray
        Steering vectors from :func:`steering_vectors`, shape ``(F, G, N)``.

    Returns
    -------
    numpy.ndarray
        ``Re(a^H R a) / N^2``, shape ``(F, G)``: 1 for a single plane wave of unit amplitude
        at its own slowness, ``1 / N`` everywhere for incoherent unit noise.

    Examples
    --------
    >>> a = np.exp(1j * np.array([[[0.0, 1.0, 2.0]]]))  # one frequency, one grid point
    >>> round(float(bartlett_power(np.eye(3)[None] + 0j, a)[0, 0]), 12)  # incoherent noise: 1 / N
    0.333333333333
    """
    values, vectors = _eigen(csdm)
    n = csdm.shape[-1]
    # a^H R a = sum_k lambda_k |v_k^H a|^2 (exact for a Hermitian R, negative eigenvalues kept)
    return _weighted_projections(steering, vectors, values / n**2)


def mvdr_power(csdm: np.ndarray, steering: np.ndarray, loading: float = 0.05) -> np.ndarray:
    """Minimum-variance distortionless-response (Capon) beam power with diagonal loading.

    Parameters
    ----------
    csdm : numpy.ndarray
        Hermitian cross-spectral matrices, complex, shape ``(F, N, N)``.
    steering : numpy.ndarray
        Steering vectors from :func:`steering_vectors`, shape ``(F, G, N)``.
    loading : float
        Diagonal loading relative to the mean eigenvalue: ``eps = loading * trace(R) / N`` is
        added to every eigenvalue. Negative eigenvalues (a matrix assembled from separately
        stacked pairs need not be positive semi-definite) are first set to 0, and the mean is
        taken after that.

    Returns
    -------
    numpy.ndarray
        ``1 / Re(a^H (R + eps I)^-1 a)``, shape ``(F, G)``: about 1 for a single plane wave
        of unit amplitude at its own slowness and ``(1 + loading) / N`` for incoherent unit
        noise, the scale of :func:`bartlett_power`.

    Examples
    --------
    >>> a = np.exp(1j * np.array([[[0.0, 1.0, 2.0]]]))
    >>> round(float(mvdr_power(np.eye(3)[None] + 0j, a, loading=0.0)[0, 0]), 12)
    0.333333333333
    """
    values, vectors = _eigen(csdm)
    values = np.clip(values, 0.0, None)
    eps = loading * values.mean(axis=-1, keepdims=True)
    eps = np.where(eps > 0, eps, np.finfo(float).tiny)  # an all-zero matrix stays invertible
    # a^H (R + eps I)^-1 a = sum_k |v_k^H a|^2 / (lambda_k + eps)
    return 1.0 / _weighted_projections(steering, vectors, 1.0 / (values + eps))


def _eigen(csdm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (F, N) and eigenvectors (F, N, N, in columns) of the Hermitian part of each matrix."""
    return np.linalg.eigh(0.5 * (csdm + np.swapaxes(csdm, -1, -2).conj()))


def _weighted_projections(steering: np.ndarray, vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_k weights_k |v_k^H a|^2`` for every steering vector ``a``: (F, G)."""
    projections = steering @ vectors.conj()  # (F, G, N): v_k^H a for each eigenvector k
    squares = projections.view(float)  # real and imaginary parts interleaved: (F, G, 2N)
    np.square(squares, out=squares)
    return (squares @ np.repeat(weights, 2, axis=-1)[..., None])[..., 0]


# ---------------------------------------------------------------------------- the labelled API
def beamform(
    result: xr.Dataset | xr.DataArray,
    freqmin: float,
    freqmax: float,
    slowness: np.ndarray | list[float] | None = None,
    azimuth: np.ndarray | list[float] | None = None,
    method: str = "bartlett",
    channel: str = "Z:Z",
    *,
    variable: str | None = None,
    per_frequency: bool = False,
    loading: float = 0.05,
) -> xr.DataArray:
    """Beam power of the noise field over slowness and backazimuth from a stacked result.

    The stacked correlations of every station pair (FFT of the lag-domain correlations, or
    the stacked cross-spectra themselves for a result made with
    ``CrossCorrelate(output='spectrum')``) fill the array's cross-spectral matrix at each
    frequency between ``freqmin`` and ``freqmax``; the beam power of each trial plane wave
    is computed per frequency and averaged over the band.

    Parameters
    ----------
    result : xarray.Dataset or xarray.DataArray
        What :meth:`anxcor.core.Anxcor.process` returns, stacked (no ``window`` dim), with
        station coordinates (``distance`` in km and ``azimuth`` in degrees per pair), or one
        of its data variables.
    freqmin, freqmax : float
        Frequency band, Hz, ``0 <= freqmin < freqmax``; at least one frequency bin of the
        result must lie in it.
    slowness : array_like of float, optional
        Trial slownesses, s/km, ``>= 0``. Default 0 to 0.6 s/km in steps of 0.01 s/km.
    azimuth : array_like of float, optional
        Trial backazimuths, degrees clockwise from north, the direction the waves come
        from. Default 0 to 358 degrees in steps of 2 degrees.
    method : {'bartlett', 'mvdr'}
        ``'bartlett'``: conventional (delay-and-sum) beamforming, ``a^H R a / N^2``.
        ``'mvdr'``: minimum-variance distortionless response (Capon),
        ``1 / (a^H (R + eps I)^-1 a)`` with diagonal loading ``eps`` (see ``loading``);
        sharper peaks, but it needs a well-conditioned matrix.
    channel : str
        Channel pair of the result to use, one component with itself, e.g. ``'Z:Z'``.
    variable : str, optional
        Data variable (dataset name) of a Dataset; default the first one.
    per_frequency : bool
        False: power averaged over the band, dims ``(slowness, backazimuth)``. True: one map
        per frequency bin, dims ``(frequency, slowness, backazimuth)``.
    loading : float
        MVDR diagonal loading relative to the mean eigenvalue of the matrix (``eps = loading
        * trace(R) / N``, i.e. ``loading`` itself after coherency normalisation), ``> 0``.
        Ignored by ``'bartlett'``.

    Returns
    -------
    xarray.DataArray
        ``beam_power`` over ``slowness`` (s/km) and ``backazimuth`` (degrees), and
        ``frequency`` (Hz) first when ``per_frequency`` is True; divided by its maximum (each
        frequency's map by its own maximum when ``per_frequency`` is True), so the peak is 1.
        The power before that division (1 for a single perfectly coherent plane wave, ``1 /
        N`` for incoherent noise) is kept in ``attrs['max_power']`` (a ``max_power``
        coordinate over ``frequency`` when ``per_frequency`` is True). ``attrs`` also hold
        the method, band, channel, variable, loading, the stations and pairs used and the
        normalisation.

    Raises
    ------
    ConfigError
        If an argument is invalid (the message names it): unknown method, channel or
        variable, a bad band or grid, a result with a ``window`` dim.
    DataError
        If the result has no station coordinates, holds neither lag-domain correlations nor
        cross-spectra, or has fewer than two stations with usable pairs.

    Notes
    -----
    *Matrix.* Station positions east and north (km) are the least-squares fit of the pair
    vectors ``distance * (sin(azimuth), cos(azimuth))`` (flat geometry; a warning is logged
    when the pairs do not fit a plane to 1 %). Pair ``src:rec`` gives ``R_ij =
    conj(C_ij)`` and ``R_ji = C_ij``; pairs with NaN data, NaN geometry or no window are left
    out (zero in the matrix). The autocorrelations give the diagonal.

    *Normalisation.* Per frequency, the matrix is coherency-normalised,
    ``R_ij / sqrt(R_ii R_jj)``, so every station weighs the same and the diagonal is 1.
    When a station used has no autocorrelation (pair filters, NaN), every off-diagonal entry
    is normalised to unit modulus instead, ``R_ij / |R_ij|``, with ones on the diagonal (an
    info message is logged).

    *Sign.* A plane wave travelling towards azimuth ``theta`` with slowness ``p`` delays
    station ``k`` by ``p (x_k sin(theta) + y_k cos(theta))``; its correlation peaks at
    positive lag for pairs whose receiver is downstream of the source. The backazimuth of
    that wave is ``theta + 180``: waves travelling towards 60 degrees come from 240 degrees.

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process`::

        power = beamform(result, 0.15, 0.35)
        best = power.where(power == power.max(), drop=True)
        float(best.slowness), float(best.backazimuth)
        (0.33, 240.0)
    """
    freqmin, freqmax = _check_band(freqmin, freqmax)
    slowness_grid = _check_grid(slowness, _DEFAULT_SLOWNESS, "slowness", nonnegative=True)
    backazimuth_grid = _check_grid(azimuth, _DEFAULT_BACKAZIMUTH, "azimuth", nonnegative=False)
    if not isinstance(method, str) or method.lower() not in _METHODS:
        raise ConfigError(f"method: expected one of {_METHODS}, got {method!r}")
    method = method.lower()
    if not isinstance(per_frequency, bool):
        raise ConfigError(f"per_frequency: expected True or False, got {per_frequency!r}")
    if not _is_real(loading) or loading <= 0:
        raise ConfigError(f"loading: expected a finite number > 0 (relative diagonal loading), got {loading!r}")

    data, name = _select_variable(result, variable)
    _check_coordinates(data)
    data = _select_channel(data, channel)
    freqs, spectra = _pair_spectra(data)
    in_band = (freqs >= freqmin) & (freqs <= freqmax)
    if not in_band.any():
        step = float(freqs[1] - freqs[0]) if freqs.size > 1 else float("nan")
        raise ConfigError(
            f"freqmin, freqmax: no frequency bin of the result lies in {freqmin:g}-{freqmax:g} Hz "
            f"(bins every {step:.4g} Hz from {freqs[0]:.4g} to {freqs[-1]:.4g} Hz); widen the band"
        )
    freqs, spectra = freqs[in_band], spectra[:, in_band]

    stations, positions, csdm, n_pairs, normalisation = _cross_spectral_matrix(data, spectra, name)
    logger.info(
        "beamform %s: %d stations, %d pairs, %d frequency bins in %g-%g Hz, %d x %d grid",
        method,
        len(stations),
        n_pairs,
        freqs.size,
        freqmin,
        freqmax,
        slowness_grid.size,
        backazimuth_grid.size,
    )
    power = _grid_power(freqs, positions, csdm, slowness_grid, backazimuth_grid, method, float(loading))

    attrs = {
        "long_name": "beam power, normalised to a maximum of 1",
        "method": method,
        "freqmin": freqmin,
        "freqmax": freqmax,
        "channel": channel,
        "variable": name,
        "loading": float(loading) if method == "mvdr" else 0.0,
        "n_stations": len(stations),
        "n_pairs": n_pairs,
        "stations": " ".join(stations),
        "normalisation": normalisation,
        "sign_convention": "backazimuth: direction the waves come from, degrees clockwise from north",
    }
    coords = {
        "slowness": ("slowness", slowness_grid, {"units": "s/km", "long_name": "horizontal slowness"}),
        "backazimuth": ("backazimuth", backazimuth_grid, {"units": "degrees", "long_name": "backazimuth"}),
    }
    if per_frequency:
        peak = power.max(axis=(1, 2))
        scaled = power / np.where(peak > 0, peak, 1.0)[:, None, None]
        coords["frequency"] = ("frequency", freqs, {"units": "Hz"})
        coords["max_power"] = ("frequency", peak, {"long_name": "largest power before normalisation"})
        return xr.DataArray(
            scaled, dims=("frequency", "slowness", "backazimuth"), coords=coords, name="beam_power", attrs=attrs
        )
    mean = power.mean(axis=0)
    peak = float(mean.max())
    attrs["max_power"] = peak
    return xr.DataArray(
        mean / (peak if peak > 0 else 1.0),
        dims=("slowness", "backazimuth"),
        coords=coords,
        name="beam_power",
        attrs=attrs,
    )


# ---------------------------------------------------------------------------- helpers
def _grid_power(freqs, positions, csdm, slowness_grid, backazimuth_grid, method, loading) -> np.ndarray:
    """Power (F, slowness, backazimuth) for every trial plane wave, a few frequencies at a time."""
    baz = np.deg2rad(backazimuth_grid)
    # waves from backazimuth b travel towards b + 180: propagation unit vector -(sin b, cos b)
    east = -np.outer(slowness_grid, np.sin(baz)).ravel()
    north = -np.outer(slowness_grid, np.cos(baz)).ravel()
    vectors = np.stack([east, north], axis=-1)  # (G, 2)
    n_grid, n_stations = vectors.shape[0], positions.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // (n_grid * n_stations))
    power = np.empty((freqs.size, n_grid))
    for lo in range(0, freqs.size, chunk):
        hi = min(freqs.size, lo + chunk)
        steering = steering_vectors(freqs[lo:hi], positions, vectors)
        if method == "bartlett":
            power[lo:hi] = bartlett_power(csdm[lo:hi], steering)
        else:
            power[lo:hi] = mvdr_power(csdm[lo:hi], steering, loading)
    return power.reshape(freqs.size, slowness_grid.size, backazimuth_grid.size)


def _cross_spectral_matrix(data: xr.DataArray, spectra: np.ndarray, name: str):
    """Stations, positions (N, 2) km, normalised matrix (F, N, N), pairs used and the normalisation."""
    src = [str(s) for s in data["src"].values]
    rec = [str(r) for r in data["rec"].values]
    distance = np.asarray(data["distance"].values, dtype=float)
    azimuth = np.radians(np.asarray(data["azimuth"].values, dtype=float))
    usable = np.isfinite(spectra).all(axis=1)
    counts = next((c for c in (f"n_windows_{name}", "n_windows") if c in data.coords), None)
    if counts is not None:
        usable &= np.asarray(data[counts].values).reshape(-1) > 0
    cross = [k for k in range(len(src)) if src[k] != rec[k] and usable[k] and np.isfinite(distance[k] + azimuth[k])]
    stations = sorted({src[k] for k in cross} | {rec[k] for k in cross})
    left_out = sum(1 for k in range(len(src)) if src[k] != rec[k]) - len(cross)
    if left_out:
        logger.warning("beamform: %d station pairs left out (NaN data or geometry, or no window)", left_out)
    if len(stations) < 2:
        raise DataError(
            f"beamform needs usable correlations between at least two stations with known positions, got "
            f"{len(cross)} usable pair(s) (check n_windows, the distance coordinate and the channel)"
        )
    index = {s: i for i, s in enumerate(stations)}
    rows = np.array([index[src[k]] for k in cross])
    cols = np.array([index[rec[k]] for k in cross])
    positions = _station_positions(
        rows, cols, distance[cross] * np.sin(azimuth[cross]), distance[cross] * np.cos(azimuth[cross]), len(stations)
    )

    n_freq, n = spectra.shape[1], len(stations)
    matrix = np.zeros((n_freq, n, n), dtype=complex)
    pair_spectra = spectra[cross].T  # (F, pairs): C_ij = conj(S_i) S_j
    matrix[:, rows, cols] = pair_spectra.conj()  # R_ij = S_i conj(S_j)
    matrix[:, cols, rows] = pair_spectra

    autos = {src[k]: k for k in range(len(src)) if src[k] == rec[k] and src[k] in index and usable[k]}
    if len(autos) == n:
        diagonal = np.empty((n_freq, n))
        for station, k in autos.items():
            diagonal[:, index[station]] = spectra[k].real
        floor = _AUTO_FLOOR * np.median(np.abs(diagonal), axis=1, keepdims=True)
        diagonal = np.maximum(diagonal, np.where(floor > 0, floor, np.finfo(float).tiny))
        scale = 1.0 / np.sqrt(diagonal)
        matrix *= scale[:, :, None] * scale[:, None, :]
        normalisation = "coherency: R_ij / sqrt(R_ii R_jj) per frequency"
    else:
        logger.info(
            "beamform: %d of %d stations have no usable autocorrelation: cross-spectra normalised to unit "
            "modulus, ones on the diagonal",
            n - len(autos),
            n,
        )
        modulus = np.abs(matrix)
        matrix = np.divide(matrix, modulus, out=np.zeros_like(matrix), where=modulus > 0)
        normalisation = "phase only: R_ij / |R_ij| per frequency, ones on the diagonal (no autocorrelations)"
    matrix[:, np.arange(n), np.arange(n)] = 1.0
    return stations, positions, matrix, len(cross), normalisation


def _station_positions(rows, cols, east_km, north_km, n) -> np.ndarray:
    """Least-squares station positions (N, 2) km, mean zero, from pair vectors r_col - r_row."""
    design = np.zeros((rows.size, n))
    design[np.arange(rows.size), rows] = -1.0
    design[np.arange(rows.size), cols] = 1.0
    target = np.stack([east_km, north_km], axis=-1)
    positions, *_ = np.linalg.lstsq(design, target, rcond=None)
    positions -= positions.mean(axis=0)
    misfit = np.hypot(*(design @ positions - target).T)
    lengths = np.hypot(east_km, north_km)
    if misfit.size and misfit.max() > 0.01 * max(float(lengths.max()), 1e-9):
        logger.warning(
            "beamform: the pair distances and azimuths do not fit flat station positions (largest misfit "
            "%.3g km of %.3g km): a large array or inconsistent coordinates",
            misfit.max(),
            lengths.max(),
        )
    return positions


def _pair_spectra(data: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and complex cross-spectra (pairs, F) of one channel of a result."""
    if "time" in data.dims:
        lags = np.asarray(data["time"].values, dtype=float)
        if np.iscomplexobj(data.values) or lags.size < 2:
            raise DataError(
                f"beamform: expected real correlations over at least 2 lags, got {data.dtype} over {lags.size}"
            )
        dt = float(np.median(np.diff(lags)))
        if not dt > 0 or not np.allclose(np.diff(lags), dt, rtol=1e-6, atol=1e-9 * dt):
            raise DataError("beamform: the 'time' (lag) coordinate is not evenly spaced")
        values = data.transpose("station_pair", "time").values
        freqs = np.fft.rfftfreq(lags.size, dt)
        # sum_t corr(t) exp(-2 pi i f t) with t = lags[0] + n dt: numpy's FFT times the phase of the first lag
        spectra = np.fft.rfft(values, axis=-1) * np.exp(-2j * np.pi * freqs * lags[0])
        return freqs, spectra
    if "frequency" in data.dims:
        if not np.iscomplexobj(data.values):
            raise DataError("beamform: expected complex cross-spectra over 'frequency', got real values")
        return np.asarray(data["frequency"].values, dtype=float), data.transpose("station_pair", "frequency").values
    raise DataError(
        f"beamform: expected lag-domain correlations (a 'time' dim) or cross-spectra (a 'frequency' dim, "
        f"CrossCorrelate(output='spectrum')), got dims {data.dims}"
    )


def _select_variable(result, variable) -> tuple[xr.DataArray, str]:
    if isinstance(result, xr.DataArray) and variable is not None:
        raise ConfigError(f"variable: only for a Dataset; got a DataArray and variable={variable!r}")
    if isinstance(result, xr.Dataset) and not result.data_vars:
        raise DataError("beamform: the result holds no data variable")
    data, name = result_variable(result, variable, "beamform")
    name = "" if name is None else str(name)
    if "window" in data.dims:
        raise ConfigError(
            "result: beamform needs one stack per pair, got a 'window' dim (process(stack=False) or stack=k); "
            "process with stack=True, or pass result.mean('window') for a linear stack"
        )
    if "station_pair" not in data.dims:
        raise DataError(f"beamform: expected a 'station_pair' dim, got {data.dims}")
    return data, name


def _check_coordinates(data: xr.DataArray) -> None:
    missing = [c for c in ("src", "rec", "distance", "azimuth") if c not in data.coords]
    if missing:
        raise DataError(
            f"beamform needs station coordinates in the result, but it has no {', '.join(missing)} coordinate; "
            "give the dataset coordinates (add_dataset(database, name, inventory=stations_table) or a database "
            "with get_coordinates()) and process again"
        )


def _select_channel(data: xr.DataArray, channel) -> xr.DataArray:
    if "channel" not in data.coords:
        raise DataError(f"beamform: expected a 'channel' dim or coordinate, got dims {data.dims}")
    channels = [str(c) for c in np.atleast_1d(data["channel"].values)]
    if not isinstance(channel, str) or channel not in channels:
        raise ConfigError(f"channel: expected one of {channels}, got {channel!r}")
    first, _, second = channel.partition(":")
    if first != second:
        raise ConfigError(
            f"channel: expected a component with itself (e.g. 'Z:Z'), got {channel!r}; a cross-component "
            "matrix is not Hermitian"
        )
    return data.sel(channel=channel) if "channel" in data.dims else data


def _check_band(freqmin, freqmax) -> tuple[float, float]:
    for label, value in (("freqmin", freqmin), ("freqmax", freqmax)):
        if not _is_real(value) or value < 0:
            raise ConfigError(f"{label}: expected a finite number >= 0 Hz, got {value!r}")
    if not freqmin < freqmax:
        raise ConfigError(f"freqmin, freqmax: expected freqmin < freqmax, got {freqmin!r} and {freqmax!r}")
    return float(freqmin), float(freqmax)


def _check_grid(values, default: np.ndarray, label: str, nonnegative: bool) -> np.ndarray:
    if values is None:
        return default.copy()
    try:
        grid = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: expected a 1-D sequence of numbers, got {values!r}") from exc
    grid = np.atleast_1d(grid)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all() or (nonnegative and (grid < 0).any()):
        what = "finite numbers >= 0 (s/km)" if nonnegative else "finite numbers (degrees)"
        raise ConfigError(f"{label}: expected a non-empty 1-D sequence of {what}, got {values!r}")
    return grid


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
