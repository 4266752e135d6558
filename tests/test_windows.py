"""Tests of anxcor.windows: start times, read spans, gridding one component onto a window."""

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from anxcor.core import Anxcor
from anxcor.errors import AnxcorError, ConfigError
from anxcor.windows import (
    component_of,
    get_starttimes,
    grid_component,
    plan_read_spans,
    read_station_span,
)

# ---------------------------------------------------------------------- start times


@pytest.mark.parametrize(
    ("overlap", "expected"),
    [
        (0.0, [0.0, 900.0, 1800.0, 2700.0]),
        (0.25, [0.0, 675.0, 1350.0, 2025.0, 2700.0]),
        (0.5, [0.0, 450.0, 900.0, 1350.0, 1800.0, 2250.0, 2700.0]),
    ],
)
def test_starttimes_hand_computed(overlap, expected):
    # one hour, 900 s windows: step = 900 * (1 - overlap)
    assert get_starttimes(0.0, 3600.0, 900.0, overlap) == pytest.approx(expected, abs=1e-9)
    assert Anxcor(window_length=900).get_starttimes(0.0, 3600.0, overlap) == pytest.approx(expected, abs=1e-9)


def test_starttimes_offset_origin_and_partial_tail():
    t0 = 1.6e9
    # 3599 s: the window starting at t0 + 2700 would end 1 s after t1, so it is dropped
    times = get_starttimes(t0, t0 + 3599.0, 900.0, 0.0)
    assert times == pytest.approx([t0, t0 + 900.0, t0 + 1800.0], abs=1e-6)


@pytest.mark.parametrize("window", [60.0, 100.0, 900.0, 3.7])
@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.25, 0.5, 0.7, 0.9])
@pytest.mark.parametrize("duration", [3600.0, 5000.5])
def test_last_window_ends_inside_period_and_no_room_for_another(window, overlap, duration):
    t0 = 1.5e9
    times = get_starttimes(t0, t0 + duration, window, overlap)
    step = window * (1.0 - overlap)
    assert times[0] == t0
    assert times[-1] + window <= t0 + duration + 1e-6
    # the next window would not fit
    assert times[-1] + step + window > t0 + duration + 1e-6
    assert np.allclose(np.diff(times), step, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("window", "overlap", "k"), [(900.0, 0.25, 4), (10.0, 0.7, 3), (600.0, 0.0, 5), (7.5, 0.6, 11)])
def test_exact_fit_includes_last_window(window, overlap, k):
    # t1 - t0 == k * step + window: k + 1 windows, the last one ending exactly at t1
    step = window * (1.0 - overlap)
    t0 = 1000.0
    t1 = t0 + k * step + window
    times = get_starttimes(t0, t1, window, overlap)
    assert len(times) == k + 1
    assert times[-1] + window == pytest.approx(t1, abs=1e-6)


def test_starttimes_accept_utcdatetime():
    t0 = UTCDateTime(2020, 1, 1)
    t1 = UTCDateTime(2020, 1, 1, 1)
    times = Anxcor(window_length=900).get_starttimes(t0, t1, 0.25)
    base = t0.timestamp
    assert times == pytest.approx([base + 675.0 * k for k in range(5)], abs=1e-6)
    assert all(isinstance(t, float) for t in times)
    # mixed types give the same as timestamps
    assert get_starttimes(t0, t1.timestamp, 900.0, 0.25) == pytest.approx(times, abs=1e-6)


@pytest.mark.parametrize("overlap", [-0.1, 1.0, 1.5, float("nan")])
def test_starttimes_reject_bad_overlap(overlap):
    with pytest.raises(ConfigError, match="overlap"):
        get_starttimes(0.0, 3600.0, 900.0, overlap)
    with pytest.raises(AnxcorError):
        Anxcor(window_length=900).get_starttimes(0.0, 3600.0, overlap)


@pytest.mark.parametrize("overlap", ["0.5", None, True, [0.5]])
def test_starttimes_reject_non_numeric_overlap(overlap):
    with pytest.raises(ConfigError, match="overlap"):
        get_starttimes(0.0, 3600.0, 900.0, overlap)


@pytest.mark.parametrize(("t0", "t1", "name"), [("yesterday", 3600.0, "t0"), (0.0, None, "t1"), (0.0, float("inf"), "t1")])
def test_starttimes_reject_non_numeric_times(t0, t1, name):
    with pytest.raises(ConfigError, match=name):
        get_starttimes(t0, t1, 900.0, 0.0)


