"""dv/v monitoring against synthetic truth.

Kernels: a coda-like correlation (band-limited random waveform on both lag sides, decaying)
is a sum of cosines, so a copy stretched by a known dv/v, ``current(t) = reference(t * (1 +
dvv))``, is computed exactly, not interpolated. End to end: a synthetic archive whose medium
speeds up by 1 % from hour 3 on (anxcor.datasets: hour segments ``h >= change_hour`` use
``velocity * (1 + dvv)``, so arrivals come earlier and dv/v is +0.01), correlated in 1-hour
substacks.
"""

import numpy as np
import pytest
import xarray as xr
from conftest import correlate_archive

from anxcor.analysis import dvv, mwcs, stretching
from anxcor.datasets import synthetic_archive
from anxcor.errors import ConfigError, DataError

LAGS = np.round(np.arange(-60.0, 60.0 + 1e-9, 0.1), 10)  # s, 10 Hz
TRUE_DVV = [-0.02, -0.01, -0.005, -0.001, 0.001, 0.005, 0.01, 0.02]
STRETCH = dict(tmin=5.0, tmax=50.0)
MWCS = dict(freqmin=0.2, freqmax=1.0, tmin=5.0, tmax=50.0, window_s=10.0, step_s=5.0)


def coda(t, seed=0, n_waves=300, band_hz=(0.2, 1.0), decay_s=25.0):
    """A random waveform in ``band_hz`` (a sum of cosines) times exp(-|t| / decay_s)."""
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(*band_hz, n_waves)
    phases = rng.uniform(0.0, 2.0 * np.pi, n_waves)
    waves = np.cos(2.0 * np.pi * np.multiply.outer(t, freqs) + phases).sum(axis=-1) / np.sqrt(n_waves)
    return waves * np.exp(-np.abs(t) / decay_s)


@pytest.fixture(scope="module")
def reference():
    return coda(LAGS)


@pytest.fixture(scope="module")
def stretched():
    return {true: coda(LAGS * (1.0 + true)) for true in TRUE_DVV}


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("true", TRUE_DVV)
def test_stretching_recovers_a_known_stretch(reference, stretched, true):
    estimate, error, cc = stretching(reference, stretched[true], LAGS, **STRETCH)
    # measured: within 0.02 % of the value for every dv/v here
    assert abs(estimate - true) <= 0.01 * abs(true)
    assert cc > 0.9999
    assert 0 <= error < 1e-5


@pytest.mark.parametrize("true", TRUE_DVV)
def test_mwcs_recovers_a_known_stretch(reference, stretched, true):
    """Valid over the whole range: the default max_dt (1 / (2 freqmax) = 0.5 s) drops the late
    windows at +-2 % (delays up to 1 s), the earlier ones still fit. Measured: within 2 %."""
    estimate, error = mwcs(reference, stretched[true], LAGS, **MWCS)
    assert abs(estimate - true) <= 0.05 * abs(true)
    assert 0 < error < 0.05 * abs(true)


def test_positive_dvv_means_earlier_arrivals():
    """Pulses at travel times t_k; after a 1 % velocity increase they arrive at t_k / 1.01."""
    travel_s = np.array([-42.0, -27.0, -11.0, 9.0, 23.0, 38.0])

    def pulses(times):
        wavelet = lambda t: np.exp(-((t / 0.8) ** 2)) * np.cos(2 * np.pi * 0.5 * t)  # noqa: E731
        return sum(wavelet(LAGS - t) for t in times)

    before, after = pulses(travel_s), pulses(travel_s / 1.01)
    estimate, _, cc = stretching(before, after, LAGS, **STRETCH)
    assert estimate == pytest.approx(0.01, rel=0.02)
    assert cc > 0.99
    assert mwcs(before, after, LAGS, 0.2, 1.0, 5.0, 50.0, 10.0, 5.0)[0] == pytest.approx(0.01, rel=0.05)
    assert stretching(after, before, LAGS, **STRETCH)[0] == pytest.approx(-0.01 / 1.01, rel=0.02)


