"""Bad input: a clear error or a recorded skip, and nothing else lost (issue 5).

Every test builds a clean 3-station ZNE run (``XX.A``, ``XX.B``, ``XX.C``; 3 windows of
300 s at 10 Hz) and a run in which one station (``XX.C``) or the database is broken, and
asserts one of two outcomes:

(a) a clear :class:`~anxcor.errors.AnxcorError` subclass whose message names the problem;
(b) the run completes, every pair *not* involving the broken station is bit-identical
    (``np.testing.assert_array_equal``) to the clean run with the same station list, the
    broken station's skipped windows are counted out of ``n_windows`` (exactly, per channel
    pair), and ``json.loads(result.attrs['failures'])`` lists exactly the skipped
    station-windows with a reason containing a specific phrase.

"Clean run" means the same station list with the broken station's data made good: a run of
only the good stations differs in the last bits (the batched matrix product behind the
linear stack sums in another order when the number of stations changes; see
``test_valid_pairs_match_a_run_of_only_the_good_stations_to_rounding``).

| Bad input | Outcome asserted |
|---|---|
| empty database (no stations) | `DataError` "lists no stations" |
| `get_stations` returns garbage (no dot, not str, not a list, None) | `DataError` "'NET.STA' strings" |
| `get_stations` raises | `DatabaseError` naming `get_stations()` and the exception |
| `max_tau_shift` >= window | `ConfigError` mentioning `max_tau_shift`, before any read |
| station stops recording 10 s before window 2 | window 1 Z,N,E skipped "gap: 100 of 3000 samples missing", window 2 Z,N,E "no data in window" |
| same, window 2 in its own read span | window 2 skipped as a whole (component `*`), "no data" |
| station stops exactly at the start of window 2 | window 2 Z,N,E skipped, "no data in window" (the last sample within the 1.5-sample edge tolerance does not count as data) |
| station with no data in a middle window (stops, resumes) | window 1 "no data in window", windows 0 and 2 "gap: 300 of 3000 samples missing" |
| gap inside a window (one or all components) | skip those component-windows, "gap: 50 of 3000 samples missing" |
| gap with `gap_fill='interpolate'` | used, recorded in `repairs` "filled a gap of 50 of 3000 samples" |
| NaN / +inf / -inf sample | skip that component-window, "non-finite samples (NaN or inf)" |
| all-zero traces | skip every component-window, "constant trace (dead channel or all zeros)" |
| station at 7.3 Hz (others 10 Hz) | resampled and used: no failure, full `n_windows`, a 2.0 s delay comes out at +2.0 s (within one sample) |
| one component at another rate (N at 7.3 Hz) | used, no failure |
| station at 0.02 Hz (Nyquist = bandpass freqmin) | skip every component-window, reason names "Nyquist" |
| missing channels (Z only) | channel pairs needing C's N/E counted 0 (NaN), Z used (C's Z:Z equal to rounding: preprocessed alone); `failures` holds one record per absent component for the run, "component absent from the data in all 3 windows" |
| a component that stops mid-run | one record per affected window ("gap: ...", then "no data in window"); a component missing from a whole read span gets "component absent from the data" per window |
| exact duplicate trace | `repairs` "dropped a duplicated trace of 9000 samples"; values identical |
| overlapping traces (200 samples, remainder starting on a whole second) | `repairs` "merged overlapping traces: dropped 200 overlapping samples"; values identical |
| trace split in two contiguous pieces at a whole second | values identical, nothing recorded |
| trace split in two (or overlapping) with the second piece off a whole second | values identical: pieces are placed in sample positions relative to the window (fixed: epoch-second rounding used to blend samples) |
| a trace fully inside an earlier one, at a non-whole-second offset | recorded as "dropped a duplicated trace" (fixed: the overlap test now allows 1e-3 sample of rounding) |
| clock-shifted start (0.37 samples late) | put on the grid by interpolation; no failure; Z:Z peak with an identical-signal station at lag 0 (within one sample) |
| `get_waveforms` raises | skip every window of C, component `*`, "get_waveforms raised RuntimeError: disk on fire" |
| `get_waveforms` returns a non-Stream | skip, "get_waveforms returned NoneType, expected an obspy Stream" |
| WaveBank folder with a corrupt `.mseed` beside good files | the corrupt file is left out of the index (obsplus warns), the good data of every station is used: result identical to the folder without it |
| `obspy.read` database over the same folder | `get_waveforms` raises for C (obspy cannot read it): every window of C skipped, "get_waveforms raised" |
| windows outside the data | everything skipped: all NaN, `n_windows` 0, every station-window "no data", a warning "no window had usable data" |
| window longer than the data (all stations) | all NaN, `n_windows` 0, "gap: 1000 of 3000 samples missing", warning logged |
| window longer than the data (only C, 200 s) | C skipped: window 0 "gap: 1000 of 3000 samples missing", windows 1-2 "no data in window"; other pairs identical |
| `get_stations` lists a station without data | its windows skipped, "no data"; other pairs identical |
| data for a station not listed | ignored: no pair with it, other pairs identical |
| non-ASCII station code `XX.ÅS1` | works end to end: pairs labelled `XX.A:XX.ÅS1`..., values identical to the same data under code `C`, labels survive `xarray_to_obspy` |
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import obspy
import pytest
from obspy import Stream, Trace, UTCDateTime

from anxcor.core import Anxcor, AnxcorDatabase
from anxcor.database import InMemoryDatabase, WaveBankDatabase
from anxcor.errors import AnxcorError, ConfigError, DatabaseError, DataError

T0 = UTCDateTime(2022, 6, 1)
RATE = 10.0
WINDOW = 300.0
N_WINDOWS = 3
N_SAMPLES = int(WINDOW * RATE)
STATIONS = ("A", "B", "C")
BAD = "XX.C"
CHANNELS = [f"{a}:{b}" for a in "ZNE" for b in "ZNE"]


# ---------------------------------------------------------------------- building data


def _header(station, component, rate=RATE, start=T0, channel=None):
    return dict(network="XX", station=station, channel=channel or f"BH{component}", sampling_rate=rate, starttime=start)


def _noise_stream(stations=STATIONS, seconds=WINDOW * N_WINDOWS, seed=0):
    """White noise, one seeded series per station and component (same data whatever the list)."""
    traces = []
    for station in stations:
        for k, component in enumerate("ZNE"):
            rng = np.random.default_rng([seed, ord(station[0]), k])
            traces.append(Trace(rng.standard_normal(int(seconds * RATE)), header=_header(station, component)))
    return Stream(traces)


def _replace(stream, station, *traces):
    """The stream with ``station``'s traces replaced by ``traces``."""
    kept = [tr for tr in stream if tr.stats.station != station]
    return Stream(kept + list(traces))


