"""dv/v monitoring: relative seismic velocity changes from repeated correlations.

Three functions. :func:`stretching` and :func:`mwcs` are numpy kernels: they compare a
*current* correlation with a *reference* one over a lag window and return the relative
velocity change. :func:`dvv` runs either on the substacks of
:meth:`anxcor.core.Anxcor.process` (``stack=k``) and returns a labelled time series per
station pair and channel, plus a network average.

Sign convention (every function): ``dvv > 0`` is a velocity *increase*, so arrivals come
*earlier* in the current correlation. A homogeneous change stretches the whole correlation
in lag time: ``current(t) = reference(t * (1 + dvv))``. Values are fractions (``0.01`` is
+1 %).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import numbers
from collections.abc import Hashable

import numpy as np
import xarray as xr
from scipy.fft import next_fast_len, rfft, rfftfreq
from scipy.interpolate import CubicSpline
from scipy.ndimage import uniform_filter1d

from anxcor.errors import ConfigError, DataError
from anxcor.validation import result_variable

__all__ = ["stretching", "mwcs", "dvv"]

logger = logging.getLogger(__name__)

#: Coarse grid step of :func:`stretching` in cycles of the highest frequency at ``tmax``: a
#: trial stretch shifts the latest sample by at most 1/8 period more than its neighbour, so
#: the main lobe of the correlation coefficient (about +/- 1/2 period) holds several grid nodes.
_GRID_CYCLES = 0.125
#: Parabolic refinements after the coarse grid, each on a 4 times finer spacing.
_REFINEMENTS = 3
#: Elements (trace pairs) per vectorised block of the stretching grid search.
_BLOCK_VALUES = 2_000_000
#: Frequency bins averaged (moving mean) to estimate the MWCS coherence.
_SMOOTHING_BINS = 9
#: Zero-padding factor of the MWCS window FFT.
_PAD = 2
#: Largest squared coherence used in the MWCS weights gamma^2 / (1 - gamma^2).
_MAX_COHERENCE2 = 0.9999
#: MWCS windows with less energy than this fraction of the trace's strongest window are left
#: out (-30 dB): noise-free, they hold only far tails of arrivals outside the window.
_MIN_WINDOW_ENERGY = 1e-3
#: Floor of the errors that become inverse-variance weights (zero error: identical inputs).
_MIN_ERROR = 1e-12
_SIGN_CONVENTION = "dvv > 0: velocity increase (arrivals earlier in the current correlation)"


# --------------------------------------------------------------------------- stretching
def stretching(
    reference: np.ndarray,
    current: np.ndarray,
    lags: np.ndarray,
    tmin: float,
    tmax: float,
    max_dvv: float = 0.02,
    both_sides: bool = True,
    *,
    freqmin: float | None = None,
    freqmax: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relative velocity change by the stretching method.

    The reference is stretched by trial factors ``eps`` (``reference(t * (1 + eps))``,
    cubic-spline interpolation) and compared with the current correlation over the lag
    window; the factor with the highest correlation coefficient is ``dvv``.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference correlation(s), shape ``(..., n)``, lag along the last axis.
    current : numpy.ndarray
        Current correlation(s), shape ``(..., n)``; leading dims broadcast with those of
        ``reference``.
    lags : numpy.ndarray
        Lag times of the last axis, s; evenly spaced, increasing, length ``n``.
    tmin, tmax : float
        Lag window, s: samples with ``tmin <= |t| <= tmax`` (``tmin <= t <= tmax`` when
        ``both_sides`` is False). ``tmax * (1 + max_dvv)`` must lie within ``lags``.
    max_dvv : float
        Largest ``|dvv|`` searched (a fraction, ``0.02`` is 2 %).
    both_sides : bool
        Use the negative (acausal) lags as well as the positive ones.
    freqmin, freqmax : float or None
        Band of the correlations, Hz, used only by the error estimate (and the grid step).
        None (both): inferred from the power spectrum of the reference in the lag window (see
        Notes).

    Returns
    -------
    dvv : numpy.ndarray
        Relative velocity change (fraction), shape of the broadcast leading dims (a float for
        1-D inputs). Positive: velocity increase, arrivals earlier in ``current``.
    error : numpy.ndarray
        One-sigma error of ``dvv`` (Weaver et al. 2011, see Notes); NaN where ``cc <= 0``.
    cc : numpy.ndarray
        Correlation coefficient between ``current`` and the reference stretched by ``dvv``.

    Raises
    ------
    ConfigError
        If an argument is invalid (the message names it).

    See Also
    --------
    mwcs : Delays measured window by window instead.
    dvv : Both methods over the substacks of a result.

    Notes
    -----
    *Search.* A coarse grid from ``-max_dvv`` to ``max_dvv`` (0 included; step at most
    ``max_dvv / 20`` and ``1 / (8 f_hi tmax)``, with ``f_hi`` the upper band edge), then three
    parabolic refinements on successively 4 times finer triplets around the best value, and
    a final evaluation of the correlation coefficient at the result (so ``cc`` is a real
    correlation, never an extrapolated peak). Results are limited to ``+/- max_dvv``; a
    value at that limit means the change may be larger (a warning is logged).

    *Correlation coefficient.* Pearson's coefficient over the window samples (both means
    removed).

    *Error.* Weaver, Hadziioannou, Larose and Campillo (2011, GJI 185, 1227-1236):

    .. math::

        \\sigma_{dv/v} = \\frac{\\sqrt{1 - X^2}}{2 X}
        \\sqrt{\\frac{6 \\sqrt{\\pi / 2}\\, T}{\\omega_c^2 (t_2^3 - t_1^3)}}

    with ``X = cc``, ``omega_c = 2 pi f_c`` and ``T = 1 / B``. Weaver et al. assume a coda of
    even intensity over the window ``[t1, t2]``; here ``t2^3 - t1^3`` is replaced by ``3 L
    <t^2>``, where ``L`` is the window length (``2 (tmax - tmin)`` with ``both_sides``, else
    ``tmax - tmin``) and ``<t^2>`` the mean of ``t^2`` over the window weighted by the
    reference's intensity (its square). For an even intensity this is Weaver's
    ``t2^3 - t1^3`` (doubled with both sides); for a decaying coda or an arrival at short
    lags it is smaller, and so the error larger: a stretch moves early samples less.
    Given ``freqmin`` and ``freqmax``: ``f_c = (freqmin + freqmax) / 2``, ``B = freqmax -
    freqmin``. Otherwise, from the power spectrum ``P(f)`` of the reference in the window:
    ``f_c`` is its centroid and ``B = sqrt(12) * sigma_f`` (``sigma_f`` its standard
    deviation about ``f_c``), which is the width of a flat band.

    Traces with a non-finite value in the samples used, or with zero variance in the window,
    give NaN.

    Examples
    --------
    >>> import numpy as np
    >>> lags = np.arange(-50.0, 50.01, 0.1)
    >>> def coda(t):
    ...     return np.cos(2 * np.pi * 0.5 * t + 0.1 * t**2 / 50) * np.exp(-np.abs(t) / 20)
    >>> dv, err, cc = stretching(coda(lags), coda(lags * 1.005), lags, tmin=5.0, tmax=40.0)
    >>> round(float(dv), 4), bool(cc > 0.99)
    (0.005, True)
    """
    lags, dt = _check_lags(lags)
    reference, current = _check_traces(reference, current, lags)
    tmin, tmax = _check_window(tmin, tmax, lags, both_sides)
    if not (_is_real(max_dvv) and 0.0 < max_dvv <= 0.5):
        raise ConfigError(f"max_dvv: expected a number in (0, 0.5] (a fraction, 0.02 is 2 %), got {max_dvv!r}")
    max_dvv = float(max_dvv)
    reach = min(-lags[0], lags[-1]) if both_sides else lags[-1]
    if tmax * (1.0 + max_dvv) > reach + 1e-6 * dt:
        raise ConfigError(
            f"tmax: the reference is stretched up to tmax * (1 + max_dvv) = {tmax * (1 + max_dvv):g} s, beyond the "
            f"lags (to {reach:g} s); use a smaller tmax or max_dvv"
        )
    band = _check_band(freqmin, freqmax)

    shape = np.broadcast_shapes(reference.shape[:-1], current.shape[:-1])
    in_window = _window_mask(lags, tmin, tmax, both_sides)
    t_win = lags[in_window]
    # the reference samples the spline may touch, with a margin of 3 samples
    support = np.abs(lags) <= tmax * (1.0 + max_dvv) + 3.0 * dt
    if not both_sides:
        support &= lags >= tmin * (1.0 - max_dvv) - 3.0 * dt
    ref_rows = reference.reshape(-1, lags.size)
    rows_of = np.broadcast_to(np.arange(ref_rows.shape[0]).reshape(reference.shape[:-1]), shape).ravel()
    cur_win = np.broadcast_to(current[..., in_window], (*shape, t_win.size)).reshape(-1, t_win.size)

    with np.errstate(invalid="ignore"):
        ref_ok = np.isfinite(ref_rows[:, support]).all(axis=1) & (np.std(ref_rows[:, in_window], axis=1) > 0)
        cur_ok = np.isfinite(cur_win).all(axis=1) & (np.std(cur_win, axis=1) > 0)
    valid = ref_ok[rows_of] & cur_ok

    centre_hz, width_hz = _spectral_band(ref_rows, lags, in_window, band)
    dvv_out = np.full(rows_of.size, np.nan)
    cc_out = np.full(rows_of.size, np.nan)
    if valid.any():
        f_hi = band[1] if band is not None else float(np.nanmax((centre_hz + width_hz / 2)[ref_ok]))
        half = math.ceil(max_dvv / min(max_dvv / 20.0, _GRID_CYCLES / (f_hi * tmax)))
        step = max_dvv / half
        grid = np.linspace(-max_dvv, max_dvv, 2 * half + 1)  # 0 included

        sub = np.flatnonzero(support)
        spline_rows = np.where(ref_ok[:, None], ref_rows[:, sub], 0.0)
        coefs = CubicSpline(lags[sub], spline_rows, axis=1).c.transpose(2, 1, 0)  # (rows, segments, 4)
        stretcher = _Stretcher(coefs, float(lags[sub[0]]), dt)
        cur_norm = _normalise(cur_win[valid])
        rows = rows_of[valid]
        est, cc = _grid_search(stretcher, rows, cur_norm, t_win, grid, step, max_dvv)
        dvv_out[valid], cc_out[valid] = est, cc
        at_edge = np.abs(est) >= max_dvv * (1.0 - 1e-9)
        if at_edge.any():
            logger.warning(
                "stretching: %d of %d estimates reached +/- max_dvv = %g; the change may be larger "
                "(increase max_dvv)", int(at_edge.sum()), est.size, max_dvv,
            )
    # 3 L <t^2>_I: Weaver's t2^3 - t1^3 for an intensity spread evenly over the window
    window_length = (tmax - tmin) * (2.0 if both_sides else 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        intensity = np.where(ref_ok[:, None], ref_rows[:, in_window], 0.0) ** 2
        mean_t2 = (intensity * t_win**2).sum(axis=1) / intensity.sum(axis=1)
        window_cubes = (3.0 * window_length * mean_t2)[rows_of]
        omega = 2.0 * np.pi * centre_hz[rows_of]
        scale = np.sqrt(6.0 * np.sqrt(np.pi / 2.0) / width_hz[rows_of] / (omega**2 * window_cubes))
        error = np.sqrt(np.clip(1.0 - cc_out**2, 0.0, None)) / (2.0 * cc_out) * scale
    error = np.where(cc_out > 0, error, np.nan)
    return _shaped(dvv_out, shape), _shaped(error, shape), _shaped(cc_out, shape)


class _Stretcher:
    """Evaluate cubic splines (one per reference row) at arbitrary lags, vectorised."""

    def __init__(self, coefs: np.ndarray, start: float, dt: float) -> None:
        self.coefs = coefs  # (rows, segments, 4), highest power first
        self.start = start
        self.dt = dt

    def __call__(self, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Row ``rows[...]`` at lags ``x``; ``rows`` broadcasts against ``x``."""
        nseg = self.coefs.shape[1]
        seg = np.clip(np.floor((x - self.start) / self.dt).astype(np.intp), 0, nseg - 1)
        d = x - (self.start + seg * self.dt)
        out = self.coefs[rows, seg, 0]
        for k in (1, 2, 3):
            out = out * d + self.coefs[rows, seg, k]
        return out


def _grid_search(stretcher, rows, cur_norm, t_win, grid, step, max_dvv):
    """Best stretch per element: coarse grid, parabolic refinements, final coefficient."""
    n_elem, n_win = cur_norm.shape
    best = np.empty(n_elem)
    block = max(1, _BLOCK_VALUES // (grid.size * n_win))
    positions = t_win[None, :] * (1.0 + grid[:, None])  # (grid, window)
    for first in range(0, n_elem, block):
        part = slice(first, first + block)
        unique, inverse = np.unique(rows[part], return_inverse=True)
        stretched = _normalise(stretcher(unique[:, None, None], positions[None]))  # (u, grid, window)
        cc = np.einsum("egw,ew->eg", stretched[inverse], cur_norm[part])
        k = np.argmax(cc, axis=1)
        inner = (k > 0) & (k < grid.size - 1)
        kk = np.clip(k, 1, grid.size - 2)
        idx = np.arange(k.size)
        offset = _vertex(cc[idx, kk - 1], cc[idx, kk], cc[idx, kk + 1], step)
        best[part] = np.where(inner, grid[kk] + offset, grid[k])
    spacing = step
    for _ in range(_REFINEMENTS):
        spacing /= 4.0
        trial = best[:, None] + spacing * np.array([-1.0, 0.0, 1.0])
        cc = _coefficients(stretcher, rows, cur_norm, t_win, trial)
        best = np.clip(best + _vertex(cc[:, 0], cc[:, 1], cc[:, 2], spacing), -max_dvv, max_dvv)
    cc = _coefficients(stretcher, rows, cur_norm, t_win, best[:, None])[:, 0]
    return best, cc


def _coefficients(stretcher, rows, cur_norm, t_win, trial):
    """Correlation coefficients of each element's current with its reference at stretches ``trial``."""
    out = np.empty(trial.shape)
    block = max(1, _BLOCK_VALUES // (trial.shape[1] * t_win.size))
    for first in range(0, rows.size, block):
        part = slice(first, first + block)
        x = t_win[None, None, :] * (1.0 + trial[part, :, None])
        stretched = _normalise(stretcher(rows[part, None, None], x))
        out[part] = np.einsum("etw,ew->et", stretched, cur_norm[part])
    return out


def _vertex(y0, y1, y2, spacing):
    """Offset of the vertex of the parabola through (-s, y0), (0, y1), (s, y2), within +/- s."""
    curvature = y0 - 2.0 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = 0.5 * spacing * (y0 - y2) / curvature
    return np.where(curvature < 0, np.clip(offset, -spacing, spacing), 0.0)


def _normalise(x: np.ndarray) -> np.ndarray:
    """Remove the mean of the last axis and scale it to unit norm (zero stays zero)."""
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.sqrt(np.einsum("...w,...w->...", x, x))[..., None]
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def _spectral_band(ref_rows, lags, in_window, band):
    """Centre frequency and bandwidth (Hz) per reference row: given, or from its spectrum."""
    n_rows = ref_rows.shape[0]
    if band is not None:
        return np.full(n_rows, 0.5 * (band[0] + band[1])), np.full(n_rows, band[1] - band[0])
    windowed = np.where(in_window & np.isfinite(ref_rows), ref_rows, 0.0)
    nfft = next_fast_len(2 * lags.size)
    power = np.abs(rfft(windowed, nfft, axis=-1)) ** 2
    freqs = rfftfreq(nfft, lags[1] - lags[0])
    total = power.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (power * freqs).sum(axis=-1) / total
        variance = (power * (freqs[None, :] - centre[:, None]) ** 2).sum(axis=-1) / total
    return centre, np.sqrt(12.0 * variance)


# --------------------------------------------------------------------------- MWCS
def mwcs(
    reference: np.ndarray,
    current: np.ndarray,
    lags: np.ndarray,
    freqmin: float,
    freqmax: float,
    tmin: float,
    tmax: float,
    window_s: float,
    step_s: float,
    *,
    both_sides: bool = True,
    min_coherence: float = 0.6,
    max_dt: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Relative velocity change by moving-window cross-spectral analysis (MWCS).

    In each window the delay of the current correlation is the slope of the cross-spectral
    phase against angular frequency; dv/v is minus the slope of those delays against lag.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference correlation(s), shape ``(..., n)``, lag along the last axis.
    current : numpy.ndarray
        Current correlation(s), shape ``(..., n)``; leading dims broadcast with those of
        ``reference``.
    lags : numpy.ndarray
        Lag times of the last axis, s; evenly spaced, increasing, length ``n``.
    freqmin, freqmax : float
        Frequency band of the phase regression, Hz.
    tmin, tmax : float
        Lag range, s: windows lie within ``tmin <= |t| <= tmax`` (``tmin <= t <= tmax``
        when ``both_sides`` is False).
    window_s : float
        Length of each window, s.
    step_s : float
        Step between windows, s.
    both_sides : bool
        Use windows on the negative (acausal) lags too, mirrored on the positive ones.
    min_coherence : float
        Windows whose mean coherence over the band is below this are left out, 0 to 1.
    max_dt : float or None
        Windows whose delay exceeds this (s) are left out; None: ``1 / (2 freqmax)``, where
        the phase at ``freqmax`` reaches pi.

    Returns
    -------
    dvv : numpy.ndarray
        Relative velocity change (fraction), shape of the broadcast leading dims (a float for
        1-D inputs). Positive: velocity increase, arrivals earlier in ``current``.
    error : numpy.ndarray
        One-sigma error of ``dvv`` from the two regressions (see Notes).

    Raises
    ------
    ConfigError
        If an argument is invalid (the message names it).

    See Also
    --------
    stretching : One stretch factor for the whole lag window instead.
    dvv : Both methods over the substacks of a result.

    Notes
    -----
    *Per window* (mean removed, Hann taper, FFT zero-padded to twice the window length):
    cross-spectrum ``X = conj(R) C``. A first guess ``dt0`` is the peak of the windows'
    cross-correlation (within ``max_dt``, parabolic interpolation); ``X`` is multiplied by
    ``exp(i omega dt0)`` so that what is left is a small delay, then ``X`` and the
    auto-spectra are averaged over 9 frequency bins (about 4.5 independent estimates ``m``)
    to give the squared coherence ``g2 = |<X>|^2 / (<|R|^2> <|C|^2>)`` (at most 0.9999).
    The unwrapped phase ``phi`` of ``<X>`` in the band is fitted through the origin,
    ``phi = -omega dt1``, by weighted least squares with weights ``w = 2 m g2 / (1 - g2) *
    |<X>| / max|<X>|``: the inverse of the variance of the phase of a coherence estimate,
    scaled down where the window has little energy (such bins hold spectral leakage of the
    taper rather than delay; choose ``freqmin``, ``freqmax`` where the correlations have energy):
    ``dt1 = -sum(w omega phi) / sum(w omega^2)`` and ``dt = dt0 + dt1``. Its error is
    ``sigma_dt^2 = max(1, chi2_red) / sum(w omega^2)`` with ``chi2_red = sum(w r^2) / (N -
    1)`` from the residuals ``r``, ``N`` the independent frequencies in the band (half the
    padded bins): the propagated error, inflated when the phases scatter more than the
    coherence says. Smoothing without the first-guess correction would taper the
    cross-correlation around lag 0 and pull delays towards 0. The delay is assigned to the
    energy centroid of the two tapered windows (not the window centre), where a decaying
    coda concentrates the measured delay. A window is kept when its samples are finite, its
    mean coherence is at least ``min_coherence``, ``|dt| <= max_dt`` and its energy is at
    least 1/1000 of that of the strongest window of the trace (weaker windows hold, in
    noise-free data, only far tails of arrivals outside them).

    *Over windows*: ``dt = a t`` through the origin with weights ``u = 1 / sigma_dt^2``;
    ``dvv = -a`` and ``error = sqrt(max(1, chi2_red) / sum(u t^2))`` with ``chi2_red =
    sum(u (dt - a t)^2) / (K - 1)`` over the ``K`` windows kept, the same rule.

    MWCS assumes small delays: ``|dvv| * tmax * freqmax`` should stay well below 1/2 (so
    that ``max_dt`` keeps the late windows), and a window should hold at least two periods
    (``window_s * freqmin >= 2``). Fewer than two windows kept, or a non-finite sample in
    any window, give NaN.

    Examples
    --------
    >>> import numpy as np
    >>> lags = np.arange(-50.0, 50.01, 0.1)
    >>> def coda(t):
    ...     waves = sum(np.cos(2 * np.pi * f * t + f) for f in (0.3, 0.45, 0.6, 0.75))
    ...     return waves * np.exp(-np.abs(t) / 20)
    >>> dv, err = mwcs(coda(lags), coda(lags * 1.005), lags, 0.2, 1.0, 5.0, 40.0, 10.0, 5.0)
    >>> round(float(dv), 3)
    0.005
    """
    lags, dt = _check_lags(lags)
    reference, current = _check_traces(reference, current, lags)
    tmin, tmax = _check_window(tmin, tmax, lags, both_sides)
    band = _check_band(freqmin, freqmax, required=True)
    if not (_is_real(window_s) and window_s > 0):
        raise ConfigError(f"window_s: expected a window length > 0 s, got {window_s!r}")
    if not (_is_real(step_s) and step_s > 0):
        raise ConfigError(f"step_s: expected a step > 0 s, got {step_s!r}")
    if not (_is_real(min_coherence) and 0.0 <= min_coherence <= 1.0):
        raise ConfigError(f"min_coherence: expected a number from 0 to 1, got {min_coherence!r}")
    if max_dt is None:
        max_dt = 0.5 / band[1]
    elif not (_is_real(max_dt) and max_dt > 0):
        raise ConfigError(f"max_dt: expected None or a delay > 0 s, got {max_dt!r}")
    if band[1] > 0.5 / dt:
        raise ConfigError(f"freqmax: expected at most the Nyquist frequency {0.5 / dt:g} Hz, got {freqmax!r}")
    length = round(window_s / dt)
    if length < 4:
        raise ConfigError(f"window_s: expected at least 4 samples ({4 * dt:g} s), got {window_s!r}")
    if window_s > tmax - tmin + dt / 2:
        raise ConfigError(f"window_s: the window ({window_s:g} s) must fit in tmax - tmin = {tmax - tmin:g} s")
    starts = _window_starts(lags, tmin, tmax, length, max(1, round(step_s / dt)), both_sides)
    nfft = next_fast_len(_PAD * length)
    freqs = rfftfreq(nfft, dt)
    in_band = (freqs >= band[0]) & (freqs <= band[1])
    if in_band.sum() < 3 * _PAD:
        raise ConfigError(
            f"window_s: a {window_s:g} s window resolves {in_band.sum() / _PAD:g} frequencies in "
            f"[{band[0]:g}, {band[1]:g}] Hz, fewer than 3; use a longer window_s or a wider band"
        )

    shape = np.broadcast_shapes(reference.shape[:-1], current.shape[:-1])
    index = starts[:, None] + np.arange(length)  # (windows, samples)
    ref_rows = reference.reshape(-1, lags.size)
    rows_of = np.broadcast_to(np.arange(ref_rows.shape[0]).reshape(reference.shape[:-1]), shape).ravel()
    cur_rows = np.broadcast_to(current, (*shape, lags.size)).reshape(-1, lags.size)
    dvv_out = np.full(rows_of.size, np.nan)
    error = np.full(rows_of.size, np.nan)
    spectral = _WindowSpectra(index, lags[index], nfft, freqs, in_band, max_dt, min_coherence)
    block = max(1, _BLOCK_VALUES // (index.size * _PAD))
    for first in range(0, rows_of.size, block):
        part = slice(first, first + block)
        delay, delay_var, centroid, keep = spectral(ref_rows[rows_of[part]], cur_rows[part], dt)
        dvv_out[part], error[part] = _delay_slope(delay, delay_var, centroid, keep, dt)
    return _shaped(dvv_out, shape), _shaped(error, shape)


class _WindowSpectra:
    """Delays (s), their variances and times of the MWCS windows of blocks of traces."""

    def __init__(self, index, times, nfft, freqs, in_band, max_dt, min_coherence) -> None:
        self.index = index  # (windows, samples)
        self.times = times  # lag of each sample of each window, s
        self.nfft = nfft
        self.freqs = freqs
        self.in_band = in_band
        self.max_dt = max_dt
        self.min_coherence = min_coherence
        self.taper = np.hanning(index.shape[1] + 2)[1:-1]

    def __call__(self, reference, current, dt):
        """Per trace (row) and window: delay, variance, time and whether it is kept."""
        ref_seg, cur_seg = reference[:, self.index], current[:, self.index]  # (rows, windows, samples)
        finite = np.isfinite(ref_seg).all(axis=-1) & np.isfinite(cur_seg).all(axis=-1)
        ref_seg = np.where(finite[..., None], ref_seg, 0.0)
        cur_seg = np.where(finite[..., None], cur_seg, 0.0)
        ref_seg = (ref_seg - ref_seg.mean(axis=-1, keepdims=True)) * self.taper
        cur_seg = (cur_seg - cur_seg.mean(axis=-1, keepdims=True)) * self.taper
        spec_ref = rfft(ref_seg, self.nfft, axis=-1)
        spec_cur = rfft(cur_seg, self.nfft, axis=-1)
        cross = np.conj(spec_ref) * spec_cur
        # first guess: the peak of the windows' cross-correlation; the phase ramp it implies is
        # removed before smoothing (smoothing over frequency tapers the cross-correlation around
        # lag 0 and would pull the delay towards 0), and added back after the regression
        guess = _peak_lag(cross, self.nfft, dt, self.max_dt)
        cross = cross * np.exp(2j * np.pi * self.freqs * guess[..., None])
        band = self.in_band
        cross = (_smooth(cross.real) + 1j * _smooth(cross.imag))[..., band]
        power_ref = _smooth(np.abs(spec_ref) ** 2)[..., band]
        power_cur = _smooth(np.abs(spec_cur) ** 2)[..., band]
        omega = 2.0 * np.pi * self.freqs[band]
        averaged = _SMOOTHING_BINS / _PAD  # independent spectral estimates per smoothed bin
        independent = max(2.0, omega.size / _PAD)  # independent bins in the band
        with np.errstate(divide="ignore", invalid="ignore"):
            coherence2 = np.clip(np.abs(cross) ** 2 / (power_ref * power_cur), 0.0, _MAX_COHERENCE2)
            coherence2 = np.where(np.isfinite(coherence2), coherence2, 0.0)
            # 1 / variance of the phase, scaled by the relative amplitude: bins with little
            # energy in the window hold spectral leakage more than delay
            amplitude = np.abs(cross)
            weight = 2.0 * averaged * coherence2 / (1.0 - coherence2) * amplitude / amplitude.max(axis=-1, keepdims=True)
            weight = np.where(np.isfinite(weight), weight, 0.0)
            phase = np.unwrap(np.angle(cross), axis=-1)
            sww = (weight * omega**2).sum(axis=-1)
            residual_delay = -(weight * omega * phase).sum(axis=-1) / sww
            residual = phase + omega * residual_delay[..., None]
            chi2 = (weight * residual**2).sum(axis=-1) / (independent - 1.0)
            delay_var = np.maximum(1.0, chi2) / sww
            energy = ref_seg**2 + cur_seg**2
            window_energy = energy.sum(axis=-1)
            centroid = (energy * self.times).sum(axis=-1) / window_energy
            loud = window_energy >= _MIN_WINDOW_ENERGY * window_energy.max(axis=-1, keepdims=True)
        delay = residual_delay + guess
        keep = finite & loud & (np.sqrt(coherence2).mean(axis=-1) >= self.min_coherence) & (sww > 0)
        keep &= np.isfinite(delay) & (np.abs(delay) <= self.max_dt) & np.isfinite(centroid)
        # a trace with a non-finite window anywhere has no complete measurement
        keep &= finite.all(axis=-1, keepdims=True)
        return delay, delay_var, centroid, keep


def _delay_slope(delay, delay_var, centroid, keep, dt):
    """-slope of delay against time through the origin (weighted), and its error, per row."""
    u = np.where(keep, 1.0 / np.maximum(delay_var, (_MIN_ERROR * dt) ** 2), 0.0)
    t = np.where(keep, centroid, 0.0)
    d = np.where(keep, delay, 0.0)
    count = keep.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sutt = (u * t * t).sum(axis=-1)
        slope = (u * t * d).sum(axis=-1) / sutt
        chi2 = (u * (d - slope[:, None] * t) ** 2).sum(axis=-1) / (count - 1)
        error = np.sqrt(np.maximum(1.0, chi2) / sutt)
    usable = (count >= 2) & (sutt > 0)
    return np.where(usable, -slope, np.nan), np.where(usable, error, np.nan)


def _window_starts(lags, tmin, tmax, length, step, both_sides) -> np.ndarray:
    """First sample of each MWCS window: positive lags from tmin on, negative ones mirrored."""
    tol = 1e-6 * (lags[1] - lags[0])
    positive = np.flatnonzero((lags >= tmin - tol) & (lags <= tmax + tol))
    starts = list(range(positive[0], positive[-1] - length + 2, step)) if positive.size >= length else []
    if both_sides:
        negative = np.flatnonzero((lags <= -tmin + tol) & (lags >= -tmax - tol))
        if negative.size >= length:
            # mirrored: the last window ends at -tmin, the next one step earlier...
            ends = range(negative[-1], negative[0] + length - 2, -step)
            starts = [end - length + 1 for end in ends][::-1] + starts
    if not starts:
        raise ConfigError("window_s: no window fits in the lag range; use a shorter window_s or a wider tmin..tmax")
    return np.asarray(starts, dtype=np.intp)


def _peak_lag(cross: np.ndarray, nfft: int, dt: float, max_dt: float) -> np.ndarray:
    """Lag (s) of the largest value of the cross-correlation whose spectrum is ``cross``,
    within +/- max_dt, refined by a parabola through the three samples around it."""
    corr = np.fft.irfft(cross, nfft, axis=-1)
    reach = min(nfft // 2 - 1, max(1, int(max_dt / dt)))
    lags = np.arange(-reach, reach + 1)
    values = corr[..., lags % nfft]
    k = np.argmax(values, axis=-1)
    kk = np.clip(k, 1, lags.size - 2)
    take = lambda offset: np.take_along_axis(values, (kk + offset)[..., None], axis=-1)[..., 0]  # noqa: E731
    offset = _vertex(take(-1), take(0), take(1), 1.0)
    inner = (k > 0) & (k < lags.size - 1)
    return (lags[k] + np.where(inner, offset, 0.0)) * dt


def _smooth(x: np.ndarray) -> np.ndarray:
    return uniform_filter1d(x, _SMOOTHING_BINS, axis=-1, mode="nearest")


# --------------------------------------------------------------------------- labelled wrapper
def dvv(
    substacks: xr.Dataset | xr.DataArray,
    reference: str | int | xr.DataArray | xr.Dataset = "mean",
    method: str = "stretching",
    *,
    variable: Hashable | None = None,
    include_autocorrelations: bool = False,
    **kwargs: object,
) -> xr.Dataset:
    """Relative velocity change over time, per station pair and channel and for the network.

    Each substack of ``substacks`` is compared with a reference correlation by
    :func:`stretching` or :func:`mwcs`; the estimates of all pairs and channels are then
    averaged, weighted by their errors.

    Parameters
    ----------
    substacks : xarray.Dataset or xarray.DataArray
        Correlations with a ``window`` dimension (one entry per substack, from
        ``Anxcor.process(..., stack=k)``; ``stack=False`` works too) and a ``time`` (lag, s)
        dimension; usually also ``channel`` and ``station_pair``.
    reference : {"mean"}, int, xarray.DataArray or xarray.Dataset
        ``"mean"``: the mean of all substacks, weighted by their ``n_windows`` coordinate when
        present (the stack of every window), else the plain mean; substacks with a
        non-finite sample are left out of it. An int: that
        substack (position along ``window``). A DataArray or Dataset: a stacked result
        (e.g. ``process(..., stack=True)`` over a quiet period) with the same lags; pairs and
        channels are matched by label (missing ones give NaN).
    method : {"stretching", "mwcs"}
        :func:`stretching` or :func:`mwcs`.
    variable : hashable or None
        Data variable to use when ``substacks`` (and ``reference``) is a Dataset; None: the
        first one.
    include_autocorrelations : bool
        Also measure the autocorrelations (pairs ``'A:A'``). False by default: a single
        station's correlation is dominated by the lag-0 peak and the local response, and
        the cross-correlations carry the travel times.
    **kwargs
        Arguments of the method: ``tmin``, ``tmax`` (required), ``max_dvv``,
        ``both_sides``, ``freqmin``, ``freqmax`` for stretching; ``freqmin``, ``freqmax``,
        ``tmin``, ``tmax``, ``window_s``, ``step_s`` (required), ``both_sides``,
        ``min_coherence``, ``max_dt`` for MWCS.

    Returns
    -------
    xarray.Dataset
        Over ``window`` and the other dims of ``substacks`` except ``time``: ``dvv``
        (fraction, positive = velocity increase), ``error`` (one sigma) and, for
        stretching, ``cc``. Over ``window`` only: ``dvv_network``, ``error_network`` and
        ``n_network`` (how many estimates the average used). Coordinates without a lag
        dim (``src``, ``rec``, ``distance``, ``n_windows``...) are kept; ``attrs`` record the
        method, its arguments (JSON), the reference and the sign convention.

    Raises
    ------
    ConfigError
        If an argument is invalid (the message names it).
    DataError
        If no station pair is left to measure (only autocorrelations).

    See Also
    --------
    stretching : The stretching kernel.
    mwcs : The moving-window cross-spectral kernel.

    Notes
    -----
    The network average is the inverse-variance weighted mean over every pair and channel
    with a finite ``dvv`` and a finite error: ``w = 1 / error^2``, ``dvv_network = sum(w
    dvv) / sum(w)``, ``error_network = sqrt(max(1, chi2_red) / sum(w))`` with ``chi2_red =
    sum(w (dvv - dvv_network)^2) / (N - 1)``: the formal error, inflated when the estimates
    scatter more than their errors say (their errors are not independent: pairs share
    stations). A substack without data (``n_windows`` 0, all NaN) gives NaN.

    With ``reference="mean"`` each substack is part of its own reference: when substacks
    are noisy this pulls their ``dvv`` towards 0 (in the synthetic end-to-end test, a 1 %
    step over six 1-hour substacks measures about 0.85 %). A reference stacked over another
    period (a DataArray or Dataset), or one substack (an int), avoids it.

    Examples
    --------
    With ``anx`` an :class:`~anxcor.core.Anxcor` and ``times`` its window start times::

        result = anx.process(times, stack=6)
        series = dvv(result, tmin=5.0, tmax=35.0)
        series["dvv_network"].plot()
    """
    data, name = _select(substacks, variable, "substacks")
    for dim in ("window", "time"):
        if dim not in data.dims:
            raise ConfigError(
                f"substacks: expected a {dim!r} dimension (correlations from process(..., stack=k), which have "
                f"'window' and 'time'), got dims {tuple(data.dims)}"
            )
    if not isinstance(include_autocorrelations, bool):
        raise ConfigError(f"include_autocorrelations: expected True or False, got {include_autocorrelations!r}")
    if not isinstance(method, str) or method not in _METHODS:
        raise ConfigError(f"method: expected one of {sorted(_METHODS)}, got {method!r}")
    kernel, required = _METHODS[method]
    options = _method_options(method, kernel, required, kwargs)
    if not include_autocorrelations and "station_pair" in data.dims:
        data = data.isel(station_pair=~_is_autocorrelation(data))
        if data.sizes["station_pair"] == 0:
            raise DataError(
                "substacks: only autocorrelations, which dvv skips by default; pass include_autocorrelations=True"
            )
    batch = [d for d in data.dims if d not in ("window", "time")]
    data = data.transpose("window", *batch, "time")
    ref, ref_text = _reference(reference, data, name, batch)
    lags = np.asarray(data["time"].values, dtype=float)

    results = kernel(ref.values[None], data.values, lags, **options)
    names = ("dvv", "error", "cc")[: len(results)]
    coords = {k: c for k, c in data.coords.items() if "time" not in c.dims}
    out = xr.Dataset({n: (("window", *batch), np.asarray(r)) for n, r in zip(names, results, strict=True)}, coords=coords)
    out["dvv"].attrs.update(units="1", long_name="relative velocity change dv/v", sign_convention=_SIGN_CONVENTION)
    out["error"].attrs.update(units="1", long_name="one-sigma error of dv/v")
    if "cc" in out:
        out["cc"].attrs.update(units="1", long_name="correlation coefficient after stretching")
    mean, error, count = _network_average(out["dvv"].values.reshape(data.sizes["window"], -1),
                                          out["error"].values.reshape(data.sizes["window"], -1))
    out["dvv_network"] = ("window", mean, {"units": "1", "long_name": "network dv/v (inverse-variance weighted)"})
    out["error_network"] = ("window", error, {"units": "1", "long_name": "one-sigma error of the network dv/v"})
    out["n_network"] = ("window", count, {"long_name": "estimates in the network average"})
    out.attrs.update(
        method=method,
        parameters=json.dumps(options),
        reference=ref_text,
        variable=str(name) if name is not None else "",
        include_autocorrelations=int(include_autocorrelations),
        sign_convention=_SIGN_CONVENTION,
    )
    logger.info(
        "dvv (%s): %d of %d estimates finite over %d substacks",
        method, int(np.isfinite(out["dvv"].values).sum()), out["dvv"].size, data.sizes["window"],
    )
    return out


_METHODS = {
    "stretching": (stretching, ("tmin", "tmax")),
    "mwcs": (mwcs, ("freqmin", "freqmax", "tmin", "tmax", "window_s", "step_s")),
}


def _method_options(method, kernel, required, kwargs) -> dict:
    """The method's keyword arguments, checked against its signature."""
    accepted = [p for p in inspect.signature(kernel).parameters if p not in ("reference", "current", "lags")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(f"{unknown[0]}: not an argument of method={method!r}; expected some of {accepted}")
    missing = [p for p in required if p not in kwargs]
    if missing:
        raise ConfigError(
            f"{missing[0]}: method={method!r} needs {', '.join(required)} (seconds and Hz), e.g. "
            + ("dvv(result, tmin=5.0, tmax=30.0)" if method == "stretching" else
               "dvv(result, method='mwcs', freqmin=0.1, freqmax=0.5, tmin=5.0, tmax=30.0, window_s=10.0, step_s=5.0)")
        )
    return {k: (float(v) if _is_real(v) and not isinstance(v, bool) else v) for k, v in kwargs.items()}


def _select(obj, variable, what) -> tuple[xr.DataArray, Hashable | None]:
    """The DataArray to use from a Dataset or DataArray argument."""
    return result_variable(obj, variable, what)


def _is_autocorrelation(data: xr.DataArray) -> np.ndarray:
    if "src" in data.coords and "rec" in data.coords:
        return np.asarray(data["src"].values == data["rec"].values, dtype=bool)
    parts = [str(p).split(":") for p in data["station_pair"].values]
    return np.array([len(p) == 2 and p[0] == p[1] for p in parts], dtype=bool)


def _reference(reference, data: xr.DataArray, name, batch) -> tuple[xr.DataArray, str]:
    """The reference correlations over ``batch`` and ``time``, and a description of them."""
    if isinstance(reference, str):
        if reference != "mean":
            raise ConfigError(f"reference: expected 'mean', an int or a DataArray/Dataset, got {reference!r}")
        complete = np.isfinite(data).all("time")  # substacks with a gap or no data are left out
        counts = next((data[c] for c in (f"n_windows_{name}", "n_windows") if c in data.coords), None)
        weighted = counts is not None and "window" in counts.dims
        weights = (counts if weighted else xr.ones_like(complete)).where(complete, 0).astype(float)
        total = weights.sum("window")
        ref = (data.where(complete, 0.0) * weights).sum("window") / total.where(total > 0)
        text = "mean of all substacks" + (" weighted by n_windows" if weighted else "")
        return ref.transpose(*batch, "time"), text
    if isinstance(reference, numbers.Integral) and not isinstance(reference, bool):
        size = data.sizes["window"]
        if not -size <= int(reference) < size:
            raise ConfigError(f"reference: expected a substack index from {-size} to {size - 1}, got {reference}")
        return data.isel(window=int(reference)).drop_vars("window").transpose(*batch, "time"), f"substack {int(reference)}"
    if isinstance(reference, xr.Dataset):
        if name is None or name not in reference.data_vars:
            raise ConfigError(f"reference: expected a Dataset holding the variable {name!r}, got {list(reference.data_vars)}")
        reference = reference[name]
    if not isinstance(reference, xr.DataArray):
        raise ConfigError(f"reference: expected 'mean', an int or a DataArray/Dataset, got {type(reference).__name__}")
    ref = reference
    if "window" in ref.dims:
        if ref.sizes["window"] != 1:
            raise ConfigError(
                f"reference: expected a stacked result (no 'window' dim, or one entry), got {ref.sizes['window']} "
                "windows; stack them first (e.g. reference=result.mean('window'))"
            )
        ref = ref.isel(window=0)
    if "time" not in ref.dims:
        raise ConfigError(f"reference: expected a 'time' (lag) dimension, got dims {tuple(ref.dims)}")
    lags = data["time"].values
    if ref.sizes["time"] != lags.size or not np.allclose(ref["time"].values, lags, rtol=0, atol=1e-6 * abs(lags[1] - lags[0])):
        raise ConfigError(
            "reference: its lags ('time') differ from those of the substacks; correlate both with the same "
            "sampling rate and max_tau_shift"
        )
    extra = [d for d in ref.dims if d != "time" and d not in batch]
    if extra:
        raise ConfigError(f"reference: dims {extra} are not dims of the substacks {tuple(data.dims)}")
    ref = ref.drop_vars([c for c in ref.coords if c not in ref.dims]).assign_coords(time=lags)
    ref = ref.reindex({d: data[d].values for d in batch if d in ref.indexes and d in data.indexes})
    ref = ref.broadcast_like(data.isel(window=0, drop=True)).transpose(*batch, "time")
    return ref, "given"


def _network_average(values: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance weighted mean over the last axis, its error and the count."""
    ok = np.isfinite(values) & np.isfinite(errors)
    weight = np.where(ok, 1.0 / np.maximum(np.where(ok, errors, 1.0), _MIN_ERROR) ** 2, 0.0)
    x = np.where(ok, values, 0.0)
    count = ok.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = weight.sum(axis=-1)
        mean = (weight * x).sum(axis=-1) / total
        chi2 = (weight * (x - mean[:, None]) ** 2).sum(axis=-1) / (count - 1)
        chi2 = np.where(count > 1, chi2, 1.0)
        error = np.sqrt(np.maximum(1.0, chi2) / total)
    mean = np.where(count > 0, mean, np.nan)
    error = np.where(count > 0, error, np.nan)
    return mean, error, count


# --------------------------------------------------------------------------- checks
def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _check_lags(lags) -> tuple[np.ndarray, float]:
    try:
        lags = np.asarray(lags, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"lags: expected a 1-D array of lag times in s, got {type(lags).__name__}") from None
    if lags.ndim != 1 or lags.size < 4 or not np.isfinite(lags).all():
        raise ConfigError(f"lags: expected a 1-D array of at least 4 finite lag times in s, got shape {lags.shape}")
    steps = np.diff(lags)
    dt = float(steps.mean())
    if dt <= 0 or np.abs(steps - dt).max() > 1e-6 * dt:
        raise ConfigError("lags: expected evenly spaced, increasing lag times (a correlation's 'time' coordinate)")
    return lags, dt


def _check_traces(reference, current, lags) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for label, value in (("reference", reference), ("current", current)):
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ConfigError(f"{label}: expected a numeric array, got {type(value).__name__}") from None
        if array.ndim == 0 or array.shape[-1] != lags.size:
            raise ConfigError(f"{label}: expected the lag axis last with {lags.size} samples (as lags), got shape {array.shape}")
        arrays.append(array)
    try:
        np.broadcast_shapes(arrays[0].shape, arrays[1].shape)
    except ValueError:
        raise ConfigError(
            f"current: shape {arrays[1].shape} does not broadcast with reference {arrays[0].shape}"
        ) from None
    return arrays[0], arrays[1]


def _check_window(tmin, tmax, lags, both_sides) -> tuple[float, float]:
    if not isinstance(both_sides, bool):
        raise ConfigError(f"both_sides: expected True or False, got {both_sides!r}")
    if not (_is_real(tmin) and tmin >= 0):
        raise ConfigError(f"tmin: expected a lag >= 0 s, got {tmin!r}")
    if not (_is_real(tmax) and tmax > tmin):
        raise ConfigError(f"tmax: expected a lag > tmin = {tmin!r} s, got {tmax!r}")
    reach = min(-lags[0], lags[-1]) if both_sides else lags[-1]
    if tmax > reach + 1e-6 * (lags[1] - lags[0]):
        where = "the largest lag on both sides (both_sides=True)" if both_sides else "the largest lag"
        raise ConfigError(f"tmax: expected at most {where}, {reach:g} s, got {tmax!r}")
    if _window_mask(lags, float(tmin), float(tmax), both_sides).sum() < 4:
        raise ConfigError(f"tmin, tmax: the window [{tmin}, {tmax}] s holds fewer than 4 samples")
    return float(tmin), float(tmax)


def _check_band(freqmin, freqmax, required: bool = False) -> tuple[float, float] | None:
    if freqmin is None and freqmax is None and not required:
        return None
    for label, value in (("freqmin", freqmin), ("freqmax", freqmax)):
        if not (_is_real(value) and value > 0):
            raise ConfigError(f"{label}: expected a frequency > 0 Hz" + ("" if required else " (or both None)") + f", got {value!r}")
    if not freqmin < freqmax:
        raise ConfigError(f"freqmax: expected more than freqmin = {freqmin!r} Hz, got {freqmax!r}")
    return float(freqmin), float(freqmax)


def _window_mask(lags, tmin, tmax, both_sides) -> np.ndarray:
    tol = 1e-6 * (lags[1] - lags[0])
    t = np.abs(lags) if both_sides else lags
    return (t >= tmin - tol) & (t <= tmax + tol)


def _shaped(values: np.ndarray, shape: tuple[int, ...]):
    out = values.reshape(shape)
    return out[()] if out.ndim == 0 else out