def test_identical_inputs_give_zero_and_a_perfect_coefficient(reference):
    estimate, error, cc = stretching(reference, reference, LAGS, **STRETCH)
    assert abs(estimate) < 1e-6
    assert cc == pytest.approx(1.0, abs=1e-6)
    assert error < 1e-6
    estimate, error = mwcs(reference, reference, LAGS, **MWCS)
    assert abs(estimate) < 1e-6
    assert error < 1e-5


def test_errors_grow_with_noise(reference, stretched):
    rng = np.random.default_rng(11)
    noise = rng.standard_normal(LAGS.size) * reference.std()
    true = 0.005
    rows = []
    for level in (0.0, 0.05, 0.2, 0.5):
        current = stretched[true] + level * noise
        estimate, error, cc = stretching(reference, current, LAGS, **STRETCH)
        estimate_mwcs, error_mwcs = mwcs(reference, current, LAGS, **MWCS)
        rows.append((error, cc, error_mwcs))
        assert abs(estimate - true) <= 3 * error + 1e-6  # the error is not optimistic
        assert abs(estimate_mwcs - true) <= 3 * error_mwcs
    errors, coefficients, errors_mwcs = np.array(rows).T
    assert np.all(np.diff(errors) > 0), errors
    assert np.all(np.diff(coefficients) < 0), coefficients
    assert np.all(np.diff(errors_mwcs) > 0), errors_mwcs


def test_stretching_error_follows_the_documented_formula(reference, stretched):
    """sqrt(1 - X^2) / (2 X) * sqrt(6 sqrt(pi / 2) T / (omega_c^2 * 3 L <t^2>)); for an even
    intensity 3 L <t^2> is Weaver's t2^3 - t1^3 (doubled for both sides)."""
    current = stretched[0.005] + 0.3 * np.random.default_rng(3).standard_normal(LAGS.size) * reference.std()
    _, error, cc = stretching(reference, current, LAGS, **STRETCH, freqmin=0.2, freqmax=1.0)
    window = (np.abs(LAGS) >= 5.0) & (np.abs(LAGS) <= 50.0)
    intensity = reference[window] ** 2
    mean_t2 = (intensity * LAGS[window] ** 2).sum() / intensity.sum()
    omega, period = 2 * np.pi * 0.6, 1 / 0.8
    expected = np.sqrt(1 - cc**2) / (2 * cc) * np.sqrt(6 * np.sqrt(np.pi / 2) * period / (omega**2 * 3 * 90.0 * mean_t2))
    assert error == pytest.approx(expected, rel=1e-9)

    even = coda(LAGS, seed=5, decay_s=1e9)
    window_t = LAGS[window]
    mean_t2 = (even[window] ** 2 * window_t**2).sum() / (even[window] ** 2).sum()
    assert 3 * 90.0 * mean_t2 == pytest.approx(2 * (50.0**3 - 5.0**3), rel=0.05)


def test_band_inferred_from_the_reference_spectrum(reference, stretched):
    """Without freqmin/freqmax the centre and width come from the reference's spectrum: for
    a flat 0.2-1 Hz band they match the given band, so the errors agree within 10 %."""
    current = stretched[0.005] + 0.2 * np.random.default_rng(4).standard_normal(LAGS.size) * reference.std()
    inferred = stretching(reference, current, LAGS, **STRETCH)[1]
    given = stretching(reference, current, LAGS, **STRETCH, freqmin=0.2, freqmax=1.0)[1]
    assert inferred == pytest.approx(given, rel=0.1)