def _cut(trace, start_s, end_s=None):
    """Samples of ``trace`` from ``start_s`` (included) to ``end_s`` (excluded), seconds after T0."""
    end = trace.stats.endtime if end_s is None else T0 + end_s - 0.5 / RATE
    return trace.slice(T0 + start_s, end, nearest_sample=False)


def _c_traces(stream, component=None):
    return [tr for tr in stream if tr.stats.station == "C" and (component is None or tr.stats.channel[-1] == component)]


def _smooth_signal(times, seed):
    """A band-limited (0.05-1.5 Hz) random signal, evaluated exactly at any times (s)."""
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.05, 1.5, 120)
    phases = rng.uniform(0, 2 * np.pi, 120)
    return np.sin(2 * np.pi * freqs[:, None] * np.asarray(times)[None, :] + phases[:, None]).sum(axis=0)


# ---------------------------------------------------------------------- running


def _anxcor(**options):
    anx = Anxcor(window_length=WINDOW, **options)
    anx.set_task_kwargs("resample", dict(target_rate=RATE))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=10.0))
    return anx


def _times(n=N_WINDOWS, offset=0.0):
    return [T0.timestamp + offset + WINDOW * k for k in range(n)]


def _run(database, times=None, **options):
    anx = _anxcor(**options)
    anx.add_dataset(database, "x")
    return anx.process(times or _times())


def _failures(result):
    return json.loads(result.attrs["failures"])


def _repairs(result):
    return json.loads(result.attrs["repairs"])


def _iso(window):
    return str(UTCDateTime(_times()[window]))


def _pairs_with(result, station, involved=True):
    return [p for p in result["station_pair"].values if (station in p.split(":")) == involved]


