"""Data handling: gaps skipped or filled, overlaps merged, location codes kept; all recorded."""

import json

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase
from anxcor.errors import ConfigError
from anxcor.windows import grid_component

START = UTCDateTime(2021, 1, 1)
RATE = 10.0


def _trace(station, data, offset_s=0.0, channel="HHZ"):
    return Trace(np.asarray(data, float), header=dict(network="XX", station=station, channel=channel, sampling_rate=RATE, starttime=START + offset_s))


def _run(stream, **options):
    anx = Anxcor(window_length=300.0, **options)
    for task in ("detrend", "taper", "bandpass", "temporal_norm", "whiten"):
        anx.set_task(task, None)
    anx.set_task_kwargs("resample", dict(target_rate=RATE))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=10.0))
    anx.add_dataset(InMemoryDatabase(stream), "x")
    return anx.process([START.timestamp])


@pytest.fixture
def signals():
    rng = np.random.default_rng(40)
    return rng.standard_normal(3000), rng.standard_normal(3000)


def test_grid_fill_interpolates_a_short_gap_and_says_so():
    data = np.arange(1000, dtype=float)
    pieces = [(0.0, 0.1, data[:400]), (50.0, 0.1, data[500:])]  # samples 400..499 missing
    skipped, _, reason = grid_component(pieces, 0.0, 100.0)
    assert skipped is None and "gap: 100 of 1000" in reason
    filled, _, repair = grid_component(pieces, 0.0, 100.0, fill="interpolate", max_fill_fraction=0.2)
    np.testing.assert_allclose(filled, data)  # a straight line is restored exactly
    assert repair == "filled a gap of 100 of 1000 samples (interpolate)"
    too_long, _, reason = grid_component(pieces, 0.0, 100.0, fill="interpolate", max_fill_fraction=0.05)
    assert too_long is None and "gap" in reason
    mean_filled, _, _ = grid_component(pieces, 0.0, 100.0, fill="mean", max_fill_fraction=0.2)
    np.testing.assert_allclose(mean_filled[400:500], np.concatenate([data[:400], data[500:]]).mean())


def test_gap_is_skipped_by_default_and_filled_on_request(signals):
    a, b = signals
    gappy = Stream([_trace("A", a), _trace("B", b[:1000]), _trace("B", b[1050:], offset_s=105.0)])
    skipped = _run(gappy.copy())
    assert int(skipped["n_windows"].sel(station_pair="XX.A:XX.B", channel="Z:Z")) == 0
    assert "gap: 50 of 3000" in skipped.attrs["failures"]
    filled = _run(gappy.copy(), gap_fill="interpolate")
    assert int(filled["n_windows"].sel(station_pair="XX.A:XX.B", channel="Z:Z")) == 1
    repairs = json.loads(filled.attrs["repairs"])
    assert [(r["station"], r["component"]) for r in repairs] == [("XX.B", "Z")]
    assert "filled a gap of 50 of 3000 samples" in repairs[0]["what"]


def test_overlapping_and_duplicated_traces_are_merged_and_recorded(signals):
    a, b = signals
    clean = _run(Stream([_trace("A", a), _trace("B", b)]))
    messy = Stream([
        _trace("A", a),
        _trace("B", b[:2000]),
        _trace("B", b[1800:], offset_s=180.0),  # 200 samples overlap the first piece
        _trace("B", b[:2000]),  # a duplicate
    ])
    merged = _run(messy)
    np.testing.assert_allclose(merged["x"].values, clean["x"].values, rtol=1e-12, atol=1e-12)
    what = sorted(r["what"] for r in json.loads(merged.attrs["repairs"]))
    assert what == ["dropped a duplicated trace of 2000 samples", "merged overlapping traces: dropped 200 overlapping samples"]
    assert json.loads(clean.attrs["repairs"]) == []


def test_gap_options_are_validated():
    with pytest.raises(ConfigError, match="gap_fill"):
        Anxcor(300.0, gap_fill="zeros")
    with pytest.raises(ConfigError, match="max_gap_fraction"):
        Anxcor(300.0, max_gap_fraction=1.5)


def test_location_codes_are_kept_in_the_result_and_extra_ones_recorded(signals):
    a, b = signals
    def located(station, data, location, channel="HHZ"):
        tr = _trace(station, data, channel=channel)
        tr.stats.location = location
        return tr
    stream = Stream([located("A", a, "00"), located("B", b, "10"), located("B", a, "20")])
    result = _run(stream)
    assert json.loads(result.attrs["channels"]) == {"x": {"XX.A": ["XX.A.00.HHZ"], "XX.B": ["XX.B.10.HHZ"]}}
    ignored = [r["what"] for r in json.loads(result.attrs["repairs"])]
    assert ignored == ["ignored XX.B.20.HHZ: component Z read from XX.B.10.HHZ"]
    # the correlation used B's location 10 record (b), not 20 (a): A:B is not an autocorrelation of a
    zz = result["x"].sel(station_pair="XX.A:XX.B", channel="Z:Z").values
    auto = result["x"].sel(station_pair="XX.A:XX.A", channel="Z:Z").values
    assert np.abs(zz).max() < 0.5 * np.abs(auto).max()