@pytest.mark.parametrize(("t0", "t1"), [(3600.0, 0.0), (100.0, 100.0)])
def test_starttimes_reject_reversed_period(t0, t1):
    with pytest.raises(ConfigError, match="t1"):
        Anxcor(window_length=900).get_starttimes(t0, t1, 0.0)


@pytest.mark.parametrize("window", [0.0, -900.0])
def test_starttimes_function_rejects_non_positive_window(window):
    with pytest.raises(ConfigError, match="window_length"):
        get_starttimes(0.0, 3600.0, window, 0.0)


def test_starttimes_reject_period_shorter_than_window():
    with pytest.raises(ConfigError) as info:
        Anxcor(window_length=900).get_starttimes(0.0, 899.0, 0.0)
    assert isinstance(info.value, AnxcorError)
    assert "900" in str(info.value)


# ---------------------------------------------------------------------- read spans


def test_plan_read_spans_groups_consecutive_windows():
    times = [0.0, 900.0, 1800.0, 2700.0, 3600.0, 4500.0]
    spans = plan_read_spans(times, 900.0, 3600.0)
    assert [s.windows for s in spans] == [(0, 1, 2, 3), (4, 5)]
    assert [(s.start, s.end) for s in spans] == [(0.0, 3600.0), (3600.0, 5400.0)]


def test_plan_read_spans_unsorted_input_and_overlap():
    # overlapping windows (step 450 s) given out of order: spans refer to input indices
    times = [1350.0, 0.0, 900.0, 450.0, 1800.0]
    spans = plan_read_spans(times, 900.0, 1800.0)
    # window ends: 0->900, 450->1350, 900->1800 fit in 1800 s from 0; 1350 -> 2250 does not
    assert [s.windows for s in spans] == [(1, 3, 2), (0, 4)]
    assert [(s.start, s.end) for s in spans] == [(0.0, 1800.0), (1350.0, 2700.0)]
    covered = sorted(i for s in spans for i in s.windows)
    assert covered == list(range(len(times)))


def test_plan_read_spans_short_read_span_reads_one_window_each():
    times = [0.0, 900.0, 1800.0]
    spans = plan_read_spans(times, 900.0, 10.0)
    assert [s.windows for s in spans] == [(0,), (1,), (2,)]
    assert all(s.end - s.start == 900.0 for s in spans)


# ---------------------------------------------------------------------- gridding


def _noise(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


def test_grid_on_grid_slice_is_exact():
    rate, start = 10.0, 1000.0
    data = _noise(1000)
    samples, got_rate, reason = grid_component([(start, 1 / rate, data)], start + 10.0, 50.0)
    assert reason is None
    assert got_rate == pytest.approx(rate)
    np.testing.assert_array_equal(samples, data[100:600])


def test_grid_subsample_late_start_is_linear_interpolation():
    rate, window_start, window_length = 10.0, 1000.0, 30.0
    delta = 1 / rate
    data = _noise(400, seed=1)
    piece_start = window_start + 0.3 * delta  # 0.3 samples late
    samples, _, reason = grid_component([(piece_start, delta, data)], window_start, window_length)
    assert reason is None
    n = round(window_length * rate)
    grid = window_start + delta * np.arange(n)
    expected = np.interp(grid, piece_start + delta * np.arange(data.size), data)
    assert samples.shape == (n,)
    np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-9)
    # grid point 5 (5.0 delta) lies 0.7 of the way from piece sample 4 (4.3) to 5 (5.3)
    np.testing.assert_allclose(samples[5], 0.3 * data[4] + 0.7 * data[5], atol=1e-9)


def test_grid_one_sample_short_still_covers_window():
    rate, window_start, window_length = 10.0, 500.0, 20.0
    delta = 1 / rate
    n = int(window_length * rate)
    data = _noise(n - 1, seed=2)  # ends one sample before the window's last grid point
    samples, _, reason = grid_component([(window_start, delta, data)], window_start, window_length)
    assert reason is None
    assert samples.shape == (n,)
    np.testing.assert_allclose(samples[:-1], data, atol=1e-12)
    assert samples[-1] == pytest.approx(data[-1])