def assert_skips(bad, clean, skipped, reason, *, station=BAD):
    """Outcome (b): the run completed, only ``station`` lost exactly the ``skipped`` windows.

    ``skipped`` maps a window index to the components skipped there (``'*'``: the whole
    station-window, one failure with component ``'*'``; else e.g. ``'ZNE'``, one failure per
    component); ``reason`` is a phrase every one of those failures must contain.
    """
    assert list(bad["station_pair"].values) == list(clean["station_pair"].values)
    for pair in _pairs_with(clean, station, involved=False):
        np.testing.assert_array_equal(bad["x"].sel(station_pair=pair).values, clean["x"].sel(station_pair=pair).values)
        np.testing.assert_array_equal(
            bad["n_windows"].sel(station_pair=pair).values, clean["n_windows"].sel(station_pair=pair).values
        )
    lost_components = {w: set("ZNE") if comps == "*" else set(comps) for w, comps in skipped.items()}
    for pair in _pairs_with(clean, station):
        src, rec = pair.split(":")
        for channel in CHANNELS:
            a, b = channel.split(":")
            needed = ({a} if src == station else set()) | ({b} if rec == station else set())
            lost = sum(1 for comps in lost_components.values() if needed & comps)
            got = int(bad["n_windows"].sel(station_pair=pair, channel=channel))
            assert got == int(clean["n_windows"].sel(station_pair=pair, channel=channel)) - lost, (pair, channel, got)
            if got == 0:
                assert np.isnan(bad["x"].sel(station_pair=pair, channel=channel).values).all()
    failures = _failures(bad)
    expected = {(station, _iso(w), c) for w, comps in skipped.items() for c in (["*"] if comps == "*" else comps)}
    assert {(f["station"], f["window_start"], f["component"]) for f in failures} == expected, failures
    assert len(failures) == len(expected), failures
    for f in failures:
        assert f["dataset"] == "x"
        assert reason in f["reason"], f


@pytest.fixture(scope="module")
def clean():
    """The clean 3-station run every skip test compares with."""
    result = _run(InMemoryDatabase(_noise_stream()))
    assert _failures(result) == [] and _repairs(result) == []
    assert (result["n_windows"].values == N_WINDOWS).all()
    return result


# ---------------------------------------------------------------------- databases


class _Wrapped(AnxcorDatabase):
    """An in-memory database whose ``get_stations`` / ``get_waveforms`` can be broken."""

    def __init__(self, stream, stations=None, waveforms_for=None):
        super().__init__()
        self.inner = InMemoryDatabase(stream)
        self.stations = stations
        self.waveforms_for = waveforms_for or {}

    def get_stations(self):
        if callable(self.stations):
            return self.stations()
        return self.inner.get_stations() if self.stations is None else self.stations

    def get_waveforms(self, network=None, station=None, starttime=None, endtime=None, **kwargs):
        special = self.waveforms_for.get(f"{network}.{station}")
        if special is not None:
            return special()
        return self.inner.get_waveforms(network=network, station=station, starttime=starttime, endtime=endtime)


class _ObspyReadDatabase(AnxcorDatabase):
    """What a user writes first: ``obspy.read`` over every file of a folder named after the station."""

    def __init__(self, folder, stations):
        super().__init__()
        self.folder = str(folder)
        self.stations = stations

    def get_stations(self):
        return list(self.stations)

    def get_waveforms(self, network=None, station=None, starttime=None, endtime=None, **kwargs):
        stream = Stream()
        for path in sorted(Path(self.folder).glob(f"{network}.{station}.*.mseed")):
            stream += obspy.read(str(path), starttime=starttime, endtime=endtime)
        return stream


def _raise(exc):
    def call():
        raise exc

    return call


# ====================================================================== clear errors


def test_empty_database_is_a_data_error():
    anx = _anxcor()
    anx.add_dataset(InMemoryDatabase(Stream()), "x")
    with pytest.raises(DataError, match="lists no stations"):
        anx.process(_times())


@pytest.mark.parametrize(
    "garbage",
    [["XXA", "XXB"], [1, 2], "XX.A", None, [None], [b"XX.A"], {"XX.A": 1}],
    ids=["no-dot", "ints", "a-string", "None", "list-of-None", "bytes", "dict"],
)
def test_get_stations_returning_garbage_is_a_data_error(garbage):
    anx = _anxcor()
    anx.add_dataset(_Wrapped(_noise_stream(), stations=lambda: garbage), "x")
    with pytest.raises(DataError, match=r"get_stations\(\) must return a list of 'NET.STA' strings"):
        anx.process(_times())


def test_get_stations_raising_is_a_database_error_naming_the_method():
    anx = _anxcor()
    anx.add_dataset(_Wrapped(_noise_stream(), stations=_raise(OSError("index locked"))), "x")
    with pytest.raises(DatabaseError, match=r"_Wrapped\.get_stations\(\) raised OSError: index locked"):
        anx.process(_times())


