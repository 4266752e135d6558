"""Physics: correlations of a synthetic diffuse field peak at the inter-station travel time.

The archives are plane waves at 3 km/s (anxcor.datasets); nothing here compares anxcor with
itself. Isotropic field: peaks at +d/v (causal) and -d/v (acausal). Directional field
(waves travelling towards azimuths 40-80 degrees): one peak, at the stationary-phase lag
``offset . u(theta) / v`` extremal over the fan of directions ``u(theta)`` (``offset`` =
receiver - source), on the side where the waves go from source to receiver; this checks the
sign convention (positive lag = src -> rec).
"""

import numpy as np
import pytest
from conftest import correlate_archive

TOLERANCE_S = 1.0


def zz_cross_pairs(result):
    zz = result["syn"].sel(channel="Z:Z")
    return [(str(p), zz.sel(station_pair=p).values) for p in zz.station_pair.values if str(p).split(":")[0] != str(p).split(":")[1]]


@pytest.fixture(scope="module")
def isotropic_result(isotropic_archive):
    return correlate_archive(isotropic_archive)


def test_isotropic_field_peaks_at_plus_and_minus_travel_time(isotropic_archive, isotropic_result):
    lags = isotropic_result["time"].values
    causal, acausal = lags > 0, lags < 0
    hits, misses = 0, []
    pairs = zz_cross_pairs(isotropic_result)
    for label, trace in pairs:
        src, rec = label.split(":")
        expected = isotropic_archive.expected_lag(src, rec)
        peak_causal = lags[causal][np.argmax(trace[causal])]
        peak_acausal = lags[acausal][np.argmax(trace[acausal])]
        if abs(peak_causal - expected) <= TOLERANCE_S and abs(peak_acausal + expected) <= TOLERANCE_S:
            hits += 1
        else:
            misses.append((label, expected, peak_causal, peak_acausal))
    assert len(pairs) == 28
    assert hits >= 0.9 * len(pairs), f"only {hits}/{len(pairs)} pairs peak at +-d/v: {misses}"


def test_result_distance_matches_archive_geometry(isotropic_archive, isotropic_result):
    for label in isotropic_result.station_pair.values[:10]:
        src, rec = str(label).split(":")
        distance = float(isotropic_result["distance"].sel(station_pair=label))
        assert distance / isotropic_archive.velocity == pytest.approx(isotropic_archive.expected_lag(src, rec), abs=1e-6)


def test_directional_field_peaks_on_the_side_of_propagation(directional_archive):
    result = correlate_archive(directional_archive)
    lags = result["time"].values
    table = directional_archive.stations.assign(seed=lambda t: t.network + "." + t.station).set_index("seed")
    fan = np.deg2rad(np.linspace(40.0, 80.0, 401))
    directions = np.stack([np.sin(fan), np.cos(fan)])  # east, north, per azimuth
    checked, hits, misses = 0, 0, []
    for label, trace in zz_cross_pairs(result):
        src, rec = label.split(":")
        offset = table.loc[rec, ["x_km", "y_km"]].to_numpy(float) - table.loc[src, ["x_km", "y_km"]].to_numpy(float)
        projections_km = offset @ directions
        central_km = projections_km[projections_km.size // 2]
        stationary_km = projections_km.max() if central_km > 0 else projections_km.min()
        distance_km = float(np.hypot(*offset))
        if abs(central_km) < np.cos(np.deg2rad(30.0)) * distance_km or distance_km < 6.0:
            continue  # no stationary direction in the fan (weak peak), or too close to lag 0
        checked += 1
        expected = stationary_km / directional_archive.velocity
        peak = lags[np.argmax(trace)]
        if abs(peak - expected) <= TOLERANCE_S and np.sign(peak) == np.sign(expected):
            hits += 1
        else:
            misses.append((label, expected, peak))
    assert checked >= 6
    assert hits >= 0.9 * checked, f"only {hits}/{checked} pairs peak at the projected lag: {misses}"


def test_resampling_to_the_target_rate_keeps_the_correlations(tmp_path_factory):
    """Recorded at 25 Hz: correlating at a 10 Hz target gives the native-rate correlations
    (anti-aliased resampling of band-limited data), compared on their common 0.2 s lag grid."""
    from anxcor.datasets import synthetic_archive

    archive = synthetic_archive(tmp_path_factory.mktemp("at25hz"), stations=6, hours=1.0, rate=25.0, seed=1)
    results = {}
    for target in (25.0, 10.0):
        results[target] = correlate_archive(archive, target_rate=target, max_tau_shift=40.0)
    assert results[10.0].attrs["sampling_rate"] == 10.0
    common = np.round(np.arange(-40.0, 40.01, 0.2), 6)
    native = results[25.0]["syn"].sel(channel="Z:Z").assign_coords(time=np.round(results[25.0]["time"].values, 6))
    target = results[10.0]["syn"].sel(channel="Z:Z").assign_coords(time=np.round(results[10.0]["time"].values, 6))
    a = native.sel(time=common).transpose("station_pair", "time").values
    b = target.sel(time=common).transpose("station_pair", "time").values
    coefficients = [np.corrcoef(x, y)[0, 1] for x, y in zip(a, b, strict=True)]
    assert min(coefficients) > 0.99, coefficients
    peak_native = common[np.argmax(np.abs(a), axis=1)]
    peak_target = common[np.argmax(np.abs(b), axis=1)]
    np.testing.assert_allclose(peak_target, peak_native, atol=0.2)