def test_grid_slightly_off_delta_uses_window_grid():
    # delta rounded down to the millisecond (as the seed README's wrapper does) for 30 Hz data
    true_delta = 1 / 30.0
    delta = np.floor(true_delta * 1000) / 1000
    data = _noise(2000, seed=3)
    samples, rate, reason = grid_component([(0.0, delta, data)], 5.0, 40.0)
    assert reason is None
    assert rate == pytest.approx(1 / delta)
    n = round(40.0 / delta)
    assert samples.shape == (n,)
    grid = 5.0 + delta * np.arange(n)
    np.testing.assert_allclose(samples, np.interp(grid, delta * np.arange(data.size), data), atol=1e-9)


def test_grid_gap_of_ten_samples_is_missing():
    rate, start = 10.0, 0.0
    delta = 1 / rate
    data = _noise(1000, seed=4)
    pieces = [(start, delta, data[:500]), (start + 510 * delta, delta, data[510:])]
    samples, _, reason = grid_component(pieces, 10.0, 60.0)
    assert samples is None
    assert "gap" in reason
    # the same pieces are fine for a window that ends before the gap
    samples, _, reason = grid_component(pieces, 0.0, 45.0)
    assert reason is None
    np.testing.assert_array_equal(samples, data[:450])


def test_grid_two_pieces_touching_are_joined():
    delta = 0.1
    data = _noise(1000, seed=5)
    pieces = [(0.0, delta, data[:500]), (500 * delta, delta, data[500:])]
    samples, _, reason = grid_component(pieces, 10.0, 60.0)
    assert reason is None
    np.testing.assert_allclose(samples, data[100:700], atol=1e-9)


def test_grid_nan_is_missing():
    data = _noise(1000, seed=6)
    data[300] = np.nan
    samples, _, reason = grid_component([(0.0, 0.1, data)], 10.0, 50.0)
    assert samples is None
    assert "non-finite" in reason


def test_grid_constant_is_missing():
    samples, _, reason = grid_component([(0.0, 0.1, np.full(1000, 3.0))], 10.0, 50.0)
    assert samples is None
    assert "constant" in reason


def test_grid_no_pieces_and_no_overlap():
    assert grid_component([], 0.0, 10.0)[0] is None
    samples, _, reason = grid_component([(0.0, 0.1, _noise(100))], 1000.0, 10.0)
    assert samples is None
    assert reason


@pytest.mark.parametrize(
    ("channel", "component"),
    [("HHZ", "Z"), ("BH1", "N"), ("HH2", "E"), ("HHX", None), ("BHN", "N"), ("EHE", "E"), ("hhz", "Z"), ("", None)],
)
def test_component_of(channel, component):
    assert component_of(channel) == component


# ---------------------------------------------------------------------- reading


class _Recorder:
    def __init__(self, result):
        self.calls = []
        self.result = result

    def get_waveforms(self, **kwargs):
        self.calls.append(kwargs)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_read_station_span_records_database_exception():
    db = _Recorder(RuntimeError("disk on fire"))
    record = read_station_span(db, "XX.S01", 100.0, 200.0, 1.0)
    assert record.station == "XX.S01"
    assert "RuntimeError" in record.error
    assert "disk on fire" in record.error
    assert record.pieces == {}
    assert db.calls == [
        {"network": "XX", "station": "S01", "starttime": UTCDateTime(99.0), "endtime": UTCDateTime(201.0)}
    ]
    assert all(isinstance(v, UTCDateTime) for k, v in db.calls[0].items() if k.endswith("time"))


def test_read_station_span_records_wrong_return_type():
    record = read_station_span(_Recorder([1, 2, 3]), "XX.S01", 0.0, 10.0, 0.0)
    assert "list" in record.error
    assert record.pieces == {}


def test_read_station_span_maps_channels_to_components():
    data = _noise(100)
    traces = [
        Trace(data, header={"network": "XX", "station": "S01", "channel": ch, "sampling_rate": 10.0, "starttime": UTCDateTime(5)})
        for ch in ("HH1", "HH2", "HHZ", "HHX")
    ]
    record = read_station_span(_Recorder(Stream(traces)), "XX.S01", 0.0, 10.0, 0.0)
    assert record.error is None
    assert sorted(record.pieces) == ["E", "N", "Z"]
    start, delta, samples = record.pieces["N"][0]
    assert start == 5.0
    assert delta == pytest.approx(0.1)
    np.testing.assert_array_equal(samples, data)