@pytest.mark.parametrize("max_tau_shift", [WINDOW, WINDOW + 0.1, 10 * WINDOW])
def test_max_tau_shift_not_shorter_than_the_window_is_a_config_error(max_tau_shift):
    reads = []
    anx = _anxcor()
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=max_tau_shift))
    anx.add_dataset(_Wrapped(_noise_stream(), waveforms_for={"XX.A": lambda: reads.append(1)}), "x")
    with pytest.raises(ConfigError, match=r"max_tau_shift \(.*\) must be shorter than window_length"):
        anx.process(_times())
    assert reads == []  # refused before any data is read


def test_errors_are_anxcor_errors():
    assert issubclass(DataError, AnxcorError) and issubclass(DatabaseError, AnxcorError)
    assert issubclass(ConfigError, AnxcorError)


# ====================================================================== recorded skips: missing data


@pytest.mark.parametrize(
    ("stop_s", "read_span", "expected"),
    [
        # recording stops 10 s before window 2: window 1 has a gap, window 2 nothing
        (590.0, 3600.0, {1: ("ZNE", "gap: 100 of 3000 samples missing"), 2: ("ZNE", "no data in window")}),
        # ... and window 2 read on its own: the database returns an empty stream
        (590.0, WINDOW, {1: ("ZNE", "gap: 100 of 3000 samples missing"), 2: ("*", "no data")}),
        # recording stops exactly at the start of window 2 (its last sample 0.1 s before)
        (600.0, 3600.0, {2: ("ZNE", "no data in window")}),
    ],
    ids=["stops-early", "stops-early-read-per-window", "stops-at-window-edge"],
)
def test_station_that_stops_recording_is_skipped_where_it_has_no_data(stop_s, read_span, expected):
    stream = _noise_stream()
    stopped = [_cut(tr, 0.0, stop_s) for tr in _c_traces(stream)]
    bad = _run(InMemoryDatabase(_replace(stream, "C", *stopped)), read_span=read_span)
    clean = _run(InMemoryDatabase(stream), read_span=read_span)
    assert_skips(bad, clean, {w: comps for w, (comps, _) in expected.items()}, "")
    for f in _failures(bad):
        assert f["reason"] == expected[_times().index(UTCDateTime(f["window_start"]).timestamp)][1], f


def test_station_without_data_in_a_middle_window_is_skipped_for_that_window(clean):
    stream = _noise_stream()
    pieces = []
    for tr in _c_traces(stream):
        pieces += [_cut(tr, 0.0, WINDOW - 30.0), _cut(tr, 2 * WINDOW + 30.0)]
    bad = _run(InMemoryDatabase(_replace(stream, "C", *pieces)))
    assert_skips(bad, clean, {0: "ZNE", 1: "ZNE", 2: "ZNE"}, "")
    reasons = {(f["window_start"], f["component"]): f["reason"] for f in _failures(bad)}
    assert reasons[(_iso(1), "Z")] == "no data in window"  # nothing within 30 s of the window
    assert reasons[(_iso(0), "Z")] == "gap: 300 of 3000 samples missing"
    assert reasons[(_iso(2), "Z")] == "gap: 300 of 3000 samples missing"


@pytest.mark.parametrize("components", ["Z", "ZNE"])
def test_gap_skips_only_the_component_windows_it_touches(clean, components):
    stream = _noise_stream()
    pieces = []
    for tr in _c_traces(stream):
        if tr.stats.channel[-1] in components:  # 50 samples missing at 400 s (window 1)
            pieces += [_cut(tr, 0.0, 400.0), _cut(tr, 405.0)]
        else:
            pieces.append(tr)
    bad = _run(InMemoryDatabase(_replace(stream, "C", *pieces)))
    assert_skips(bad, clean, {1: components}, "gap: 50 of 3000 samples missing")


def test_gap_filled_on_request_is_used_and_recorded():
    stream = _noise_stream()
    pieces = [_cut(tr, 0.0, 400.0) for tr in _c_traces(stream, "Z")]
    pieces += [_cut(tr, 405.0) for tr in _c_traces(stream, "Z")]
    pieces += _c_traces(stream, "N") + _c_traces(stream, "E")
    bad = _run(InMemoryDatabase(_replace(stream, "C", *pieces)), gap_fill="interpolate")
    clean = _run(InMemoryDatabase(stream), gap_fill="interpolate")
    assert_skips(bad, clean, {}, "")
    assert [(r["station"], r["component"], r["time"], r["what"]) for r in _repairs(bad)] == [
        (BAD, "Z", _iso(1), "filled a gap of 50 of 3000 samples (interpolate)")
    ]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_sample_skips_that_component_window(clean, value):
    stream = _noise_stream()
    _c_traces(stream, "N")[0].data[int(1.5 * N_SAMPLES)] = value  # window 1
    bad = _run(InMemoryDatabase(stream))
    assert_skips(bad, clean, {1: "N"}, "non-finite samples (NaN or inf)")


