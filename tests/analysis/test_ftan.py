"""FTAN against synthetic truth: a dispersive wave train of known group velocity, and the
non-dispersive diffuse field of anxcor.datasets (3 km/s) correlated by the pipeline.

The wave train is built in the frequency domain with the phase ``k(omega) * distance``, where
``k(omega) = integral of d omega / U(omega)``: its group delay at each frequency is exactly
``distance / U``, so the picks are checked against ``U`` itself, not against another code.
"""

import numpy as np
import pytest
import xarray as xr
from conftest import correlate_archive
from obspy import Trace

from anxcor.analysis import ftan, pick_dispersion
from anxcor.analysis.ftan import default_alpha, filtered_envelope_power
from anxcor.datasets import synthetic_archive
from anxcor.errors import ConfigError, DataError
from anxcor.io import xarray_to_obspy

RATE_HZ = 2.0
MAX_LAG_S = 400.0
TRAIN_PERIODS = np.arange(5.0, 30.01, 1.0)
TRAIN_VELOCITIES = np.arange(2.0, 4.5, 0.01)
ARCHIVE_PERIODS = np.arange(2.5, 8.01, 0.25)
ARCHIVE_VELOCITIES = np.arange(1.5, 5.0, 0.01)


def group_velocity(period_s):
    """Known dispersion: rises smoothly from 2.5 km/s (short periods) to 3.5 km/s (long)."""
    return 3.0 + 0.5 * np.tanh((np.asarray(period_s, dtype=float) - 15.0) / 6.0)


def wave_train(distance_km, *, sides="both", noise=0.02, seed=0):
    """Two-sided 'correlation' holding a dispersive wave train at +distance/U (and/or its mirror).

    Spectrum: smooth band 1/67-1/2.7 Hz (flat 1/45-1/3.5 Hz); phase ``k(f) * distance`` with
    ``k = 2 pi * integral df / U`` (trapezoid on a fine grid), so the group delay is distance / U.
    """
    n = round(MAX_LAG_S * RATE_HZ)
    nfft = 16 * n
    freqs = np.fft.rfftfreq(nfft, 1.0 / RATE_HZ)
    periods = np.divide(1.0, freqs, out=np.full_like(freqs, np.inf), where=freqs > 0)
    slowness = 1.0 / group_velocity(periods)
    wavenumber = 2 * np.pi * np.concatenate([[0.0], np.cumsum(0.5 * (slowness[1:] + slowness[:-1]) * np.diff(freqs))])
    log_f = np.log(np.maximum(freqs, 1e-12))
    ramp = np.clip((log_f - np.log(1 / 45 / 1.5)) / np.log(1.5), 0, 1) * np.clip((np.log(1.3 / 3.5) - log_f) / np.log(1.3), 0, 1)
    causal = np.fft.irfft(np.sin(0.5 * np.pi * ramp) ** 2 * np.exp(-1j * wavenumber * distance_km), nfft)[: n + 1]
    causal /= np.abs(causal).max()
    zeros = np.zeros(n)
    acausal = causal[:0:-1] if sides in ("both", "acausal") else zeros
    zero_lag = causal[:1] if sides == "both" else [0.0]
    values = np.concatenate([acausal, zero_lag, causal[1:] if sides in ("both", "causal") else zeros])
    values = values + noise * np.random.default_rng(seed).standard_normal(values.size)
    lags = np.arange(-n, n + 1) / RATE_HZ
    return xr.DataArray(values, dims="time", coords={"time": lags, "distance": float(distance_km)}, name="syn")


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", params=[150.0, 300.0], ids=["150km", "300km"])
def train(request):
    distance = request.param
    correlation = wave_train(distance)
    image = ftan(correlation, None, TRAIN_PERIODS, TRAIN_VELOCITIES)
    return distance, correlation, image, pick_dispersion(image)


@pytest.fixture(scope="module")
def archive_result(tmp_path_factory):
    """8 stations, 2 h at 5 Hz (Z only), isotropic field at 3 km/s, correlated to +-60 s."""
    archive = synthetic_archive(tmp_path_factory.mktemp("ftan"), stations=8, hours=2.0, rate=5.0, seed=1, components="Z")
    return correlate_archive(archive)


