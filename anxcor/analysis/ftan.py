"""Frequency-time analysis (FTAN) of a correlation: group-velocity dispersion images and picks.

The multiple-filter technique (Dziewonski, Bloch and Landisman 1969; Levshin et al. 1989):
a correlation is passed through narrow Gaussian filters ``exp(-alpha ((f - f0) / f0) ** 2)``
centred on ``f0 = 1 / period``; the envelope of each filtered copy (the modulus of its analytic
signal) peaks at the group arrival time ``t`` of that period, and ``distance / t`` is the group
velocity. :func:`ftan` returns the envelope power over (period, group velocity);
:func:`pick_dispersion` follows its ridge and flags where the ridge can be trusted.

The maths is in a numpy kernel (:func:`filtered_envelope_power`); :func:`ftan` reads a
correlation (an xarray ``DataArray`` of one station pair and channel pair, or an obspy
``Trace``), folds it and labels the answer.
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike
from obspy import Trace
from scipy.fft import next_fast_len, rfft, rfftfreq

from anxcor.errors import ConfigError, DataError

__all__ = ["ftan", "pick_dispersion", "default_alpha", "filtered_envelope_power"]

logger = logging.getLogger(__name__)

#: Gaussian filters are cut where they fall below exp(-_GAIN_CUT): 1e-10 of their peak.
_GAIN_CUT = 23.0
#: Complex elements of the phase matrix evaluated at once (frequencies x times): 32 MB.
_CHUNK_ELEMENTS = 1 << 21
#: Bounds of the default alpha.
_ALPHA_MIN, _ALPHA_MAX = 5.0, 100.0
#: Local maxima below this fraction of their period's strongest one are not ridge candidates.
_CANDIDATE_FLOOR = 0.05


# ---------------------------------------------------------------------------- numpy kernels
def default_alpha(distance_km: float) -> float:
    """Default width parameter of the FTAN Gaussian filters for an inter-station distance.

    Parameters
    ----------
    distance_km : float
        Inter-station distance, km.

    Returns
    -------
    float
        ``25 * sqrt(distance_km / 1000)``, clipped to 5-100: 5 up to 40 km, 7.9 at 100 km,
        12.5 at 250 km, 25 at 1000 km, 50 at 4000 km.

    Notes
    -----
    A filter ``exp(-alpha ((f - f0) / f0) ** 2)`` has a relative frequency resolution of
    ``1 / sqrt(2 alpha)`` (standard deviation of ``f / f0``) and an envelope lasting about
    ``period * sqrt(2 alpha) / (2 pi)`` seconds, a relative group-velocity resolution of that
    times ``velocity / distance``. The two are equal for ``alpha = pi * distance / wavelength``,
    so alpha grows with distance, as in the distance tables of Levshin et al. (1989). This rule
    takes the wavelength as ``sqrt(distance * 16 km)``, midway (geometrically) between the
    shortest wavelength usual in ambient-noise work (16 km, 5 s at 3.2 km/s) and the distance.
    The lower bound keeps the filters narrower than an octave; the upper one keeps long
    periods resolvable in time.

    Examples
    --------
    >>> default_alpha(250.0)
    12.5
    """
    return float(np.clip(25.0 * math.sqrt(distance_km / 1000.0), _ALPHA_MIN, _ALPHA_MAX))


def filtered_envelope_power(
    data: np.ndarray,
    sampling_interval_s: float,
    periods_s: np.ndarray,
    alpha: float,
    times_s: np.ndarray,
    *,
    start_s: float = 0.0,
) -> np.ndarray:
    """Envelope power of Gaussian-filtered copies of signals, evaluated at chosen times.

    Parameters
    ----------
    data : numpy.ndarray
        Regularly sampled signals along the last axis, shape ``(..., N)``.
    sampling_interval_s : float
        Sample spacing, s.
    periods_s : numpy.ndarray
        Centre periods of the filters, s, shape ``(P,)``.
    alpha : float
        Filter width parameter: the gain at frequency ``f`` of the filter centred on
        ``f0 = 1 / period`` is ``exp(-alpha * ((f - f0) / f0) ** 2)``.
    times_s : numpy.ndarray
        Times at which to evaluate the envelopes, s, on the axis of ``data`` (shape ``(M,)``).
    start_s : float
        Time of the first sample of ``data``, s.

    Returns
    -------
    numpy.ndarray
        ``|a(t)| ** 2``, shape ``(..., P, M)``, where ``a`` is the analytic signal of the
        filtered copy: twice the positive-frequency part of its spectrum, transformed back.

    Notes
    -----
    The signals are zero-padded to at least twice their length (so a long filter response does
    not wrap around) and the inverse transform is evaluated directly at ``times_s``, only over
    the frequencies where some filter exceeds 1e-10 of its peak: that is exact band-limited
    interpolation of the envelope, with no resampling step. The zero-frequency bin is left out,
    so the mean of the signal does not leak into long periods.

    Examples
    --------
    A 0.1 Hz wave packet centred on 30 s has its 10 s envelope peak at 30 s:

    >>> t = np.arange(0.0, 100.0, 0.5)
    >>> packet = np.exp(-(((t - 30.0) / 8.0) ** 2)) * np.cos(2 * np.pi * 0.1 * (t - 30.0))
    >>> power = filtered_envelope_power(packet, 0.5, np.array([10.0]), 20.0, t)
    >>> float(t[np.argmax(power[0])])
    30.0
    """
    data = np.asarray(data, dtype=np.float64)
    centres_hz = 1.0 / np.asarray(periods_s, dtype=np.float64)
    times_s = np.asarray(times_s, dtype=np.float64)
    n = data.shape[-1]
    nfft = next_fast_len(2 * n, real=True)
    freqs_hz = rfftfreq(nfft, sampling_interval_s)
    reach = math.sqrt(_GAIN_CUT / alpha)  # |f - f0| / f0 where a filter falls to exp(-_GAIN_CUT)
    keep = (freqs_hz > 0.0) & (freqs_hz >= centres_hz.min() * (1.0 - reach)) & (freqs_hz <= centres_hz.max() * (1.0 + reach))
    keep[-1] &= nfft % 2 == 1  # the Nyquist bin of an even transform has no positive-frequency half
    freqs_hz = freqs_hz[keep]
    spectrum = rfft(data, nfft, axis=-1)[..., keep]
    shifts_s = times_s - start_s
    analytic = np.zeros((*data.shape[:-1], centres_hz.size, times_s.size), dtype=np.complex128)
    step = max(1, _CHUNK_ELEMENTS // max(times_s.size, centres_hz.size, 1))
    for first in range(0, freqs_hz.size, step):
        f = freqs_hz[first:first + step]
        gains = np.exp(-alpha * ((f - centres_hz[:, None]) / centres_hz[:, None]) ** 2)  # (P, F)
        phase = np.exp(2j * np.pi * f[:, None] * shifts_s)  # (F, M)
        analytic += (spectrum[..., None, first:first + step] * gains) @ phase
    analytic *= 2.0 / nfft
    return analytic.real**2 + analytic.imag**2


# ---------------------------------------------------------------------------- FTAN image
def ftan(
    trace: xr.DataArray | Trace,
    distance_km: float | None,
    periods: ArrayLike,
    velocities: ArrayLike,
    alpha: float | None = None,
    symmetric: bool = True,
) -> xr.DataArray:
    """Frequency-time analysis of one correlation: envelope power over period and group velocity.

    Parameters
    ----------
    trace : xarray.DataArray or obspy.Trace
        One correlation. A ``DataArray`` has a ``time`` dim (lag, s, regularly spaced) and no
        other dim longer than 1, e.g. ``result["syn"].sel(station_pair=pair, channel="Z:Z")``.
        For a ``Trace`` the lag of the first sample is ``stats.anxcor.lag_start`` when present
        (as :func:`anxcor.io.xarray_to_obspy` writes it); otherwise the trace is read as a
        two-sided correlation centred on zero lag (lag of sample ``i`` of ``n`` is
        ``(i - (n - 1) / 2) * delta``). A one-sided correlation starting at zero lag is best
        given as a ``DataArray`` with ``time`` from 0.
    distance_km : float or None
        Inter-station distance, km. ``None`` takes it from the ``distance`` coordinate (km)
        of a ``DataArray``, or from ``stats.anxcor.distance_km`` (else ``stats.distance``, m)
        of a ``Trace``.
    periods : array_like
        Centre periods of the filters, s, strictly increasing and longer than two samples.
    velocities : array_like
        Group velocities of the image, km/s, strictly increasing and > 0. Each maps to the lag
        ``distance_km / velocity``.
    alpha : float or None
        Width of the Gaussian filters ``exp(-alpha ((f - f0) / f0) ** 2)``: larger is narrower
        in frequency and longer in time. ``None`` uses :func:`default_alpha` of the distance.
    symmetric : bool
        ``True`` analyses the mean of the causal part and the time-reversed acausal part, over
        the lags both cover (a correlation with only lags >= 0, e.g. one folded by
        :func:`anxcor.steps.rotate.symmetric_lags`, is used as it is). ``False`` analyses the
        causal part only (positive lags: waves travelling from source to receiver); reverse the
        time axis first to analyse the acausal part.

    Returns
    -------
    xarray.DataArray
        Named ``"ftan"``, dims ``(period, velocity)``: envelope power ``|a(t)| ** 2`` at
        ``t = distance / velocity`` of the analytic signal ``a`` of each filtered copy,
        normalised per period (each period's row has maximum 1), so the ridge stands out at
        every period whatever the spectrum; the coordinate ``power`` (over ``period``) keeps
        each period's maximum relative to the strongest period (1 there), so the spectrum is
        not lost. Velocities whose lag falls outside the correlation are NaN (a warning is
        logged). attrs: ``distance_km``, ``alpha``, ``symmetric`` (1 or 0),
        ``normalisation``. Scalar coordinates of a ``DataArray`` input (station pair, channel,
        distance, ...) are kept; a ``Trace`` gives ``station_pair``, ``channel`` and
        ``distance`` (km) from ``stats.anxcor`` where present.

    Raises
    ------
    ConfigError
        If an argument is invalid or missing (the message names it).
    DataError
        If the correlation cannot be analysed: NaN or all-zero values, irregular lags, or no
        lag on the side asked for.

    Notes
    -----
    The periods are the centre periods of the filters; no instantaneous-frequency correction
    is applied, so for a spectrum that is steep across a filter the measurement belongs to a
    slightly shifted period. Group velocities are only meaningful a few wavelengths from the
    source: :func:`pick_dispersion` flags the periods too long for the distance.

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process`::

        corr = result["syn"].sel(station_pair="XX.S000:XX.S003", channel="Z:Z")
        image = ftan(corr, None, np.arange(2.5, 8.01, 0.25), np.arange(2.0, 4.51, 0.01))
        picks = pick_dispersion(image)
    """
    values, lags_s, scalar_coords, found_km = _read_correlation(trace)
    distance_km = _distance(distance_km, found_km)
    periods_s = _increasing_grid(periods, "periods", "s")
    velocities_kms = _increasing_grid(velocities, "velocities", "km/s")
    if alpha is None:
        alpha = default_alpha(distance_km)
    elif not _is_real(alpha) or alpha <= 0:
        raise ConfigError(f"alpha: expected a finite number > 0 (or None for the distance-based default), got {alpha!r}")
    alpha = float(alpha)
    if not isinstance(symmetric, bool | np.bool_):
        raise ConfigError(f"symmetric: expected True or False, got {symmetric!r}")

    dt = float(lags_s[1] - lags_s[0])
    if periods_s[0] < 2.0 * dt:
        raise ConfigError(
            f"periods: the shortest, {periods_s[0]:g} s, is below the Nyquist period {2.0 * dt:g} s of the "
            "correlation; use longer periods"
        )
    side, start_s = _fold(values, lags_s, bool(symmetric))
    end_s = start_s + (side.size - 1) * dt
    if periods_s[-1] > end_s - start_s:
        logger.warning(
            "ftan: the longest period, %g s, exceeds the %g s of lags analysed; its envelope is poorly resolved",
            periods_s[-1], end_s - start_s,
        )
    times_s = distance_km / velocities_kms
    outside = (times_s < start_s - 1e-9 * dt) | (times_s > end_s + 1e-9 * dt)
    if outside.all():
        raise ConfigError(
            f"velocities: every arrival time distance / velocity ({times_s.min():.3g}-{times_s.max():.3g} s) "
            f"lies outside the lags analysed ({start_s:g}-{end_s:g} s); check distance_km and velocities"
        )
    if outside.any():
        logger.warning(
            "ftan: %d of %d velocities arrive outside the lags analysed (%g-%g s) and are NaN",
            int(outside.sum()), outside.size, start_s, end_s,
        )
    power = filtered_envelope_power(side, dt, periods_s, alpha, times_s, start_s=start_s)
    power[:, outside] = np.nan
    peaks = np.nanmax(power, axis=1)
    if not np.all(peaks > 0.0):
        raise DataError("ftan: the correlation has no energy in the band of the periods (envelope power 0)")

    image = xr.DataArray(
        power / peaks[:, None],
        dims=("period", "velocity"),
        coords={
            "period": ("period", periods_s, {"units": "s", "long_name": "filter centre period"}),
            "velocity": ("velocity", velocities_kms, {"units": "km/s", "long_name": "group velocity"}),
            "power": ("period", peaks / peaks.max(), {"long_name": "peak envelope power relative to the strongest period"}),
            **scalar_coords,
        },
        name="ftan",
        attrs={
            "long_name": "FTAN envelope power, normalised per period",
            "distance_km": distance_km,
            "alpha": alpha,
            "symmetric": int(bool(symmetric)),
            "normalisation": "per period: max 1 over velocity; coordinate 'power' holds the peaks",
        },
    )
    return image


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _increasing_grid(values, name: str, unit: str) -> np.ndarray:
    if values is None:
        raise ConfigError(f"{name}: required, a 1-D array of values in {unit}")
    try:
        grid = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected a 1-D array of numbers in {unit}, got {values!r}") from exc
    grid = np.atleast_1d(grid)
    if grid.ndim != 1 or grid.size < 3:
        raise ConfigError(f"{name}: expected a 1-D array of at least 3 values in {unit}, got shape {grid.shape}")
    if not np.all(np.isfinite(grid)) or grid[0] <= 0 or not np.all(np.diff(grid) > 0):
        raise ConfigError(
            f"{name}: expected finite values > 0 {unit}, strictly increasing, got {grid[0]:g} ... {grid[-1]:g}; "
            "sort them (np.sort) and drop duplicates"
        )
    return grid


def _distance(distance_km, found_km: float | None) -> float:
    if distance_km is None:
        if found_km is None:
            raise ConfigError(
                "distance_km: required, the inter-station distance in km; the correlation carries no distance "
                "(no 'distance' coordinate, stats.anxcor.distance_km or stats.distance)"
            )
        distance_km = found_km
    if not _is_real(distance_km) or distance_km <= 0:
        raise ConfigError(f"distance_km: expected a finite number > 0 km, got {distance_km!r}")
    return float(distance_km)


def _read_correlation(trace) -> tuple[np.ndarray, np.ndarray, dict, float | None]:
    """Values, lags (s), scalar coordinates to keep and distance (km, or None) of one correlation."""
    if isinstance(trace, xr.DataArray):
        if "time" not in trace.dims:
            raise ConfigError(f"trace: expected a DataArray with a 'time' (lag, s) dim, got dims {tuple(trace.dims)}")
        extra = {d: n for d, n in trace.sizes.items() if d != "time" and n != 1}
        if extra:
            raise ConfigError(
                f"trace: expected one correlation, got extra dims {extra}; select one, e.g. "
                "result['name'].sel(station_pair='NET.A:NET.B', channel='Z:Z')"
            )
        trace = trace.squeeze([d for d in trace.dims if d != "time"], drop=False)
        values = np.asarray(trace.values, dtype=np.float64)
        lags_s = np.asarray(trace["time"].values, dtype=np.float64)
        scalar_coords = {k: v.variable for k, v in trace.coords.items() if v.ndim == 0}
        found_km = float(trace["distance"]) if "distance" in trace.coords and trace["distance"].ndim == 0 else None
    elif isinstance(trace, Trace):
        values = np.asarray(trace.data, dtype=np.float64)
        meta = trace.stats.get("anxcor", {}) or {}
        dt = float(trace.stats.delta)
        if "lag_start" in meta:
            first_s = float(meta["lag_start"])
        else:
            first_s = -0.5 * (values.size - 1) * dt
            logger.info("ftan: %s has no stats.anxcor.lag_start; reading it as centred on zero lag", trace.id)
        lags_s = first_s + dt * np.arange(values.size)
        found_km = meta.get("distance_km")
        if found_km is None and trace.stats.get("distance") is not None:
            found_km = float(trace.stats.distance) / 1000.0
        found_km = None if found_km is None or not math.isfinite(found_km) else float(found_km)
        scalar_coords = {}
        if "src" in meta and "rec" in meta:
            scalar_coords["station_pair"] = f"{meta['src']}:{meta['rec']}"
        if "channel" in meta:
            scalar_coords["channel"] = str(meta["channel"])
        if found_km is not None:
            scalar_coords["distance"] = found_km
    else:
        raise ConfigError(
            f"trace: expected an xarray.DataArray (one pair and channel of a result) or an obspy.Trace, "
            f"got {type(trace).__name__}"
        )
    if values.size < 4:
        raise DataError(f"trace: expected a correlation of at least 4 lags, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise DataError("trace: the correlation holds NaN or inf (did any window contribute to this pair and channel?)")
    steps = np.diff(lags_s)
    if not (steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-6, atol=0.0)):
        raise DataError("trace: expected regularly spaced, increasing lags ('time')")
    return values, lags_s, scalar_coords, found_km


def _fold(values: np.ndarray, lags_s: np.ndarray, symmetric: bool) -> tuple[np.ndarray, float]:
    """The side(s) of a correlation to analyse, on lags >= 0: samples and lag of the first, s."""
    dt = lags_s[1] - lags_s[0]
    tol = 1e-6 * dt
    causal = lags_s >= -tol
    has_causal = np.count_nonzero(lags_s > tol) >= 3
    has_acausal = np.count_nonzero(lags_s < -tol) >= 3
    if not symmetric:
        if not has_causal:
            raise DataError(
                "trace: symmetric=False analyses the causal side (lags > 0), which this correlation lacks; "
                "reverse its time axis or use symmetric=True"
            )
        return values[causal], float(max(lags_s[causal][0], 0.0))
    if not has_acausal:
        return values[causal], float(max(lags_s[causal][0], 0.0))
    if not has_causal:
        logger.info("ftan: no positive lags; analysing the time-reversed acausal side only")
        return values[::-1].copy(), float(max(-lags_s[-1], 0.0))
    # lags 0, dt, ... covered by both sides; the acausal side read at -t (exact on a grid symmetric about 0)
    span_s = min(lags_s[-1], -lags_s[0])
    positive = np.arange(0, int(np.floor(span_s / dt + 1e-6)) + 1) * dt
    causal_part = np.interp(positive, lags_s, values)
    acausal_part = np.interp(-positive, lags_s, values)
    return 0.5 * (causal_part + acausal_part), 0.0


# ---------------------------------------------------------------------------- ridge picking
def pick_dispersion(
    image: xr.DataArray,
    *,
    distance_km: float | None = None,
    min_wavelengths: float = 3.0,
    max_jump: float = 0.1,
    min_amplitude: float = 0.5,
    min_power: float = 0.01,
) -> xr.Dataset:
    """Group-velocity dispersion curve: the ridge of an FTAN image, with a quality flag.

    Parameters
    ----------
    image : xarray.DataArray
        Dims ``period`` (s, increasing) and ``velocity`` (km/s, increasing), as returned by
        :func:`ftan`. Values are compared within each period only.
    distance_km : float or None
        Inter-station distance, km, for the wavelength criterion; ``None`` takes
        ``image.attrs['distance_km']`` (skipping the criterion, with a log message, when absent).
    min_wavelengths : float
        A period is trusted only if the distance is at least this many wavelengths
        ``group_velocity * period``.
    max_jump : float
        Largest relative change of group velocity between neighbouring periods for the ridge
        to count as continuous.
    min_amplitude : float
        A pick is trusted only if its value is at least this fraction of its period's maximum.
    min_power : float
        A pick is trusted only if its period's ``power`` coordinate (see :func:`ftan`) is at
        least this: periods where the correlation has little energy are not trusted.
        Ignored when the image has no ``power`` coordinate.

    Returns
    -------
    xarray.Dataset
        Over ``period``: ``group_velocity`` (km/s; NaN where a period has no finite value),
        ``amplitude`` (the image value at the picked grid node, relative to its period's
        maximum) and ``quality`` (bool, True where the pick is trusted). The image's ``power``
        coordinate and scalar coordinates are kept; attrs record ``distance_km`` (NaN when
        unknown), the thresholds and ``start_period``.

    Raises
    ------
    ConfigError
        If ``image`` or a threshold is invalid.

    Notes
    -----
    Ridge tracking: the track starts at the period with the largest ``power`` (if absent, the
    period whose strongest local maximum most exceeds its second) among periods whose
    maximum is inside the velocity grid, at that maximum. It then moves to the neighbouring
    periods, shorter and longer, each time to the local maximum (along velocity, at least 5 %
    of that period's maximum) nearest in velocity to the previous pick. Each pick is refined
    between grid nodes by a parabola through the logarithm of the three values around it
    (exact for a Gaussian peak).

    A pick is trusted (``quality``) where all hold: it is a local maximum inside the velocity
    grid (not on its first or last node); its value is at least ``min_amplitude``; it belongs
    to the run of periods around the starting period in which every step changes the group
    velocity by at most ``max_jump`` (relative); the distance is at least ``min_wavelengths``
    wavelengths; and the period's ``power`` is at least ``min_power``.

    Examples
    --------
    With ``image`` from :func:`ftan`::

        picks = pick_dispersion(image)
        good = picks.group_velocity.where(picks.quality)
    """
    if not isinstance(image, xr.DataArray) or set(image.dims) != {"period", "velocity"}:
        got = f"dims {tuple(image.dims)}" if isinstance(image, xr.DataArray) else type(image).__name__
        raise ConfigError(f"image: expected a DataArray with dims ('period', 'velocity') as ftan returns, got {got}")
    for name, value, low, high in (
        ("min_wavelengths", min_wavelengths, 0.0, math.inf),
        ("max_jump", max_jump, 0.0, math.inf),
        ("min_amplitude", min_amplitude, 0.0, 1.0),
        ("min_power", min_power, 0.0, 1.0),
    ):
        if not _is_real(value) or not low <= value <= high:
            raise ConfigError(f"{name}: expected a number in [{low:g}, {high:g}], got {value!r}")
    image = image.transpose("period", "velocity")
    periods_s = np.asarray(image["period"].values, dtype=np.float64)
    velocities_kms = np.asarray(image["velocity"].values, dtype=np.float64)
    for name, grid in (("period", periods_s), ("velocity", velocities_kms)):
        if grid.size < 3 or not np.all(np.diff(grid) > 0):
            raise ConfigError(f"image: expected at least 3 strictly increasing {name} values, got {grid.size}")
    if distance_km is None:
        distance_km = image.attrs.get("distance_km")
        if distance_km is None:
            logger.info("pick_dispersion: no distance_km; the wavelength criterion is skipped")
    if distance_km is not None and (not _is_real(distance_km) or distance_km <= 0):
        raise ConfigError(f"distance_km: expected a finite number > 0 km or None, got {distance_km!r}")

    values = np.asarray(image.values, dtype=np.float64)
    finite = np.isfinite(values)
    column_max = np.max(np.where(finite, values, -np.inf), axis=1)
    usable = np.isfinite(column_max) & (column_max > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(finite & usable[:, None], values / column_max[:, None], -np.inf)
    maxima = _local_maxima(relative) & (relative >= _CANDIDATE_FLOOR)
    power = np.asarray(image["power"].values, dtype=np.float64) if "power" in image.coords else None

    start = _start_period(relative, maxima, usable, power)
    picks = np.full(periods_s.size, -1, dtype=np.int64)
    picks[start] = int(np.argmax(relative[start]))
    for order in (range(start + 1, periods_s.size), range(start - 1, -1, -1)):
        previous = velocities_kms[picks[start]]
        for i in order:
            candidates = np.flatnonzero(maxima[i])
            if candidates.size == 0:
                continue
            picks[i] = candidates[np.argmin(np.abs(velocities_kms[candidates] - previous))]
            previous = velocities_kms[picks[i]]

    picked = picks >= 0
    index = np.where(picked, picks, 0)
    rows = np.arange(periods_s.size)
    velocity = np.where(picked, _refine(relative, velocities_kms, index), np.nan)
    amplitude = np.where(picked, relative[rows, index], np.nan)
    inside = picked & (index > 0) & (index < velocities_kms.size - 1)

    steps_ok = np.abs(np.diff(velocity)) <= max_jump * np.fmin(velocity[1:], velocity[:-1])  # NaN -> False
    run = np.zeros(periods_s.size, dtype=bool)
    run[start] = True
    for i in range(start + 1, periods_s.size):
        run[i] = run[i - 1] and steps_ok[i - 1]
    for i in range(start - 1, -1, -1):
        run[i] = run[i + 1] and steps_ok[i]
    quality = inside & run & (amplitude >= min_amplitude)
    if distance_km is not None:
        quality &= distance_km >= min_wavelengths * velocity * periods_s
    if power is not None:
        quality &= power >= min_power

    coords = {"period": image["period"]}
    if power is not None:
        coords["power"] = image["power"]
    coords.update({k: v.variable for k, v in image.coords.items() if v.ndim == 0})
    return xr.Dataset(
        {
            "group_velocity": ("period", velocity, {"units": "km/s", "long_name": "picked group velocity"}),
            "amplitude": ("period", amplitude, {"long_name": "image value at the pick, relative to the period's maximum"}),
            "quality": ("period", quality, {"long_name": "pick trusted (see pick_dispersion)"}),
        },
        coords=coords,
        attrs={
            "distance_km": float("nan") if distance_km is None else float(distance_km),
            "min_wavelengths": float(min_wavelengths),
            "max_jump": float(max_jump),
            "min_amplitude": float(min_amplitude),
            "min_power": float(min_power),
            "start_period": float(periods_s[start]),
        },
    )


def _local_maxima(values: np.ndarray) -> np.ndarray:
    """Local maxima along the last axis (a plateau counts once, at its last node; ends included)."""
    padded = np.pad(values, ((0, 0), (1, 1)), constant_values=-np.inf)
    centre = padded[:, 1:-1]
    return np.isfinite(centre) & (centre >= padded[:, :-2]) & (centre > padded[:, 2:])


def _start_period(relative: np.ndarray, maxima: np.ndarray, usable: np.ndarray, power: np.ndarray | None) -> int:
    """Index of the period the ridge tracking starts from."""
    if not usable.any():
        raise DataError("image: every value is NaN; nothing to pick")
    best = np.argmax(relative, axis=1)
    interior = usable & (best > 0) & (best < relative.shape[1] - 1)
    eligible = interior if interior.any() else usable
    if power is not None:
        score = np.where(np.isfinite(power), power, -np.inf)
    else:
        second = np.sort(np.where(maxima, relative, -np.inf), axis=1)[:, -2]
        score = 1.0 - np.clip(second, 0.0, 1.0)
    return int(np.argmax(np.where(eligible, score, -np.inf)))


def _refine(relative: np.ndarray, velocities_kms: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Sub-grid position of each row's peak: vertex of the parabola through log values at index-1..index+1."""
    n = velocities_kms.size
    rows = np.arange(relative.shape[0])
    refined = velocities_kms[index].copy()
    interior = (index > 0) & (index < n - 1)
    left, mid, right = (np.clip(index + k, 0, n - 1) for k in (-1, 0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        y0, y1, y2 = (np.log(relative[rows, j]) for j in (left, mid, right))
        x0, x1, x2 = velocities_kms[left], velocities_kms[mid], velocities_kms[right]
        # vertex of the parabola through (x0, y0), (x1, y1), (x2, y2), non-uniform spacing allowed
        num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
        den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
        vertex = x1 - 0.5 * num / den
    ok = interior & np.isfinite(vertex) & (vertex >= x0) & (vertex <= x2)
    refined[ok] = vertex[ok]
    return refined