def test_all_zero_traces_are_skipped_as_dead_channels(clean):
    stream = _noise_stream()
    for tr in _c_traces(stream):
        tr.data[:] = 0.0
    bad = _run(InMemoryDatabase(stream))
    assert_skips(bad, clean, dict.fromkeys(range(N_WINDOWS), "ZNE"), "constant trace (dead channel or all zeros)")


def test_missing_channels_are_counted_out(clean):
    stream = _noise_stream()
    bad = _run(InMemoryDatabase(_replace(stream, "C", *_c_traces(stream, "Z"))))
    for pair in _pairs_with(clean, BAD, involved=False):
        np.testing.assert_array_equal(bad["x"].sel(station_pair=pair).values, clean["x"].sel(station_pair=pair).values)
    # C's Z is preprocessed alone instead of stacked with N and E: equal to rounding only
    zz = clean["x"].sel(station_pair="XX.A:XX.C", channel="Z:Z").values
    np.testing.assert_allclose(
        bad["x"].sel(station_pair="XX.A:XX.C", channel="Z:Z").values, zz, rtol=0, atol=1e-12 * np.abs(zz).max()
    )
    counts = bad["n_windows"].sel(station_pair="XX.A:XX.C").to_series().to_dict()
    assert counts == {c: (N_WINDOWS if c.endswith("Z") else 0) for c in CHANNELS}
    assert np.isnan(bad["x"].sel(station_pair="XX.A:XX.C", channel="Z:N").values).all()
    assert json.loads(bad.attrs["channels"])["x"][BAD] == ["XX.C..BHZ"]


def test_station_listed_but_without_any_data_is_recorded_as_no_data():
    stream = _noise_stream(("A", "B", "C", "D"))
    no_d = Stream([tr for tr in stream if tr.stats.station != "D"])
    listed = ["XX.A", "XX.B", "XX.C", "XX.D"]
    bad = _run(_Wrapped(no_d, stations=listed))
    clean = _run(InMemoryDatabase(stream))
    assert_skips(bad, clean, dict.fromkeys(range(N_WINDOWS), "*"), "no data", station="XX.D")


def test_data_for_a_station_not_listed_is_ignored(clean):
    stream = _noise_stream(("A", "B", "C", "E"))
    result = _run(_Wrapped(stream, stations=["XX.A", "XX.B", "XX.C"]))
    assert not any("XX.E" in p for p in result["station_pair"].values)
    assert_skips(result, clean, {}, "")
    for pair in clean["station_pair"].values:  # C is fine here too
        np.testing.assert_array_equal(result["x"].sel(station_pair=pair).values, clean["x"].sel(station_pair=pair).values)


# ====================================================================== recorded skips: broken database


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (_raise(RuntimeError("disk on fire")), "get_waveforms raised RuntimeError: disk on fire"),
        (lambda: None, "get_waveforms returned NoneType, expected an obspy Stream"),
        (lambda: [1, 2, 3], "get_waveforms returned list, expected an obspy Stream"),
    ],
    ids=["raises", "returns-None", "returns-list"],
)
def test_get_waveforms_failing_for_one_station_skips_only_it(clean, behaviour, reason):
    bad = _run(_Wrapped(_noise_stream(), waveforms_for={BAD: behaviour}))
    assert_skips(bad, clean, dict.fromkeys(range(N_WINDOWS), "*"), reason)


@pytest.fixture(scope="module")
def folder_with_a_corrupt_file(tmp_path_factory):
    """One good miniSEED per station plus, for C, a '.mseed' file of garbage bytes."""
    folder = tmp_path_factory.mktemp("corrupt")
    stream = _noise_stream()
    for station in STATIONS:
        part = Stream([tr.copy() for tr in stream if tr.stats.station == station])
        for tr in part:
            tr.data = tr.data.astype(np.float32)
        part.write(str(folder / f"XX.{station}.good.mseed"), format="MSEED")
    (folder / "XX.C.corrupt.mseed").write_bytes(b"this is not miniSEED \x00\xff\x13" * 400)
    return folder


def _float32_clean_run():
    stream = _noise_stream()
    for tr in stream:
        tr.data = tr.data.astype(np.float32).astype(np.float64)
    return _run(InMemoryDatabase(stream))