@pytest.fixture(scope="module")
def archive_picks(archive_result):
    """Picks of every pair at least 30 km apart (Z:Z), keyed by pair label."""
    zz = archive_result["syn"].sel(channel="Z:Z")
    picks = {}
    for label in zz.station_pair.values:
        correlation = zz.sel(station_pair=label)
        if float(correlation["distance"]) >= 30.0:
            picks[str(label)] = pick_dispersion(ftan(correlation, None, ARCHIVE_PERIODS, ARCHIVE_VELOCITIES))
    return picks


# ---------------------------------------------------------------------------- kernel
def test_kernel_envelope_peaks_at_the_delay_of_a_wave_packet():
    t = np.arange(0.0, 200.0, 0.25)
    delays = np.array([40.0, 90.0])
    packets = np.exp(-(((t - delays[:, None]) / 12.0) ** 2)) * np.cos(2 * np.pi * 0.1 * (t - delays[:, None]))
    power = filtered_envelope_power(packets, 0.25, np.array([8.0, 10.0, 12.5]), 20.0, t)
    assert power.shape == (2, 3, t.size)
    np.testing.assert_allclose(t[np.argmax(power, axis=-1)], np.repeat(delays[:, None], 3, axis=1), atol=0.25)


def test_default_alpha_grows_with_distance():
    alphas = [default_alpha(d) for d in (10.0, 100.0, 250.0, 1000.0, 1e5)]
    assert alphas == sorted(alphas)
    assert alphas[0] == 5.0 and alphas[-1] == 100.0 and alphas[2] == pytest.approx(12.5)


# ---------------------------------------------------------------------------- dispersive truth
def test_image_layout(train):
    distance, _, image, _ = train
    assert image.dims == ("period", "velocity")
    np.testing.assert_array_equal(image["period"], TRAIN_PERIODS)
    np.testing.assert_allclose(image.max("velocity"), 1.0)  # normalised per period
    assert float(image["power"].max()) == 1.0 and float(image["power"].min()) > 0.0
    assert image.attrs["distance_km"] == distance and image.attrs["alpha"] == pytest.approx(default_alpha(distance))
    assert float(image["distance"]) == distance  # scalar coordinates of the input are kept


def test_picks_follow_the_known_group_velocity(train):
    distance, _, _, picks = train
    truth = group_velocity(TRAIN_PERIODS)
    error = np.abs(picks["group_velocity"].values - truth) / truth
    assert error.max() < 0.02, f"max relative error {error.max():.4f} at {distance} km"
    # trusted exactly where the distance holds 3 wavelengths (the ridge is continuous and clear here)
    expected_quality = distance >= 3.0 * picks["group_velocity"].values * TRAIN_PERIODS
    np.testing.assert_array_equal(picks["quality"].values, expected_quality)
    assert expected_quality.sum() >= 10
    assert (picks["amplitude"] > 0.99).all()


def test_a_wrong_velocity_would_be_caught(train):
    """Guard against a vacuous check: a 3 % faster medium is detected."""
    _, _, _, picks = train
    assert np.abs(picks["group_velocity"].values / (1.03 * group_velocity(TRAIN_PERIODS)) - 1).max() > 0.02


# ---------------------------------------------------------------------------- diffuse field
def test_diffuse_field_gives_a_flat_3_kms_curve(archive_result, archive_picks):
    assert len(archive_picks) >= 6
    errors, counts = [], []
    for label, picks in archive_picks.items():
        distance = float(picks["distance"])
        trusted = picks["quality"].values
        # every trusted pick satisfies the wavelength rule; every period beyond it is flagged
        assert not (trusted & (distance < 3.0 * picks["group_velocity"].values * ARCHIVE_PERIODS)).any(), label
        errors.append(np.abs(picks["group_velocity"].values[trusted] / 3.0 - 1.0))
        counts.append(trusted.sum())
    longest = max(archive_picks, key=lambda label: float(archive_picks[label]["distance"]))
    picks = archive_picks[longest]
    trusted = picks["quality"].values
    assert trusted.sum() >= 8
    deviation = np.abs(picks["group_velocity"].values[trusted] / 3.0 - 1.0)
    assert deviation.max() < 0.05, f"{longest}: max deviation {deviation.max():.3f}"
    pooled = np.concatenate(errors)
    assert pooled.size >= 50
    assert np.median(pooled) < 0.025 and np.percentile(pooled, 90) < 0.06, (np.median(pooled), np.percentile(pooled, 90))


