"""Beamforming against synthetic truth (anxcor.datasets plane waves at 3 km/s) and a numpy reference.

Directional field: waves travel towards azimuth 60 +- 5 degrees, so they come from
backazimuth 240 at slowness 1/3 s/km. Isotropic field: a ring of power at 1/3 s/km.
"""

import logging
import warnings

import numpy as np
import pytest
import xarray as xr

from anxcor.analysis import beamform
from anxcor.core import Anxcor
from anxcor.database import WaveBankDatabase
from anxcor.datasets import synthetic_archive
from anxcor.errors import ConfigError, DataError

SLOWNESS_TRUE = 1.0 / 3.0
BACKAZIMUTH_TRUE = 240.0
BAND = (0.15, 0.35)


def correlate(archive, output="lags"):
    anx = Anxcor(window_length=600.0)
    anx.set_task_kwargs("resample", dict(target_rate=archive.rate))
    anx.set_task_kwargs("bandpass", dict(freqmin=0.05, freqmax=2.0))
    anx.set_task_kwargs("whiten", dict(freqmin=0.1, freqmax=0.5))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=60.0, output=output))
    anx.add_dataset(WaveBankDatabase(archive.waveform_dir, coordinates=archive.stations), "syn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing N/E components are recorded as failures
        return anx.process(anx.get_starttimes(archive.starttime, archive.endtime, 0.0))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """10 stations, 1 h at 5 Hz, vertical only: a directional and an isotropic field."""
    root = tmp_path_factory.mktemp("beamform")
    directional = synthetic_archive(
        root / "directional", stations=10, hours=1.0, rate=5.0, seed=4, components="Z", azimuth=60.0, spread=5.0
    )
    isotropic = synthetic_archive(root / "isotropic", stations=10, hours=1.0, rate=5.0, seed=4, components="Z")
    return {
        "directional": correlate(directional),
        "directional_spectrum": correlate(directional, output="spectrum"),
        "isotropic": correlate(isotropic),
    }


def peak(power):
    s, b = np.unravel_index(int(np.argmax(power.values)), power.shape)
    return float(power["slowness"][s]), float(power["backazimuth"][b])


def angle_difference(a, b):
    return abs((a - b + 180.0) % 360.0 - 180.0)


# ---------------------------------------------------------------------------- physics
@pytest.mark.parametrize("method", ["bartlett", "mvdr"])
@pytest.mark.parametrize("kind", ["directional", "directional_spectrum"])
def test_directional_field_peaks_at_backazimuth_240_and_slowness_one_third(results, method, kind):
    power = beamform(results[kind], *BAND, method=method)  # default grid: 0.01 s/km, 2 degrees
    slowness, backazimuth = peak(power)
    assert angle_difference(backazimuth, BACKAZIMUTH_TRUE) <= 10.0, backazimuth
    assert abs(slowness - SLOWNESS_TRUE) <= 0.1 * SLOWNESS_TRUE, slowness
    assert power.dims == ("slowness", "backazimuth")
    assert float(power.max()) == pytest.approx(1.0)
    assert 0.0 < power.attrs["max_power"] <= 1.0 + 1e-9
    # the opposite direction (where the waves go to) holds little power
    assert float(power.sel(slowness=SLOWNESS_TRUE, backazimuth=60.0, method="nearest")) < 0.5


@pytest.mark.parametrize("method", ["bartlett", "mvdr"])
def test_isotropic_field_gives_a_ring_at_slowness_one_third(results, method):
    ring = beamform(results["isotropic"], *BAND, method=method)
    ring_slowness = ring["slowness"].values[ring.argmax("slowness").values]
    on_ring = np.abs(ring_slowness - SLOWNESS_TRUE) <= 0.1 * SLOWNESS_TRUE
    assert on_ring.mean() >= 0.75, f"only {on_ring.mean():.0%} of backazimuths peak near 1/3 s/km"
    ring_power = ring.max("slowness")
    beam = beamform(results["directional"], *BAND, method=method).max("slowness")
    # power around the ring is nearly even; a directional field's varies by far more
    assert float(ring_power.min()) > 0.5
    assert float(beam.min()) < 0.35


def test_without_autocorrelations_the_phase_normalised_matrix_still_points_to_240(results):
    result = results["directional"]
    crosses = result.isel(station_pair=np.flatnonzero(result["src"].values != result["rec"].values))
    power = beamform(crosses, *BAND)
    slowness, backazimuth = peak(power)
    assert "phase only" in power.attrs["normalisation"]
    assert angle_difference(backazimuth, BACKAZIMUTH_TRUE) <= 10.0
    assert abs(slowness - SLOWNESS_TRUE) <= 0.1 * SLOWNESS_TRUE


def test_per_frequency_maps_average_to_the_band_power(results):
    result = results["directional"]
    maps = beamform(result, *BAND, per_frequency=True)
    band = beamform(result, *BAND)
    assert maps.dims == ("frequency", "slowness", "backazimuth")
    assert BAND[0] <= float(maps["frequency"].min()) and float(maps["frequency"].max()) <= BAND[1]
    np.testing.assert_allclose(maps.max(("slowness", "backazimuth")).values, 1.0)
    raw = (maps * maps["max_power"]).mean("frequency")
    np.testing.assert_allclose(raw.values / band.attrs["max_power"], band.values, rtol=1e-10, atol=1e-12)


def test_variable_and_a_preselected_channel_give_the_same_beam(results):
    result = results["directional"]
    reference = beamform(result, *BAND)
    two = result.assign(other=result["syn"] * 2.0)
    np.testing.assert_allclose(beamform(two, *BAND, variable="other").values, reference.values, rtol=1e-10)
    assert beamform(two, *BAND, variable="other").attrs["variable"] == "other"
    np.testing.assert_allclose(beamform(result["syn"].sel(channel="Z:Z"), *BAND).values, reference.values)
    with pytest.raises(ConfigError, match="channel"):
        beamform(result["syn"].sel(channel="Z:Z"), *BAND, channel="N:N")


# ---------------------------------------------------------------------------- numpy reference
def hand_made(positions_km, waves, noise_power, freqs_hz):
    """Stacked cross-spectra C_ij = conj(S_i) S_j of incoherent plane waves, in the result layout.

    ``waves`` holds (slowness s/km, backazimuth deg, amplitude); station ``k`` records a wave
    delayed by ``s . r_k`` with ``s`` pointing where it travels, backazimuth + 180.
    """
    n = len(positions_km)
    names = [f"XX.S{k:03d}" for k in range(n)]
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    spectra = np.zeros((len(pairs), freqs_hz.size), dtype=complex)
    for slowness, backazimuth, amplitude in waves:
        travel = np.radians(backazimuth + 180.0)
        delays = slowness * (positions_km[:, 0] * np.sin(travel) + positions_km[:, 1] * np.cos(travel))
        station = amplitude * np.exp(-2j * np.pi * freqs_hz[None, :] * delays[:, None])  # (N, F)
        for p, (i, j) in enumerate(pairs):
            spectra[p] += np.conj(station[i]) * station[j]
    for p, (i, j) in enumerate(pairs):
        if i == j:
            spectra[p] += noise_power
    offset = np.array([positions_km[j] - positions_km[i] for i, j in pairs])
    coords = {
        "channel": ["Z:Z"],
        "station_pair": [f"{names[i]}:{names[j]}" for i, j in pairs],
        "frequency": freqs_hz,
        "src": ("station_pair", [names[i] for i, _ in pairs]),
        "rec": ("station_pair", [names[j] for _, j in pairs]),
        "distance": ("station_pair", np.hypot(offset[:, 0], offset[:, 1])),
        "azimuth": ("station_pair", np.degrees(np.arctan2(offset[:, 0], offset[:, 1])) % 360.0),
    }
    return xr.Dataset({"syn": (("channel", "station_pair", "frequency"), spectra[None])}, coords=coords)


def test_bartlett_and_mvdr_match_direct_formulas_on_a_hand_made_matrix():
    rng = np.random.default_rng(7)
    positions = rng.uniform(-10.0, 10.0, size=(6, 2))
    waves = [(0.25, 200.0, 1.0), (0.4, 80.0, 0.5)]
    noise_power = 0.3
    freqs = np.array([0.2, 0.25, 0.3])
    slowness = np.linspace(0.0, 0.5, 11)
    backazimuth = np.arange(0.0, 360.0, 15.0)
    result = hand_made(positions, waves, noise_power, freqs)
    n = len(positions)
    total = sum(a**2 for _, _, a in waves) + noise_power  # every autospectrum: coherency divides by it

    def steering(f, s, b):  # spectrum of a unit wave from backazimuth b at each station
        travel = np.radians(b + 180.0)
        return np.exp(-2j * np.pi * f * s * (positions[:, 0] * np.sin(travel) + positions[:, 1] * np.cos(travel)))

    bartlett = np.zeros((slowness.size, backazimuth.size))
    mvdr = np.zeros_like(bartlett)
    for f in freqs:
        matrix = noise_power * np.eye(n, dtype=complex)
        for s0, b0, a0 in waves:
            v = steering(f, s0, b0)
            matrix += a0**2 * np.outer(v, v.conj())
        inverse = np.linalg.inv(matrix / total + 0.05 * np.eye(n))  # diag 1: trace / N = 1
        for p, s in enumerate(slowness):
            for q, b in enumerate(backazimuth):
                a = steering(f, s, b)
                # delay-and-sum: the array response to each wave, incoherent waves add in power
                response = sum(a0**2 * abs(np.vdot(a, steering(f, s0, b0))) ** 2 for s0, b0, a0 in waves)
                bartlett[p, q] += (response + n * noise_power) / total / n**2 / freqs.size
                mvdr[p, q] += 1.0 / np.vdot(a, inverse @ a).real / freqs.size

    for method, expected in (("bartlett", bartlett), ("mvdr", mvdr)):
        power = beamform(result, 0.19, 0.31, slowness=slowness, azimuth=backazimuth, method=method)
        assert power.attrs["max_power"] == pytest.approx(expected.max(), rel=1e-10)
        np.testing.assert_allclose(power.values, expected / expected.max(), rtol=1e-9, atol=1e-12)
    best_s, best_b = np.unravel_index(np.argmax(bartlett), bartlett.shape)
    assert slowness[best_s] == pytest.approx(0.25) and backazimuth[best_b] in (195.0, 210.0)  # the stronger wave


def test_a_single_plane_wave_gives_unit_power_at_its_slowness():
    positions = np.array([[0.0, 0.0], [5.0, 1.0], [-3.0, 4.0], [2.0, -6.0], [-4.0, -2.0]])
    result = hand_made(positions, [(0.3, 240.0, 1.0)], 0.0, np.array([0.25]))
    power = beamform(result, 0.2, 0.3, slowness=[0.1, 0.3, 0.5], azimuth=[60.0, 240.0])
    assert power.attrs["max_power"] == pytest.approx(1.0, rel=1e-12)
    assert peak(power) == (0.3, 240.0)


# ---------------------------------------------------------------------------- bad input
def test_bad_input_raises_errors_that_name_the_parameter(results, caplog):
    result = results["directional"]
    without_geometry = result.drop_vars(["distance", "azimuth", "backazimuth"])
    with pytest.raises(DataError, match="station coordinates"):
        beamform(without_geometry, *BAND)
    with pytest.raises(ConfigError, match="channel"):
        beamform(result, *BAND, channel="X:X")
    with pytest.raises(ConfigError, match=r"channel.*component with itself"):
        beamform(result, *BAND, channel="Z:N")
    with pytest.raises(ConfigError, match="freqmin < freqmax"):
        beamform(result, 0.3, 0.3)
    with pytest.raises(ConfigError, match="freqmin < freqmax"):
        beamform(result, 0.35, 0.15)
    with pytest.raises(ConfigError, match="freqmin"):
        beamform(result, -0.1, 0.3)
    with pytest.raises(ConfigError, match="no frequency bin"):
        beamform(result, 0.2, 0.2001)
    with pytest.raises(ConfigError, match="method"):
        beamform(result, *BAND, method="music")
    with pytest.raises(ConfigError, match="slowness"):
        beamform(result, *BAND, slowness=[-0.1, 0.2])
    with pytest.raises(ConfigError, match="azimuth"):
        beamform(result, *BAND, azimuth=[np.nan])
    with pytest.raises(ConfigError, match="variable"):
        beamform(result, *BAND, variable="other")
    with pytest.raises(ConfigError, match="loading"):
        beamform(result, *BAND, method="mvdr", loading=0.0)
    with pytest.raises(ConfigError, match="window"):
        beamform(result.expand_dims(window=[0.0, 1.0]), *BAND)
    with pytest.raises(ConfigError, match="result"):
        beamform(result["syn"].values, *BAND)
    single = result.isel(station_pair=[0])
    with pytest.raises(DataError, match="at least two stations"):
        beamform(single, *BAND)
    with caplog.at_level(logging.WARNING, logger="anxcor.analysis.beamform"):
        beamform(result.where(result["station_pair"] != "XX.S000:XX.S001"), *BAND)
    assert "1 station pairs left out" in caplog.text