def test_wavebank_with_a_corrupt_file_uses_every_good_file(folder_with_a_corrupt_file):
    reference = _float32_clean_run()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libmseed complains about the garbage, without naming the file
        db = WaveBankDatabase(str(folder_with_a_corrupt_file))
        indexed = sorted(set(db.bank.read_index()["path"].astype(str)))
    assert [Path(p).name for p in indexed] == ["XX.A.good.mseed", "XX.B.good.mseed", "XX.C.good.mseed"]
    assert db.get_stations() == ["XX.A", "XX.B", "XX.C"]
    result = _run(db)
    assert _failures(result) == []
    assert (result["n_windows"].values == N_WINDOWS).all()
    np.testing.assert_array_equal(result["x"].values, reference["x"].values)


def test_obspy_read_database_with_a_corrupt_file_skips_that_station(folder_with_a_corrupt_file):
    reference = _float32_clean_run()
    bad = _run(_ObspyReadDatabase(folder_with_a_corrupt_file, ["XX.A", "XX.B", "XX.C"]))
    assert_skips(bad, reference, dict.fromkeys(range(N_WINDOWS), "*"), "get_waveforms raised TypeError: Unknown format for file")


# ====================================================================== windows vs data


def test_windows_outside_the_data_give_an_all_nan_result_and_a_warning(caplog):
    times = _times(offset=86400.0)
    with caplog.at_level(logging.WARNING, logger="anxcor"):
        result = _run(InMemoryDatabase(_noise_stream()), times=times)
    assert np.isnan(result["x"].values).all()
    assert (result["n_windows"].values == 0).all()
    assert result.attrs["n_windows_requested"] == N_WINDOWS
    failures = _failures(result)
    expected = {(f"XX.{s}", str(UTCDateTime(t)), "*") for s in STATIONS for t in times}
    assert {(f["station"], f["window_start"], f["component"]) for f in failures} == expected
    assert all(f["reason"] == "no data" for f in failures)
    warnings_logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no window had usable data for any pair" in m and "'no data'" in m for m in warnings_logged), warnings_logged