def test_periods_outside_the_source_band_have_little_power(archive_result):
    """The synthetic field and the whitening span 0.1-0.5 Hz: 20 s holds almost no energy."""
    zz = archive_result["syn"].sel(channel="Z:Z")
    label = str(zz.station_pair.values[np.argmax(archive_result["distance"].values)])
    image = ftan(zz.sel(station_pair=label), None, np.array([3.0, 4.0, 5.0, 20.0]), ARCHIVE_VELOCITIES)
    assert float(image["power"].sel(period=20.0)) < 0.01
    assert not bool(pick_dispersion(image)["quality"].sel(period=20.0))


def test_dataarray_and_obspy_trace_give_the_same_result(archive_result, archive_picks):
    label = max(archive_picks, key=lambda lb: float(archive_picks[lb]["distance"]))
    correlation = archive_result["syn"].sel(channel="Z:Z", station_pair=label)
    src, rec = label.split(":")
    stream = xarray_to_obspy(archive_result).select(station=f"{src.split('.')[1]}:{rec.split('.')[1]}", channel="Z:Z")
    assert len(stream) == 1
    trace = stream[0]
    from_array = ftan(correlation, None, ARCHIVE_PERIODS, ARCHIVE_VELOCITIES)
    from_trace = ftan(trace, None, ARCHIVE_PERIODS, ARCHIVE_VELOCITIES)
    np.testing.assert_allclose(from_trace.values, from_array.values, rtol=1e-9, atol=1e-12)
    assert from_trace["station_pair"].item() == label and from_trace["channel"].item() == "Z:Z"
    assert from_trace.attrs == from_array.attrs
    picks_trace, picks_array = pick_dispersion(from_trace), pick_dispersion(from_array)
    np.testing.assert_allclose(picks_trace["group_velocity"], picks_array["group_velocity"], rtol=1e-9)
    np.testing.assert_array_equal(picks_trace["quality"], picks_array["quality"])
    # a bare trace (no stats.anxcor) is read as centred on zero lag
    bare = Trace(trace.data.copy(), header={"sampling_rate": trace.stats.sampling_rate})
    from_bare = ftan(bare, float(correlation["distance"]), ARCHIVE_PERIODS, ARCHIVE_VELOCITIES)
    np.testing.assert_allclose(from_bare.values, from_array.values, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------- symmetric
def test_symmetric_of_a_one_sided_correlation_is_that_side():
    kwargs = dict(distance_km=200.0, periods=TRAIN_PERIODS, velocities=TRAIN_VELOCITIES)
    causal_only = wave_train(200.0, sides="causal", noise=0.0)
    np.testing.assert_allclose(ftan(causal_only, symmetric=True, **kwargs), ftan(causal_only, symmetric=False, **kwargs), rtol=1e-9)
    acausal_only = wave_train(200.0, sides="acausal", noise=0.0)
    reversed_ = acausal_only.copy(data=acausal_only.values[::-1])
    symmetric = ftan(acausal_only, symmetric=True, **kwargs)
    np.testing.assert_allclose(symmetric, ftan(reversed_, symmetric=False, **kwargs), rtol=1e-9)
    np.testing.assert_allclose(symmetric, ftan(causal_only, symmetric=False, **kwargs), rtol=1e-9)
    # symmetric=False reads the causal side only, which is empty here
    with pytest.raises(DataError, match="no energy"):
        ftan(acausal_only, symmetric=False, **kwargs)


def test_one_sided_input_and_lags_outside_the_record():
    full = wave_train(200.0, noise=0.0)
    folded = full.sel(time=slice(0.0, None))  # e.g. after anxcor.steps.rotate.symmetric_lags
    kwargs = dict(distance_km=200.0, periods=TRAIN_PERIODS, velocities=TRAIN_VELOCITIES)
    np.testing.assert_allclose(ftan(folded, **kwargs), ftan(full, **kwargs), rtol=1e-9)
    short = full.sel(time=slice(-70.0, 70.0))  # 200 km / 70 s = 2.86 km/s: slower velocities are outside
    image = ftan(short, **kwargs)
    outside = image["velocity"].values < 200.0 / 70.0 - 1e-9
    assert np.isnan(image.values[:, outside]).all() and np.isfinite(image.values[:, ~outside]).all()


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("change", "error", "names"),
    [
        (dict(trace=np.zeros(11)), ConfigError, "trace"),
        (dict(distance_km=None), ConfigError, "distance_km"),
        (dict(distance_km=-5.0), ConfigError, "distance_km"),
        (dict(periods=[10.0, 5.0, 20.0]), ConfigError, "periods"),
        (dict(periods=[0.5, 1.0, 2.0]), ConfigError, "periods"),  # below the 1 s Nyquist period at 2 Hz
        (dict(velocities=[0.0, 1.0, 2.0]), ConfigError, "velocities"),
        (dict(velocities=[1.0, 1.2, 1.5]), ConfigError, "velocities"),  # 200 km arrive after 133 s, beyond the lags
        (dict(alpha=-1.0), ConfigError, "alpha"),
        (dict(symmetric="yes"), ConfigError, "symmetric"),
    ],
)
def test_bad_arguments_name_the_parameter(change, error, names):
    correlation = wave_train(200.0, noise=0.0).drop_vars("distance").sel(time=slice(-100.0, 100.0))
    arguments = dict(trace=correlation, distance_km=200.0, periods=TRAIN_PERIODS, velocities=TRAIN_VELOCITIES)
    arguments.update(change)
    with pytest.raises(error, match=names):
        ftan(**arguments)


