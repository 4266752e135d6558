"""Tests of anxcor.io.xarray_to_obspy on a tiny processed result."""

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from anxcor.core import Anxcor
from anxcor.errors import ConfigError
from anxcor.io import xarray_to_obspy

T0 = UTCDateTime(2021, 1, 1)
RATE = 10.0
SHIFTS = {"S00": 0.0, "S01": 3.0, "S02": 7.5}  # seconds each station lags behind S00
STATIONS = tuple(SHIFTS)
COMPONENTS = ("Z", "N", "E")
CHANNELS = [f"{a}:{b}" for a in COMPONENTS for b in COMPONENTS]


def _shifted_stream(seed=0, seconds=3600.0):
    """Each station records the same noise delayed by SHIFTS[station], plus a little of its own."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    pad = 200
    base = {c: rng.standard_normal(n + 2 * pad) for c in COMPONENTS}
    traces = []
    for station, shift in SHIFTS.items():
        lag = round(shift * RATE)
        for component in COMPONENTS:
            data = base[component][pad - lag : pad - lag + n] + 0.1 * rng.standard_normal(n)
            header = {"network": "XX", "station": station, "channel": f"HH{component}", "sampling_rate": RATE, "starttime": T0}
            traces.append(Trace(data, header=header))
    return Stream(traces)


def _process(stack=True):
    anx = Anxcor(window_length=600)
    anx.set_task_kwargs("resample", {"target_rate": 10.0})
    anx.set_task_kwargs("crosscorrelate", {"max_tau_shift": 20.0})
    anx.add_dataset(_shifted_stream(), "test")
    times = anx.get_starttimes(T0, T0 + 3600, 0.0)
    assert len(times) == 6
    return anx.process(times, stack=stack)


@pytest.fixture(scope="module")
def result():
    return _process()


@pytest.fixture(scope="module")
def stream(result):
    return Anxcor.xarray_to_obspy(result)


def _expected_ids():
    pairs = [(a, b) for i, a in enumerate(STATIONS) for b in STATIONS[i:]]
    return [f"XX:XX.{a}:{b}.test.{channel}" for a, b in pairs for channel in CHANNELS]


def test_one_trace_per_pair_and_channel_pair(stream):
    assert isinstance(stream, Stream)
    assert len(stream) == 6 * 9  # 3 autocorrelations + 3 cross pairs, 9 channel pairs each


def test_ids_are_documented_labels_in_result_order(stream):
    assert [tr.id for tr in stream] == _expected_ids()
    tr = stream[1 * 9 + 1]  # XX.S00:XX.S01, channel Z:N
    assert tr.stats.network == "XX:XX"
    assert tr.stats.station == "S00:S01"
    assert tr.stats.location == "test"
    assert tr.stats.channel == "Z:N"
    assert tr.stats.anxcor.src == "XX.S00"
    assert tr.stats.anxcor.rec == "XX.S01"
    assert tr.stats.anxcor.dataset == "test"
    assert tr.stats.anxcor.channel == "Z:N"


def test_times_are_the_lag_axis(result, stream):
    lags = result["time"].values
    np.testing.assert_allclose(lags, np.arange(-200, 201) / RATE, atol=1e-12)
    for tr in stream:
        assert tr.stats.sampling_rate == RATE
        assert tr.stats.npts == lags.size
        np.testing.assert_allclose(tr.times("timestamp"), lags, atol=1e-6)
        assert tr.stats.anxcor.lag_start == pytest.approx(-20.0)


def test_data_equal_dataset_values(result, stream):
    variable = result["test"]
    for tr in stream:
        label = f"{tr.stats.anxcor.src}:{tr.stats.anxcor.rec}"
        expected = variable.sel(station_pair=label, channel=tr.stats.channel).values
        np.testing.assert_array_equal(tr.data, expected)
        assert tr.data.dtype == np.float64


def test_n_windows_metadata(result, stream):
    assert all(tr.stats.anxcor.n_windows == 6 for tr in stream)
    assert int(result["n_windows"].min()) == 6


def test_known_shifts_give_peaks_at_positive_lags(stream):
    # positive lag = energy from source to receiver: the receiver lags behind the source
    for tr in stream.select(channel="Z:Z"):
        src = tr.stats.anxcor.src.split(".")[1]
        rec = tr.stats.anxcor.rec.split(".")[1]
        peak = tr.times("timestamp")[np.argmax(tr.data)]
        assert peak == pytest.approx(SHIFTS[rec] - SHIFTS[src], abs=0.5 / RATE)


def test_no_coordinates_no_distance(stream):
    assert all("distance" not in tr.stats for tr in stream)
    assert all("distance_km" not in tr.stats.anxcor for tr in stream)


def test_rerun_gives_identical_traces(stream):
    again = xarray_to_obspy(_process())
    assert [tr.id for tr in again] == [tr.id for tr in stream]
    for a, b in zip(again, stream, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        assert a.stats.starttime == b.stats.starttime


def test_unstacked_result_is_rejected():
    unstacked = _process(stack=False)
    assert unstacked["test"].sizes["window"] == 6
    with pytest.raises(ConfigError, match="stack"):
        xarray_to_obspy(unstacked)


def test_non_dataset_is_rejected(result):
    with pytest.raises(ConfigError, match="DataArray"):
        xarray_to_obspy(result["test"])