def test_only_the_lag_window_counts(reference, stretched):
    """Outside tmin <= |t| <= tmax the current may hold anything; both_sides=False ignores
    the negative lags."""
    current = stretched[0.01].copy()
    garbage = np.random.default_rng(8).standard_normal(LAGS.size)
    outside = (np.abs(LAGS) < 5.0) | (np.abs(LAGS) > 50.0)
    current[outside] = garbage[outside]
    assert stretching(reference, current, LAGS, **STRETCH)[0] == pytest.approx(0.01, rel=0.01)
    current[LAGS < 0] = garbage[LAGS < 0]
    one_side = stretching(reference, current, LAGS, **STRETCH, both_sides=False)
    assert one_side[0] == pytest.approx(0.01, rel=0.01)
    assert one_side[2] > 0.999
    assert stretching(reference, current, LAGS, **STRETCH)[2] < 0.8  # both sides: the garbage counts
    assert mwcs(reference, current, LAGS, **MWCS, both_sides=False)[0] == pytest.approx(0.01, rel=0.05)


def test_kernels_vectorise_and_broadcast(reference, stretched):
    currents = np.stack([stretched[t] for t in (0.001, 0.005, 0.01)])  # (3, n) against (n,)
    estimates, errors, cc = stretching(reference, currents, LAGS, **STRETCH)
    assert estimates.shape == errors.shape == cc.shape == (3,)
    for row, current in zip(estimates, currents, strict=True):
        assert row == pytest.approx(float(stretching(reference, current, LAGS, **STRETCH)[0]), abs=1e-12)
    references = np.stack([reference, coda(LAGS, seed=1)])[:, None, :]  # (2, 1, n) with (1, 3, n)
    grid = stretching(references, currents[None], LAGS, **STRETCH)[0]
    assert grid.shape == (2, 3)
    np.testing.assert_allclose(grid[0], estimates, atol=1e-12)
    estimates_mwcs, _ = mwcs(reference, currents, LAGS, **MWCS)
    assert estimates_mwcs.shape == (3,)
    np.testing.assert_allclose(estimates_mwcs, [0.001, 0.005, 0.01], rtol=0.05)


def test_missing_data_gives_nan(reference, stretched):
    empty = np.full(LAGS.size, np.nan)
    rows = np.stack([stretched[0.005], empty, np.zeros(LAGS.size)])
    estimates, errors, cc = stretching(reference, rows, LAGS, **STRETCH)
    assert np.isfinite(estimates[0]) and np.isnan(estimates[1:]).all()
    assert np.isnan(errors[1:]).all() and np.isnan(cc[1:]).all()
    estimates, errors = mwcs(reference, rows, LAGS, **MWCS)
    assert np.isfinite(estimates[0]) and np.isnan(estimates[1:]).all() and np.isnan(errors[1:]).all()
    assert np.isnan(stretching(empty, reference, LAGS, **STRETCH)[0])


# ----------------------------------------------------------------------------- dvv() on labelled data
SUBSTACK_DVV = [0.0, 0.0, 0.004, 0.008, np.nan]  # the last substack has no data


@pytest.fixture(scope="module")
def labelled():
    """5 substacks x 1 channel x 4 pairs (one an autocorrelation), as process(stack=k) makes them."""
    pairs = ["XX.A:XX.A", "XX.A:XX.B", "XX.A:XX.C", "XX.B:XX.C"]
    data = np.full((len(SUBSTACK_DVV), 1, len(pairs), LAGS.size), np.nan)
    for w, change in enumerate(SUBSTACK_DVV):
        if np.isfinite(change):
            for p in range(len(pairs)):
                data[w, 0, p] = coda(LAGS * (1 + change), seed=p)
    counts = np.where(np.isfinite(SUBSTACK_DVV), 6, 0)[:, None, None] * np.ones((1, 1, len(pairs)), int)
    return xr.Dataset(
        {"syn": (("window", "channel", "station_pair", "time"), data)},
        coords={
            "window": 1.6e9 + 3600.0 * np.arange(len(SUBSTACK_DVV)),
            "channel": ["Z:Z"],
            "station_pair": pairs,
            "time": LAGS,
            "src": ("station_pair", [p.split(":")[0] for p in pairs]),
            "rec": ("station_pair", [p.split(":")[1] for p in pairs]),
            "distance": ("station_pair", [0.0, 10.0, 20.0, 15.0]),
            "n_windows": (("window", "channel", "station_pair"), counts),
        },
    )