def test_window_longer_than_the_data_skips_everything_with_a_warning(caplog):
    short = _noise_stream(seconds=200.0)
    with caplog.at_level(logging.WARNING, logger="anxcor"):
        result = _run(InMemoryDatabase(short), times=_times(1), gap_fill="interpolate")
    assert np.isnan(result["x"].values).all()
    assert (result["n_windows"].values == 0).all()
    failures = _failures(result)
    assert {(f["station"], f["component"]) for f in failures} == {(f"XX.{s}", c) for s in STATIONS for c in "ZNE"}
    assert all(f["reason"] == "gap: 1000 of 3000 samples missing" for f in failures)
    assert any("no window had usable data" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_window_longer_than_one_stations_data_skips_only_it(clean):
    stream = _noise_stream()
    short = [_cut(tr, 0.0, 200.0) for tr in _c_traces(stream)]
    bad = _run(InMemoryDatabase(_replace(stream, "C", *short)))
    assert_skips(bad, clean, dict.fromkeys(range(N_WINDOWS), "ZNE"), "")
    reasons = {(f["window_start"], f["reason"]) for f in _failures(bad)}
    assert reasons == {
        (_iso(0), "gap: 1000 of 3000 samples missing"),
        (_iso(1), "no data in window"),
        (_iso(2), "no data in window"),
    }


# ====================================================================== rates and timing


def _shifted_pair_stream(delay_c, rate_c=RATE, start_offset_c=0.0):
    """A and C record the same smooth signal, C ``delay_c`` s later; B is independent noise."""
    seconds = WINDOW * N_WINDOWS
    traces = []
    for k, component in enumerate("ZNE"):
        t_a = np.arange(int(seconds * RATE)) / RATE
        traces.append(Trace(_smooth_signal(t_a, k), header=_header("A", component)))
        t_c = start_offset_c + np.arange(int(round((seconds - start_offset_c) * rate_c))) / rate_c
        start = T0 + start_offset_c
        traces.append(Trace(_smooth_signal(t_c - delay_c, k), header=_header("C", component, rate=rate_c, start=start)))
    return _replace(Stream(traces), "B", *_noise_stream(("B",)))


def _peak_lag(result, pair="XX.A:XX.C", channel="Z:Z"):
    trace = result["x"].sel(station_pair=pair, channel=channel)
    return float(trace["time"][int(np.argmax(trace.values))])


def test_station_at_another_rate_is_resampled_and_keeps_its_timing():
    stream = _shifted_pair_stream(delay_c=2.0, rate_c=7.3)
    assert _c_traces(stream)[0].stats.sampling_rate == 7.3
    result = _run(InMemoryDatabase(stream))
    assert _failures(result) == []
    assert (result["n_windows"].values == N_WINDOWS).all()
    assert result.attrs["sampling_rate"] == RATE
    assert abs(_peak_lag(result) - 2.0) <= 1.0 / RATE
    same_rate = _run(InMemoryDatabase(_shifted_pair_stream(delay_c=2.0)))
    assert abs(_peak_lag(same_rate) - 2.0) <= 1.0 / RATE
    for pair in ("XX.A:XX.A", "XX.A:XX.B", "XX.B:XX.B"):  # pairs without C do not change
        np.testing.assert_array_equal(result["x"].sel(station_pair=pair).values, same_rate["x"].sel(station_pair=pair).values)


def test_one_component_at_another_rate_is_used(clean):
    stream = _noise_stream()
    north = _c_traces(stream, "N")[0]
    seven = Trace(np.random.default_rng(3).standard_normal(int(WINDOW * N_WINDOWS * 7.3)), header=_header("C", "N", rate=7.3))
    bad = _run(InMemoryDatabase(_replace(stream, "C", *[tr for tr in _c_traces(stream) if tr is not north], seven)))
    assert_skips(bad, clean, {}, "")


def test_station_at_a_rate_below_the_band_is_skipped_naming_nyquist(clean):
    stream = _noise_stream()
    slow = [Trace(np.random.default_rng(k).standard_normal(int(WINDOW * N_WINDOWS * 0.02)), header=_header("C", c, rate=0.02)) for k, c in enumerate("ZNE")]
    bad = _run(InMemoryDatabase(_replace(stream, "C", *slow)))
    assert_skips(bad, clean, dict.fromkeys(range(N_WINDOWS), "ZNE"), "Nyquist")


def test_clock_shifted_start_is_put_on_the_grid():
    offset = 0.37 / RATE  # C's samples are 0.37 samples late with respect to the window grid
    result = _run(InMemoryDatabase(_shifted_pair_stream(delay_c=0.0, start_offset_c=offset - 1.0)), times=_times(2))
    assert _failures(result) == [] and _repairs(result) == []
    assert (result["n_windows"].values == 2).all()
    assert abs(_peak_lag(result)) <= 1.0 / RATE
    for channel in ("N:N", "E:E"):
        assert abs(_peak_lag(result, channel=channel)) <= 1.0 / RATE


# ====================================================================== duplicates and overlaps


def test_exact_duplicate_trace_is_dropped_recorded_and_changes_nothing(clean):
    stream = _noise_stream()
    stream += _c_traces(stream, "Z")[0].copy()
    bad = _run(InMemoryDatabase(stream))
    assert_skips(bad, clean, {}, "")
    np.testing.assert_array_equal(bad["x"].values, clean["x"].values)
    assert [(r["station"], r["component"], r["what"]) for r in _repairs(bad)] == [
        (BAD, "Z", "dropped a duplicated trace of 9000 samples")
    ]


def _overlapping(stream, first_samples, second_start_sample):
    """C's Z as two traces: samples [0, first) and [second_start, end)."""
    z = _c_traces(stream, "Z")[0]
    head = Trace(z.data[:first_samples].copy(), header=_header("C", "Z"))
    tail = Trace(z.data[second_start_sample:].copy(), header=_header("C", "Z", start=T0 + second_start_sample / RATE))
    return _replace(stream, "C", head, tail, *_c_traces(stream, "N"), *_c_traces(stream, "E"))


def test_overlapping_traces_are_merged_recorded_and_change_nothing(clean):
    bad = _run(InMemoryDatabase(_overlapping(_noise_stream(), 2000, 1800)))  # window 0 spans both
    np.testing.assert_array_equal(bad["x"].values, clean["x"].values)
    assert_skips(bad, clean, {}, "")
    assert [(r["station"], r["component"], r["what"]) for r in _repairs(bad)] == [
        (BAD, "Z", "merged overlapping traces: dropped 200 overlapping samples")
    ]


def test_contiguous_split_trace_changes_nothing(clean):
    bad = _run(InMemoryDatabase(_overlapping(_noise_stream(), 2000, 2000)))
    np.testing.assert_array_equal(bad["x"].values, clean["x"].values)
    assert _repairs(bad) == [] and _failures(bad) == []


# ====================================================================== names


def test_non_ascii_station_code_works_end_to_end(clean):
    stream = _noise_stream()
    for tr in _c_traces(stream):
        tr.stats.station = "ÅS1"
    result = _run(InMemoryDatabase(stream))
    assert _failures(result) == []
    renamed = {p: p.replace(BAD, "XX.ÅS1") for p in clean["station_pair"].values}
    assert list(result["station_pair"].values) == [renamed[p] for p in clean["station_pair"].values]
    assert list(result["src"].values) == [p.split(":")[0] for p in result["station_pair"].values]
    for old, new in renamed.items():
        np.testing.assert_array_equal(result["x"].sel(station_pair=new).values, clean["x"].sel(station_pair=old).values)
    assert json.loads(result.attrs["channels"])["x"]["XX.ÅS1"] == ["XX.ÅS1..BHE", "XX.ÅS1..BHN", "XX.ÅS1..BHZ"]
    traces = Anxcor.xarray_to_obspy(result).select(station="A:ÅS1", channel="Z:Z")
    assert len(traces) == 1 and traces[0].stats.anxcor["rec"] == "XX.ÅS1"


def _double_run(stream):
    """Like ``_run``, with the correlation in double precision."""
    anx = _anxcor()
    anx.set_task_kwargs("crosscorrelate", dict(precision="double"))
    anx.add_dataset(InMemoryDatabase(stream), "x")
    return anx.process(_times())


def test_valid_pairs_match_a_run_of_only_the_good_stations_to_rounding():
    # double precision: in single precision the two runs' window sums are matrix products of
    # different sizes, which round differently (up to 7e-8 of the peak)
    clean = _double_run(_noise_stream())
    good_only = _double_run(_noise_stream(("A", "B")))
    scale = np.abs(clean["x"].values[np.isfinite(clean["x"].values)]).max()
    for pair in good_only["station_pair"].values:
        np.testing.assert_allclose(
            good_only["x"].sel(station_pair=pair).values, clean["x"].sel(station_pair=pair).values, rtol=0, atol=1e-12 * scale
        )
        np.testing.assert_array_equal(
            good_only["n_windows"].sel(station_pair=pair).values, clean["n_windows"].sel(station_pair=pair).values
        )


def test_missing_channels_are_listed_in_failures_once_per_run(clean):
    stream = _noise_stream()
    bad = _run(InMemoryDatabase(_replace(stream, "C", *_c_traces(stream, "Z"))))
    failures = _failures(bad)
    assert [(f["station"], f["window_start"], f["component"]) for f in failures] == [(BAD, _iso(0), "E"), (BAD, _iso(0), "N")]
    assert {f["reason"] for f in failures} == {f"component absent from the data in all {N_WINDOWS} windows"}


def test_component_ending_mid_run_is_recorded_per_window(clean):
    stream = _noise_stream()
    north = [_cut(tr, 0.0, 300.0) for tr in _c_traces(stream, "N")]  # N stops after window 0
    bad = _run(InMemoryDatabase(_replace(stream, "C", *_c_traces(stream, "Z"), *north, *_c_traces(stream, "E"))))
    reasons = {f["window_start"]: f["reason"] for f in _failures(bad) if f["component"] == "N"}
    assert reasons == {_iso(1): "no data in window", _iso(2): "no data in window"}
    assert [f for f in _failures(bad) if f["component"] != "N"] == []


@pytest.mark.parametrize(
    ("first", "second"),
    [(2001, 2001), (1234, 1234), (2001, 1800)],
    ids=["split-at-200.1s", "split-at-123.4s", "overlap-201-samples"],
)
def test_trace_in_two_pieces_off_whole_seconds_changes_nothing(clean, first, second):
    bad = _run(InMemoryDatabase(_overlapping(_noise_stream(), first, second)))
    overlap = first - second
    expected = [f"merged overlapping traces: dropped {overlap} overlapping samples"] if overlap else []
    assert [r["what"] for r in _repairs(bad)] == expected
    assert _failures(bad) == []
    np.testing.assert_array_equal(bad["x"].values, clean["x"].values)


def test_trace_inside_merged_data_is_recorded_as_a_duplicate(clean):
    stream = _noise_stream()
    z = _c_traces(stream, "Z")[0]
    messy = [
        Trace(z.data[:2001].copy(), header=_header("C", "Z")),
        z.copy(),
        Trace(z.data[1800:].copy(), header=_header("C", "Z", start=T0 + 180.0)),
    ]
    bad = _run(InMemoryDatabase(_replace(stream, "C", *messy, *_c_traces(stream, "N"), *_c_traces(stream, "E"))))
    assert sorted(r["what"] for r in _repairs(bad)) == [
        "dropped a duplicated trace of 7200 samples",
        "merged overlapping traces: dropped 2001 overlapping samples",
    ]
    np.testing.assert_array_equal(bad["x"].values, clean["x"].values)
