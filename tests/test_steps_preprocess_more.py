"""Tests of the added preprocessing steps (response removal, filters, taper types, decimation,
water-level and band-limited normalisation, transient rejection) against independent
obspy/scipy references and hand-made signals."""

import json

import numpy as np
import obspy
import pytest
import scipy.signal
from conftest import shared_path
from obspy import UTCDateTime
from obspy.core.inventory import Channel, Inventory, Network, Station
from obspy.core.inventory.response import Response
from obspy.signal.invsim import cosine_sac_taper

from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase
from anxcor.errors import AnxcorError, ConfigError, DataError
from anxcor.steps.base import WindowContext
from anxcor.steps.preprocess import (
    Bandpass,
    Decimate,
    Highpass,
    Lowpass,
    RejectTransients,
    RemoveResponse,
    Taper,
    TemporalNorm,
    _deconvolution_filter,
    cosine_prefilter,
    taper_window,
)

T0 = UTCDateTime(2010, 9, 1)
PITON_RECORD = ("data", "piton", "2010", "UV05", "HHZ.D", "YA.UV05.00.HHZ.D.2010.244")
PITON_INVENTORY = ("data", "piton", "station", "YA.UV05_UV06_UV10.stationxml.xml")


def _noise(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def _relative_rms(result, reference):
    return _rms(np.asarray(result) - np.asarray(reference)) / _rms(reference)


# ---------------------------------------------------------------------- instrument response


def _context(channels, inventory, starttime=T0, station="XX.A00"):
    components = tuple(seed_id[-1] for seed_id in channels)
    return WindowContext(station, float(starttime), components, tuple(channels), inventory)


def _inventory(responses, rate=10.0):
    """One network XX; ``responses`` maps 'STA.LOC.CHA' to a Response (or None: no response)."""
    stations = {}
    for key, response in responses.items():
        sta, loc, cha = key.split(".")
        channel = Channel(
            cha,
            loc,
            latitude=40.0,
            longitude=-111.0 + 0.01 * len(stations),
            elevation=0.0,
            depth=0.0,
            sample_rate=rate,
            response=response,
            start_date=UTCDateTime(2000, 1, 1),
        )
        stations.setdefault(sta, []).append(channel)
    network = Network(
        "XX",
        stations=[
            Station(
                sta,
                latitude=40.0,
                longitude=-111.0 + 0.01 * i,
                elevation=0.0,
                channels=channels,
                start_date=UTCDateTime(2000, 1, 1),
            )
            for i, (sta, channels) in enumerate(stations.items())
        ],
    )
    return Inventory(networks=[network], source="anxcor tests")


def _gain(value):
    return Response.from_paz(zeros=[], poles=[], stage_gain=value, input_units="M/S", output_units="COUNTS")


def _seismometer(gain, corner_hz):
    """A velocity seismometer: two zeros at 0, two poles at ``corner_hz`` (damping 0.707)."""
    w = 2 * np.pi * corner_hz
    poles = [complex(-0.707 * w, 0.707 * w), complex(-0.707 * w, -0.707 * w)]
    s = 2j * np.pi * 1.0  # normalised to 1 at 1 Hz, where the gain is given
    normalization = float(abs((s - poles[0]) * (s - poles[1]) / s**2))
    return Response.from_paz(
        zeros=[0j, 0j],
        poles=poles,
        stage_gain=gain,
        input_units="M/S",
        output_units="COUNTS",
        normalization_factor=normalization,
    )


@pytest.fixture(scope="module")
def piton():
    """Ten minutes (60000 samples at 100 Hz) of YA.UV05.00.HHZ and its StationXML."""
    record = obspy.read(str(shared_path(*PITON_RECORD)))[0]
    inventory = obspy.read_inventory(str(shared_path(*PITON_INVENTORY)))
    start = record.stats.starttime + 3600.0
    trace = record.slice(start, start + 600.0 - record.stats.delta).copy()
    assert trace.stats.npts == 60000 and trace.stats.sampling_rate == 100.0
    return trace, inventory


PITON_PRE_FILT = (0.01, 0.02, 35.0, 45.0)


@pytest.mark.parametrize("output", ["VEL", "DISP", "ACC"])
def test_remove_response_is_obspys_deconvolution_on_a_real_record(piton, output):
    # same algorithm as obspy's Trace.remove_response; with both time-domain tapers off
    # the only differences are floating-point rounding (measured ~1e-16)
    trace, inventory = piton
    context = _context((trace.id,), inventory, trace.stats.starttime, "YA.UV05")
    expected = (
        trace.copy()
        .remove_response(
            inventory=inventory, output=output, pre_filt=PITON_PRE_FILT, water_level=None, zero_mean=False, taper=False
        )
        .data
    )
    step = RemoveResponse(output=output, pre_filt=PITON_PRE_FILT, zero_mean=False, taper_fraction=0.0)
    out, rate = step.apply(trace.data.astype(np.float64)[None], 100.0, context)
    assert rate == 100.0 and out.shape == (1, 60000)
    assert _relative_rms(out[0], expected) < 1e-9


def test_remove_response_defaults_match_obspy_defaults_on_a_real_record(piton):
    # both remove the mean and taper 5% of the window (obspy's taper ramp is sampled over
    # fraction * n, ours over fraction * (n - 1) samples): measured 1.6e-6 relative RMS
    trace, inventory = piton
    context = _context((trace.id,), inventory, trace.stats.starttime, "YA.UV05")
    expected = trace.copy().remove_response(inventory=inventory, pre_filt=PITON_PRE_FILT, water_level=None).data
    out, _ = RemoveResponse(pre_filt=PITON_PRE_FILT).apply(trace.data.astype(np.float64)[None], 100.0, context)
    assert _relative_rms(out[0], expected) < 5e-6
    # sanity of units: a quiet volcano station records ~1e-7..1e-5 m/s, the raw data ~1e2..1e4 counts
    assert 1e-9 < _rms(out[0]) < 1e-4 < _rms(trace.data - trace.data.mean())


def test_remove_response_water_level_matches_obspy(piton):
    trace, inventory = piton
    context = _context((trace.id,), inventory, trace.stats.starttime, "YA.UV05")
    pre_filt = (0.001, 0.002, 35.0, 45.0)
    kwargs = dict(inventory=inventory, pre_filt=pre_filt, zero_mean=False, taper=False)
    expected = trace.copy().remove_response(water_level=40.0, **kwargs).data
    without = trace.copy().remove_response(water_level=None, **kwargs).data
    assert _relative_rms(without, expected) > 0.1  # the water level does change the result here
    step = RemoveResponse(pre_filt=pre_filt, water_level=40.0, zero_mean=False, taper_fraction=0.0)
    out, _ = step.apply(trace.data.astype(np.float64)[None], 100.0, context)
    assert _relative_rms(out[0], expected) < 1e-9


def test_remove_response_is_cached_per_channel(piton):
    trace, inventory = piton
    context = _context((trace.id,), inventory, trace.stats.starttime, "YA.UV05")
    step = RemoveResponse(pre_filt=(0.02, 0.04, 30.0, 40.0))
    data = trace.data.astype(np.float64)[None]
    first, _ = step.apply(data, 100.0, context)
    hits = _deconvolution_filter.cache_info().hits
    # a copy of the inventory (as on a dask worker) and a later window of the same epoch hit the cache
    later = _context((trace.id,), inventory.copy(), trace.stats.starttime + 600.0, "YA.UV05")
    second, _ = step.apply(data, 100.0, later)
    assert _deconvolution_filter.cache_info().hits == hits + 1
    np.testing.assert_array_equal(first, second)


def test_remove_response_of_a_pure_gain_is_division_by_the_gain():
    gains = {"A00.00.HHZ": 1000.0, "A00.00.HHN": 250.0, "A00.00.HHE": 4.0e5}
    inventory = _inventory({key: _gain(value) for key, value in gains.items()})
    channels = tuple(f"XX.{key}" for key in gains)
    data = _noise((3, 999), seed=20) * 100.0 + 17.0
    step = RemoveResponse(output="VEL", zero_mean=True, taper_fraction=0.0)
    out, _ = step.apply(data, 10.0, _context(channels, inventory))
    expected = (data - data.mean(axis=-1, keepdims=True)) / np.array(list(gains.values()))[:, None]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_remove_response_rows_match_obspy_per_trace():
    # three channels with different seismometers, deconvolved in one call, each against obspy
    responses = {
        "A00.00.HHZ": _seismometer(1500.0, 1.0),
        "A00.00.HHN": _seismometer(800.0, 0.2),
        "A00.00.HHE": _seismometer(3000.0, 0.033),
    }
    inventory = _inventory(responses, rate=20.0)
    data = np.cumsum(_noise((3, 4000), seed=21), axis=-1)
    pre_filt = (0.02, 0.05, 6.0, 8.0)
    channels = tuple(f"XX.{k}" for k in responses)
    exact, _ = RemoveResponse(pre_filt=pre_filt, taper_fraction=0.0).apply(data, 20.0, _context(channels, inventory))
    tapered, _ = RemoveResponse(pre_filt=pre_filt).apply(data, 20.0, _context(channels, inventory))
    for row, key in enumerate(responses):
        trace = obspy.Trace(
            data[row].copy(),
            header=dict(network="XX", station="A00", location="00", channel=key[-3:], sampling_rate=20.0, starttime=T0),
        )
        untapered = trace.copy().remove_response(inventory=inventory, pre_filt=pre_filt, water_level=None, taper=False)
        assert _relative_rms(exact[row], untapered.data) < 1e-9
        # with the 5% tapers, which obspy samples over fraction * n and we over fraction * (n - 1)
        default = trace.copy().remove_response(inventory=inventory, pre_filt=pre_filt, water_level=None)
        assert _relative_rms(tapered[row], default.data) < 1e-3


def test_cosine_prefilter_matches_obspy_sac_taper():
    frequencies = np.linspace(0.0, 10.0, 2001)
    corners = (0.05, 0.1, 4.0, 6.5)
    np.testing.assert_allclose(
        cosine_prefilter(frequencies, corners), cosine_sac_taper(frequencies, corners), atol=1e-12
    )


@pytest.mark.parametrize(
    ("channels", "inventory", "reason"),
    [
        (("XX.A02.00.HHZ",), None, "no inventory"),
        (("XX.A02.00.HHZ",), _inventory({"A00.00.HHZ": _gain(1.0)}), "not in the inventory"),
        (("XX.A02.00.HHZ",), _inventory({"A02.00.HHZ": None}), "has no response"),
        (("XX.A02.00.HHZ",), _inventory({"A02.00.HHZ": Response()}), "no stages"),
        (("XX.A02.00.HHZ", "XX.A02.00.HHN"), _inventory({"A02.00.HHZ": _gain(1.0)}), "not in the inventory"),
    ],
)
def test_remove_response_without_a_response_is_a_data_error_naming_the_channel(channels, inventory, reason):
    context = _context(channels, inventory, T0, "XX.A02")
    missing = channels[-1]
    with pytest.raises(DataError) as info:
        RemoveResponse().apply(_noise((len(channels), 200)), 10.0, context)
    message = str(info.value)
    assert message.startswith(f"no instrument response for {missing} at 2010-09-01T00:00:00: ")
    assert reason in message


def test_remove_response_outside_the_channel_epoch_is_a_data_error():
    inventory = _inventory({"A00.00.HHZ": _gain(1.0)})
    before = UTCDateTime(1999, 6, 1)
    with pytest.raises(DataError, match=r"no instrument response for XX\.A00\.00\.HHZ at 1999-06-01T00:00:00"):
        RemoveResponse().apply(_noise((1, 100)), 10.0, _context(("XX.A00.00.HHZ",), inventory, before))
    RemoveResponse().apply(_noise((1, 100)), 10.0, _context(("XX.A00.00.HHZ",), inventory, T0))  # inside: fine


def test_remove_response_needs_a_context():
    with pytest.raises(DataError, match="WindowContext"):
        RemoveResponse().apply(_noise((1, 100)), 10.0)


# ---------------------------------------------------------------------- high-pass and low-pass


@pytest.mark.parametrize("zerophase", [True, False])
@pytest.mark.parametrize(
    ("cls", "btype", "freq", "order"), [(Highpass, "highpass", 0.2, 4), (Lowpass, "lowpass", 3.0, 2)]
)
def test_high_and_low_pass_match_scipy_butter(cls, btype, freq, order, zerophase):
    rate = 25.0
    data = _noise((3, 3000), seed=30)
    out, out_rate = cls(freq=freq, order=order, zerophase=zerophase).apply(data, rate)
    sos = scipy.signal.butter(order, freq, btype=btype, fs=rate, output="sos")
    expected = scipy.signal.sosfiltfilt(sos, data, axis=-1) if zerophase else scipy.signal.sosfilt(sos, data, axis=-1)
    assert out_rate == rate
    np.testing.assert_allclose(out, expected, atol=1e-10)


def test_high_and_low_pass_pass_and_stop_tones():
    rate = 50.0
    t = np.arange(int(200 * rate)) / rate
    slow, fast = np.sin(2 * np.pi * 0.2 * t)[None], np.sin(2 * np.pi * 5.0 * t)[None]
    middle = slice(len(t) // 4, 3 * len(t) // 4)
    high, low = Highpass(freq=1.0), Lowpass(freq=1.0)
    assert _rms(high.apply(fast, rate)[0][0, middle]) == pytest.approx(_rms(fast[0, middle]), rel=0.01)
    assert _rms(low.apply(slow, rate)[0][0, middle]) == pytest.approx(_rms(slow[0, middle]), rel=0.01)
    assert _rms(high.apply(slow, rate)[0][0, middle]) < 1e-4 * _rms(slow[0, middle])
    assert _rms(low.apply(fast, rate)[0][0, middle]) < 1e-4 * _rms(fast[0, middle])


@pytest.mark.parametrize("cls", [Highpass, Lowpass])
def test_high_and_low_pass_at_or_above_nyquist_is_a_data_error(cls):
    with pytest.raises(DataError, match="Nyquist"):
        cls(freq=5.0).apply(_noise((1, 100)), 10.0)


# ---------------------------------------------------------------------- taper types


@pytest.mark.parametrize("taper_type", ["hann", "hamming", "blackman"])
def test_taper_types_are_halves_of_scipy_windows(taper_type):
    n, fraction = 1001, 0.1  # ramps of L = 0.2 * 1000 / 2 = 100 samples
    ramp = 100
    data = _noise((2, n), seed=31)
    out, _ = Taper(max_percentage=fraction, taper_type=taper_type).apply(data, 10.0)
    window = scipy.signal.windows.get_window(taper_type, 2 * ramp + 1, fftbins=False)
    expected = np.ones(n)
    expected[: ramp + 1] = window[: ramp + 1]
    expected[-(ramp + 1) :] = window[ramp:]
    np.testing.assert_allclose(out, data * expected, atol=1e-12)


def test_cosine_taper_is_the_square_root_of_hann_and_obspys_shape():
    n, fraction, ramp = 2001, 0.05, 100
    cosine = taper_window(n, fraction, "cosine")
    hann = scipy.signal.windows.hann(2 * ramp + 1)
    np.testing.assert_allclose(cosine[: ramp + 1] ** 2, hann[: ramp + 1], atol=1e-12)
    np.testing.assert_allclose(cosine[-(ramp + 1) :] ** 2, hann[ramp:], atol=1e-12)
    np.testing.assert_array_equal(cosine[ramp + 1 : -(ramp + 1)], 1.0)
    # obspy's SAC cosine taper has the same shape, sampled over fraction * n samples
    obspy_taper = obspy.signal.invsim.cosine_taper(n, 2 * fraction, sactaper=True, halfcosine=False)
    assert np.abs(cosine - obspy_taper).max() < 0.01


def test_taper_default_is_unchanged_tukey():
    data = _noise((3, 777), seed=32)
    assert Taper().taper_type == "hann"
    np.testing.assert_allclose(Taper().apply(data, 1.0)[0], data * scipy.signal.windows.tukey(777, 0.1), atol=1e-12)


# ---------------------------------------------------------------------- decimation


@pytest.mark.parametrize(
    ("factor", "ftype", "zerophase"), [(5, "iir", True), (4, "iir", False), (10, "fir", True), (3, "fir", False)]
)
def test_decimate_matches_scipy(factor, ftype, zerophase):
    data = _noise((3, 6001), seed=40)
    step = Decimate(factor=factor, ftype=ftype, zerophase=zerophase)
    out, rate = step.apply(data, 100.0)
    expected = scipy.signal.decimate(data, factor, ftype=ftype, axis=-1, zero_phase=zerophase)
    assert rate == step.output_rate(100.0) == 100.0 / factor
    assert out.shape == (3, -(-6001 // factor))
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_decimate_large_iir_factor_goes_in_stages():
    data = _noise((2, 20000), seed=41)
    out, rate = Decimate(factor=20).apply(data, 200.0)
    staged = scipy.signal.decimate(scipy.signal.decimate(data, 10, axis=-1), 2, axis=-1)
    assert rate == 10.0
    np.testing.assert_allclose(out, staged, atol=1e-12)


def test_decimate_suppresses_a_tone_above_the_new_nyquist():
    rate, factor = 100.0, 10  # new Nyquist 5 Hz
    t = np.arange(int(120 * rate)) / rate
    signal = np.sin(2 * np.pi * 1.0 * t)
    tone = np.sin(2 * np.pi * 8.0 * t)  # would fold onto 2 Hz
    out, new_rate = Decimate(factor=factor).apply(np.vstack([signal + tone]), rate)
    t_out = np.arange(out.shape[-1]) / new_rate
    inner = slice(100, -100)
    freqs = np.fft.rfftfreq(out[0, inner].size, 1 / new_rate)
    alias = np.abs(np.fft.rfft(out[0, inner])) * 2 / out[0, inner].size
    naive = np.abs(np.fft.rfft((signal + tone)[::factor][inner])) * 2 / out[0, inner].size
    at_2hz = np.argmin(np.abs(freqs - 2.0))
    assert naive[at_2hz] > 0.9  # plain slicing aliases the 8 Hz tone to 2 Hz at full amplitude
    assert alias[at_2hz] < 1e-3
    np.testing.assert_allclose(out[0, inner], np.sin(2 * np.pi * 1.0 * t_out[inner]), atol=1e-2)


def test_decimate_too_short_is_a_data_error():
    with pytest.raises(DataError, match="Decimate"):
        Decimate(factor=4).apply(_noise((1, 20)), 100.0)


# ---------------------------------------------------------------------- temporal normalisation


def _earthquake_in_noise(rate=20.0, seconds=600.0, seed=50):
    n = int(seconds * rate)
    t = np.arange(n) / rate
    noise = _noise((2, n), seed=seed)
    onset = 200.0
    envelope = np.where(t >= onset, np.exp(-(t - onset) / 15.0), 0.0)
    quake = 80.0 * envelope * np.sin(2 * np.pi * 0.7 * t)
    return noise, noise + quake[None], t


def test_water_level_downweights_an_earthquake_and_leaves_quiet_noise_alone():
    rate, window_s, factor = 20.0, 10.0, 3.0
    _, data, t = _earthquake_in_noise(rate)
    out, _ = TemporalNorm(method="water_level", window_s=window_s, factor=factor).apply(data, rate)
    segment = int(window_s * rate)
    pieces = out.reshape(2, -1, segment)
    rms_in = np.sqrt(np.mean(data.reshape(2, -1, segment) ** 2, axis=-1))
    rms_out = np.sqrt(np.mean(pieces**2, axis=-1))
    level = factor * np.median(rms_out, axis=-1, keepdims=True)
    assert np.all(rms_out <= level * (1 + 1e-9))
    # the loudest piece of the quake was ~50x the noise; now it is at the level (3x)
    assert rms_in.max() > 30 * np.median(rms_in)
    assert rms_out.max() == pytest.approx(level.max(), rel=1e-6)
    # the noise before the quake and long after it is untouched (bit for bit)
    quiet = (t < 200.0) | (t >= 400.0)
    np.testing.assert_array_equal(out[:, quiet], data[:, quiet])
    # independent reference: one pass of per-piece scaling, written as a plain loop
    expected = data.copy()
    for row in range(2):
        rms = [_rms(data[row, k : k + segment]) for k in range(0, data.shape[-1], segment)]
        water = factor * np.median(rms)
        for i, value in enumerate(rms):
            if value > water:
                expected[row, i * segment : (i + 1) * segment] *= water / value
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_water_level_leaves_pure_noise_unchanged():
    data = _noise((3, 24000), seed=51)
    out, _ = TemporalNorm(method="water_level").apply(data, 20.0)
    np.testing.assert_array_equal(out, data)


def test_ram_band_weights_match_a_scipy_reference():
    rate, window_s, band = 1.0, 64.0, (0.02, 0.067)
    data = _noise((2, 7200), seed=52)
    out, _ = TemporalNorm(method="ram", window_s=window_s, ram_band=band).apply(data, rate)
    sos = scipy.signal.butter(4, band, btype="bandpass", fs=rate, output="sos")
    width = 65
    inner = slice(width, -width)
    for row in range(2):
        weight = np.convolve(np.abs(scipy.signal.sosfiltfilt(sos, data[row])), np.ones(width) / width, mode="same")
        np.testing.assert_allclose(out[row, inner], data[row, inner] / weight[inner], rtol=1e-9)


def test_ram_band_weights_ignore_a_burst_outside_the_band():
    rate, window_s, band = 2.0, 64.0, (0.02, 0.067)
    n = int(7200 * rate)
    t = np.arange(n) / rate
    background = Bandpass(freqmin=0.02, freqmax=0.067).apply(_noise((1, n), seed=53), rate)[0]
    envelope = 30.0 * _rms(background) * np.exp(-0.5 * ((t - 3150.0) / 60.0) ** 2)  # smooth: no broadband edges
    burst = envelope * np.sin(2 * np.pi * 0.5 * t)
    with_burst = background + burst[None]

    def weights(step, x):
        return x / step.apply(x, rate)[0]

    inner = slice(int(500 * rate), -int(500 * rate))
    banded = TemporalNorm(method="ram", window_s=window_s, ram_band=band)
    change = weights(banded, with_burst)[0, inner] / weights(banded, background)[0, inner]
    assert np.abs(change - 1).max() < 1e-6  # the 0.5 Hz burst does not move the band's weights (9e-10)
    broadband = TemporalNorm(method="ram", window_s=window_s)
    change = weights(broadband, with_burst)[0, inner] / weights(broadband, background)[0, inner]
    assert change.max() > 10  # whereas plain RAM weights jump by an order of magnitude


# ---------------------------------------------------------------------- transient rejection


def test_reject_transients_rejects_a_spike_window():
    data = _noise((3, 6000), seed=60)
    data[1, 2500] = 25.0
    context = _context(("XX.A00.00.HHZ", "XX.A00.00.HHN", "XX.A00.00.HHE"), None)
    with pytest.raises(DataError) as info:
        RejectTransients().apply(data, 20.0, context)
    message = str(info.value)
    assert message.startswith("rejected: max |x| = ")
    assert "> 10.0 x robust std" in message and "XX.A00.00.HHN" in message
    RejectTransients(max_std_factor=30.0).apply(data, 20.0, context)  # a higher threshold passes it


def test_reject_transients_never_rejects_gaussian_noise_with_the_default():
    rng = np.random.default_rng(61)
    step = RejectTransients()
    rejected = 0
    for _ in range(200):
        data = rng.standard_normal((3, 6000)) * rng.uniform(0.1, 100.0)
        try:
            out, _ = step.apply(data, 20.0)
        except DataError:
            rejected += 1
        else:
            assert out is data
    assert rejected == 0


def test_reject_transients_rms_test_catches_a_burst_without_spikes():
    noise, data, _ = _earthquake_in_noise()
    step = RejectTransients(max_std_factor=None, max_rms_factor=5.0, window_s=10.0)
    with pytest.raises(DataError, match=r"rejected: max 10.0 s RMS = .* > 5.0 x median 10.0 s RMS"):
        step.apply(data, 20.0)
    step.apply(noise, 20.0)


# ---------------------------------------------------------------------- validation and parameters


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (RemoveResponse, {"output": "velocity"}, "output"),
        (RemoveResponse, {"pre_filt": (0.1, 0.2, 5.0)}, "pre_filt"),
        (RemoveResponse, {"pre_filt": (0.2, 0.1, 5.0, 6.0)}, "pre_filt"),
        (RemoveResponse, {"pre_filt": (0.1, 0.2, 5.0, -6.0)}, "pre_filt"),
        (RemoveResponse, {"pre_filt": "0.1 0.2 5 6"}, "pre_filt"),
        (RemoveResponse, {"water_level": -1.0}, "water_level"),
        (RemoveResponse, {"water_level": "60"}, "water_level"),
        (RemoveResponse, {"zero_mean": 1}, "zero_mean"),
        (RemoveResponse, {"taper_fraction": 1.5}, "taper_fraction"),
        (Highpass, {"freq": 0.0}, "freq"),
        (Highpass, {"freq": 1.0, "order": 13}, "order"),
        (Highpass, {"freq": 1.0, "zerophase": None}, "zerophase"),
        (Lowpass, {"freq": "1"}, "freq"),
        (Lowpass, {"freq": 1.0, "order": 2.0}, "order"),
        (Taper, {"taper_type": "triangle"}, "taper_type"),
        (Decimate, {"factor": 0}, "factor"),
        (Decimate, {"factor": 2.5}, "factor"),
        (Decimate, {"factor": True}, "factor"),
        (Decimate, {"factor": 17}, "factor"),
        (Decimate, {"factor": 2, "ftype": "cheby"}, "ftype"),
        (Decimate, {"factor": 2, "zerophase": "yes"}, "zerophase"),
        (TemporalNorm, {"method": "waterlevel"}, "method"),
        (TemporalNorm, {"ram_band": (0.1,)}, "ram_band"),
        (TemporalNorm, {"ram_band": (0.2, 0.1)}, "ram_band"),
        (TemporalNorm, {"ram_band": (0.0, 0.1)}, "ram_band"),
        (TemporalNorm, {"method": "clip", "ram_band": (0.02, 0.067)}, "ram_band"),
        (RejectTransients, {"max_std_factor": 0.0}, "max_std_factor"),
        (RejectTransients, {"max_rms_factor": -2.0}, "max_rms_factor"),
        (RejectTransients, {"max_std_factor": None}, "max_std_factor"),
        (RejectTransients, {"window_s": 0.0}, "window_s"),
    ],
)
def test_construction_validation_names_the_parameter(cls, kwargs, name):
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert name in str(info.value)
    assert isinstance(info.value, AnxcorError)


NEW_STEPS = [
    RemoveResponse(),
    RemoveResponse(
        output="DISP", pre_filt=(0.005, 0.01, 8.0, 10.0), water_level=60.0, zero_mean=False, taper_fraction=0.1
    ),
    Highpass(freq=0.05),
    Lowpass(freq=2.0, order=6, zerophase=False),
    Taper(max_percentage=0.2, taper_type="blackman"),
    Decimate(factor=4),
    Decimate(factor=17, ftype="fir", zerophase=False),
    TemporalNorm(method="water_level", window_s=30.0, factor=4.0),
    TemporalNorm(method="ram", window_s=64.0, ram_band=(0.02, 0.067)),
    RejectTransients(),
    RejectTransients(max_std_factor=None, max_rms_factor=6.0, window_s=30.0),
]


@pytest.mark.parametrize("step", NEW_STEPS, ids=repr)
def test_get_params_and_repr_round_trip(step):
    params = step.get_params()
    rebuilt = type(step)(**params)
    assert rebuilt == step and hash(rebuilt) == hash(step)
    assert rebuilt.get_params() == params
    namespace = {
        cls.__name__: cls
        for cls in (RemoveResponse, Highpass, Lowpass, Taper, Decimate, TemporalNorm, RejectTransients)
    }
    assert eval(repr(step), namespace) == step
    with pytest.raises(AttributeError):
        setattr(step, next(iter(params)), None)


def test_list_parameters_become_tuples():
    # as they come back from a JSON configuration
    assert RemoveResponse(pre_filt=[0.01, 0.02, 8, 10]) == RemoveResponse(pre_filt=(0.01, 0.02, 8.0, 10.0))
    assert TemporalNorm(ram_band=[0.02, 0.067]).ram_band == (0.02, 0.067)


def test_defaults():
    assert RemoveResponse().get_params() == {
        "output": "VEL",
        "pre_filt": None,
        "water_level": None,
        "zero_mean": True,
        "taper_fraction": 0.05,
    }
    assert Highpass(freq=1.0).get_params() == {"freq": 1.0, "order": 4, "zerophase": True}
    assert Lowpass(freq=1.0).get_params() == {"freq": 1.0, "order": 4, "zerophase": True}
    assert Taper().get_params() == {"max_percentage": 0.05, "taper_type": "hann"}
    assert Decimate(factor=2).get_params() == {"factor": 2, "zerophase": True, "ftype": "iir"}
    assert TemporalNorm().get_params() == {"method": "ram", "window_s": 10.0, "factor": 3.0, "ram_band": None}
    assert RejectTransients().get_params() == {"max_std_factor": 10.0, "max_rms_factor": None, "window_s": 10.0}


# ---------------------------------------------------------------------- end to end


def _three_station_stream(responses, rate=10.0, seconds=1200.0, seed=70):
    """Z records of XX.A00-A02 of a common noise field (delayed by 0, 2 and 4 s), in counts.

    Ground velocity is recorded through ``responses[i]`` (applied in the frequency domain),
    or through a gain of 1000 where that is None.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    field = rng.standard_normal(n + 200)
    stream = obspy.Stream()
    for i, response in enumerate(responses):
        shift = int(2.0 * i * rate)
        velocity = field[100 - shift : 100 - shift + n] + 0.3 * rng.standard_normal(n)
        if response is None:
            counts = 1000.0 * velocity
        else:
            frequencies = np.fft.rfftfreq(n, 1.0 / rate)
            transfer = response.get_evalresp_response_for_frequencies(frequencies, output="VEL")
            counts = np.fft.irfft(np.fft.rfft(velocity) * transfer, n)
        stream += obspy.Trace(
            counts,
            header=dict(network="XX", station=f"A0{i}", location="00", channel="HHZ", sampling_rate=rate, starttime=T0),
        )
    return stream


def _run(stream, inventory, exclude=None):
    anx = Anxcor(window_length=300.0, read_span=600.0)
    anx.set_task_kwargs("resample", dict(target_rate=10.0))
    # double precision: a run without the failing station is compared with this one to 1e-10
    # (in single precision the two runs' window sums round differently, by about 1e-7 of the peak)
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=20.0, precision="double"))
    anx.add_process(RemoveResponse(pre_filt=(0.01, 0.02, 3.0, 4.0)), before="detrend")
    if exclude:
        anx.set_station_filter(exclude=exclude)
    anx.add_dataset(InMemoryDatabase(stream), "x", inventory=inventory)
    return anx.process(anx.get_starttimes(T0, T0 + 1200.0, 0.0))


def test_pipeline_skips_and_records_windows_of_a_station_without_response():
    a00, a01 = _seismometer(1500.0, 0.1), _gain(800.0)
    stream = _three_station_stream([a00, a01, None])
    inventory = _inventory({"A00.00.HHZ": a00, "A01.00.HHZ": a01, "A02.00.HHZ": None})
    result = _run(stream, inventory)
    all_failures = json.loads(result.attrs["failures"])
    # Z-only stations: one "absent" record per station and horizontal component, for the run
    absent = [f for f in all_failures if f["reason"] == "component absent from the data in all 4 windows"]
    assert sorted((f["station"], f["component"]) for f in absent) == [(f"XX.A0{k}", c) for k in range(3) for c in "EN"]
    failures = [f for f in all_failures if f not in absent]
    assert len(failures) == 4  # one per window, all on XX.A02
    assert {f["station"] for f in failures} == {"XX.A02"}
    assert all(f["reason"].startswith("no instrument response for XX.A02.00.HHZ at ") for f in failures)
    assert {f["window_start"] for f in failures} == {str(T0 + k * 300.0) for k in range(4)}
    zz = result["x"].sel(channel="Z:Z")
    counts = result["n_windows"].sel(channel="Z:Z")
    assert int(counts.sel(station_pair="XX.A00:XX.A01")) == 4
    assert all(int(counts.sel(station_pair=p)) == 0 for p in ("XX.A00:XX.A02", "XX.A01:XX.A02", "XX.A02:XX.A02"))
    pair = zz.sel(station_pair="XX.A00:XX.A01")
    assert np.isfinite(pair).all() and float(np.abs(pair).max()) > 0
    # energy travels A00 -> A01 with a 2 s delay: the correlation peaks at +2 s
    peak = int(np.argmax(np.abs(pair.values)))
    assert float(pair["time"][peak]) == pytest.approx(2.0)
    # the failing station does not change the other pairs
    alone = _run(stream, inventory, exclude=["XX.A02"])
    np.testing.assert_allclose(
        pair.values, alone["x"].sel(channel="Z:Z", station_pair="XX.A00:XX.A01").values, rtol=1e-10, atol=0
    )