def test_dvv_series_from_a_given_reference(labelled):
    out = dvv(labelled, reference=0, tmin=5.0, tmax=50.0)
    assert set(out.data_vars) == {"dvv", "error", "cc", "dvv_network", "error_network", "n_network"}
    assert out["dvv"].dims == ("window", "channel", "station_pair")
    assert list(out.station_pair.values) == ["XX.A:XX.B", "XX.A:XX.C", "XX.B:XX.C"]  # autocorrelation skipped
    np.testing.assert_allclose(out["window"], labelled["window"])
    assert "distance" in out.coords and "n_windows" in out.coords
    truth = np.array(SUBSTACK_DVV)
    np.testing.assert_allclose(out["dvv_network"].values[:4], truth[:4], atol=2e-5)
    assert np.isnan(out["dvv_network"].values[4]) and out["n_network"].values[4] == 0
    assert np.isnan(out["dvv"].values[4]).all() and np.isnan(out["cc"].values[4]).all()
    assert list(out["n_network"].values[:4]) == [3, 3, 3, 3]
    assert out.attrs["method"] == "stretching" and "increase" in out.attrs["sign_convention"]

    stacked = labelled.isel(window=0)  # a stacked result (no window dim) as the reference
    np.testing.assert_allclose(dvv(labelled, reference=stacked, tmin=5.0, tmax=50.0)["dvv"], out["dvv"], atol=1e-12)
    np.testing.assert_allclose(dvv(labelled["syn"], reference=stacked["syn"], tmin=5.0, tmax=50.0)["dvv"], out["dvv"], atol=1e-12)


def test_dvv_mean_reference_and_autocorrelations(labelled):
    out = dvv(labelled, tmin=5.0, tmax=50.0)  # reference: mean of the four substacks with data
    assert "n_windows" in out.attrs["reference"]
    network = out["dvv_network"].values
    assert np.all(np.diff(network[:4]) >= -1e-5)  # follows the truth up, shifted
    assert network[3] - network[0] == pytest.approx(0.008, rel=0.1)
    with_auto = dvv(labelled, reference=0, include_autocorrelations=True, tmin=5.0, tmax=50.0)
    assert "XX.A:XX.A" in with_auto.station_pair.values
    assert with_auto["n_network"].values[0] == 4


def test_dvv_with_mwcs(labelled):
    out = dvv(labelled, reference=0, method="mwcs", freqmin=0.2, freqmax=1.0, tmin=5.0, tmax=50.0, window_s=10.0, step_s=5.0)
    assert "cc" not in out
    np.testing.assert_allclose(out["dvv_network"].values[:4], SUBSTACK_DVV[:4], atol=2e-4)
    assert np.isnan(out["dvv_network"].values[4])
    assert out.attrs["method"] == "mwcs"


def test_dvv_network_average_is_inverse_variance_weighted(labelled):
    noisy = labelled.copy(deep=True)
    rng = np.random.default_rng(2)
    noisy["syn"].values[1:4, 0, 1] += 0.8 * rng.standard_normal((3, LAGS.size)) * float(labelled["syn"][0, 0, 1].std())
    out = dvv(noisy, reference=0, tmin=5.0, tmax=50.0)
    values, errors = out["dvv"].values[2, 0], out["error"].values[2, 0]
    weights = 1 / errors**2
    mean = (weights * values).sum() / weights.sum()
    assert out["dvv_network"].values[2] == pytest.approx(mean, rel=1e-12)
    chi2 = (weights * (values - mean) ** 2).sum() / 2
    assert out["error_network"].values[2] == pytest.approx(np.sqrt(max(1.0, chi2) / weights.sum()), rel=1e-12)
    assert errors[0] > 10 * errors[1]  # the noisy pair counts less


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(tmin=-1.0, tmax=50.0), "tmin"),
        (dict(tmin=20.0, tmax=10.0), "tmax"),
        (dict(tmin=5.0, tmax=59.5), "tmax"),  # stretched beyond the lags
        (dict(tmin=5.0, tmax=50.0, max_dvv=0.0), "max_dvv"),
        (dict(tmin=5.0, tmax=50.0, max_dvv=0.9), "max_dvv"),
        (dict(tmin=5.0, tmax=50.0, freqmin=0.2), "freqmax"),
        (dict(tmin=5.0, tmax=50.0, freqmin=1.0, freqmax=0.5), "freqmax"),
        (dict(tmin=5.0, tmax=50.0, both_sides="yes"), "both_sides"),
    ],
)
def test_stretching_rejects_bad_arguments(reference, kwargs, name):
    with pytest.raises(ConfigError, match=name):
        stretching(reference, reference, LAGS, **kwargs)