def test_bad_correlations_raise_data_errors():
    correlation = wave_train(200.0, noise=0.0)
    kwargs = dict(distance_km=None, periods=TRAIN_PERIODS, velocities=TRAIN_VELOCITIES)
    with pytest.raises(DataError, match="NaN"):
        ftan(correlation.where(correlation.time < 100.0), **kwargs)
    with pytest.raises(DataError, match="regularly spaced"):
        ftan(correlation.isel(time=np.r_[0:300, 301:801]), **kwargs)
    with pytest.raises(DataError, match="symmetric=False"):
        ftan(correlation.sel(time=slice(None, 0.0)), symmetric=False, **kwargs)
    with pytest.raises(DataError, match="no energy"):
        ftan(correlation * 0.0, **kwargs)
    with pytest.raises(ConfigError, match="extra dims"):
        ftan(xr.concat([correlation, correlation], dim="station_pair"), **kwargs)


def test_pick_dispersion_rejects_bad_input(train):
    _, _, image, _ = train
    with pytest.raises(ConfigError, match="image"):
        pick_dispersion(image.rename(velocity="slowness"))
    with pytest.raises(ConfigError, match="image"):
        pick_dispersion(image.values)
    with pytest.raises(ConfigError, match="image"):
        pick_dispersion(image.isel(period=slice(None, None, -1)))
    with pytest.raises(ConfigError, match="min_amplitude"):
        pick_dispersion(image, min_amplitude=2.0)
    with pytest.raises(ConfigError, match="distance_km"):
        pick_dispersion(image, distance_km=0.0)


def test_pick_dispersion_on_a_bare_image(train):
    """Without the power coordinate and distance attribute, the ridge is the same; only the
    wavelength and power criteria are skipped (so more periods may be trusted)."""
    distance, _, image, picks = train
    bare = xr.DataArray(image.values * 7.0, dims=image.dims, coords={"period": image["period"], "velocity": image["velocity"]})
    bare_picks = pick_dispersion(bare)
    np.testing.assert_allclose(bare_picks["group_velocity"], picks["group_velocity"], rtol=1e-12)
    assert np.isnan(bare_picks.attrs["distance_km"])
    assert bare_picks["quality"].values.sum() > picks["quality"].values.sum()
    with_distance = pick_dispersion(bare, distance_km=distance)
    np.testing.assert_array_equal(with_distance["quality"], picks["quality"])


def test_picks_on_the_edge_of_the_velocity_grid_are_not_trusted(train):
    _, correlation, _, _ = train
    image = ftan(correlation, None, TRAIN_PERIODS, np.arange(2.0, 3.0, 0.01))  # misses U > 3 km/s
    picks = pick_dispersion(image)
    beyond = group_velocity(TRAIN_PERIODS) > 3.02
    assert beyond.any() and not picks["quality"].values[beyond].any()
    np.testing.assert_allclose(picks["group_velocity"].values[beyond], 2.99)  # stuck on the last node