def test_kernels_reject_bad_arrays(reference):
    with pytest.raises(ConfigError, match="lags"):
        stretching(reference, reference, LAGS**3, **STRETCH)
    with pytest.raises(ConfigError, match="current"):
        stretching(reference, reference[:-1], LAGS, **STRETCH)
    with pytest.raises(ConfigError, match="current"):
        stretching(np.stack([reference] * 2), np.stack([reference] * 3), LAGS, **STRETCH)
    with pytest.raises(ConfigError, match="reference"):
        mwcs("abc", reference, LAGS, **MWCS)


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        (dict(window_s=60.0), "window_s"),
        (dict(window_s=2.0), "window_s"),  # too few frequencies in the band
        (dict(step_s=0.0), "step_s"),
        (dict(freqmax=8.0), "freqmax"),  # above Nyquist
        (dict(min_coherence=2.0), "min_coherence"),
        (dict(max_dt=-1.0), "max_dt"),
    ],
)
def test_mwcs_rejects_bad_arguments(reference, changes, name):
    with pytest.raises(ConfigError, match=name):
        mwcs(reference, reference, LAGS, **{**MWCS, **changes})


def test_dvv_rejects_bad_input(labelled):
    with pytest.raises(ConfigError, match=r"substacks.*'window'"):
        dvv(labelled.isel(window=0), tmin=5.0, tmax=50.0)
    with pytest.raises(ConfigError, match="substacks"):
        dvv(labelled["syn"].values, tmin=5.0, tmax=50.0)
    with pytest.raises(ConfigError, match="method"):
        dvv(labelled, method="doublet", tmin=5.0, tmax=50.0)
    with pytest.raises(ConfigError, match="tmax"):
        dvv(labelled, tmin=5.0)
    with pytest.raises(ConfigError, match="window_s"):
        dvv(labelled, tmin=5.0, tmax=50.0, window_s=10.0)  # an MWCS argument for stretching
    with pytest.raises(ConfigError, match="reference"):
        dvv(labelled, reference="median", tmin=5.0, tmax=50.0)
    with pytest.raises(ConfigError, match="reference"):
        dvv(labelled, reference=7, tmin=5.0, tmax=50.0)
    with pytest.raises(ConfigError, match="reference"):
        dvv(labelled, reference=labelled.isel(time=slice(0, -2), window=0), tmin=5.0, tmax=50.0)
    with pytest.raises(ConfigError, match="reference"):
        dvv(labelled, reference=labelled, tmin=5.0, tmax=50.0)  # not stacked
    with pytest.raises(ConfigError, match="variable"):
        dvv(labelled, variable="other", tmin=5.0, tmax=50.0)
    with pytest.raises(ConfigError, match="include_autocorrelations"):
        dvv(labelled, include_autocorrelations="no", tmin=5.0, tmax=50.0)
    with pytest.raises(DataError, match="autocorrelations"):
        dvv(labelled.isel(station_pair=[0]), tmin=5.0, tmax=50.0)


# ----------------------------------------------------------------------------- end to end
CHANGE_HOUR = 3
PROPAGATION_AZIMUTH = 60.0


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory):
    """12 stations, 6 h at 5 Hz, vertical only, +1 % velocity from hour 3, 1-hour substacks.

    A directional field (plane waves towards 60 +- 20 degrees) over a 120 km array: the pairs
    along the propagation direction, farther apart than 30 km, get a clean stationary-phase
    arrival at 10-35 s, where a 1 % change moves it by 0.1-0.35 s. An isotropic field of the
    same size gives noisier 1-hour substacks (400 plane waves an hour spread over 360 degrees).
    """
    archive = synthetic_archive(
        tmp_path_factory.mktemp("dvv_step"), stations=12, hours=6.0, rate=5.0, seed=4, components="Z",
        aperture_km=120.0, azimuth=PROPAGATION_AZIMUTH, spread=20.0, dvv=0.01, change_hour=CHANGE_HOUR,
    )
    result = correlate_archive(archive, max_tau_shift=70.0, stack=6)  # the archive is at 5 Hz
    along = np.abs(np.cos(np.deg2rad(result["azimuth"] - PROPAGATION_AZIMUTH))) > np.cos(np.deg2rad(40.0))
    selected = result.isel(station_pair=((result["distance"] > 30.0) & along).values)
    hours = (result["window"].values - archive.starttime) / 3600.0
    return selected, hours


def test_end_to_end_step_with_a_pre_change_reference(monitoring):
    """Measured (seed 4, 21 pairs): before -0.016..+0.015 %, after 0.986..1.027 %, network
    errors 0.02-0.09 %; against substack 0: -0.03 and +0.07 % before, 1.00..1.06 % after."""
    result, hours = monitoring
    assert result.sizes["station_pair"] >= 15
    np.testing.assert_allclose(hours, np.arange(6.0))
    before = hours < CHANGE_HOUR
    quiet = result.isel(window=before).mean("window")  # a stacked Dataset over the quiet hours
    out = dvv(result, reference=quiet, tmin=5.0, tmax=65.0)
    network = out["dvv_network"].values
    assert np.all(np.abs(network[before]) < 0.001), network
    assert np.all(np.abs(network[~before] - 0.01) < 0.0015), network
    assert int(np.argmax(np.diff(network))) + 1 == CHANGE_HOUR  # the step is at the substack holding hour 3
    assert np.all(out["error_network"].values < 0.002)
    after = out["dvv"].isel(window=~before).sel(channel="Z:Z")
    assert float((after > 0.005).mean()) >= 0.8  # most pairs see it, not just the average

    first = dvv(result, reference=0, tmin=5.0, tmax=65.0)["dvv_network"].values  # substack 0 as reference
    assert np.all(np.abs(first[1:CHANGE_HOUR]) < 0.0015), first
    assert np.all(np.abs(first[CHANGE_HOUR:] - 0.01) < 0.002), first


def test_end_to_end_step_with_the_mean_reference(monitoring):
    """Against the mean of all substacks the series straddles 0 and the step is slightly
    smaller than 1 % (each substack is part of its reference). Measured: -0.44..-0.40 %
    before, +0.41..+0.44 % after, step 0.84 %."""
    result, hours = monitoring
    network = dvv(result, tmin=5.0, tmax=65.0)["dvv_network"].values
    before = hours < CHANGE_HOUR
    step = network[~before].mean() - network[before].mean()
    assert 0.006 < step < 0.011, network
    assert np.all(network[before] < 0) and np.all(network[~before] > 0)
    assert int(np.argmax(np.diff(network))) + 1 == CHANGE_HOUR


def test_end_to_end_step_with_mwcs(monitoring):
    """MWCS on the same data: measured before -0.07..+0.11 %, after 0.81..1.14 %."""
    result, hours = monitoring
    before = hours < CHANGE_HOUR
    quiet = result.isel(window=before).mean("window")
    out = dvv(result, reference=quiet, method="mwcs", freqmin=0.1, freqmax=0.5, tmin=5.0, tmax=65.0, window_s=20.0, step_s=5.0)
    network = out["dvv_network"].values
    assert np.all(np.abs(network[before]) < 0.0015), network
    assert np.all(np.abs(network[~before] - 0.01) < 0.004), network
    assert int(np.argmax(np.diff(network))) + 1 == CHANGE_HOUR
