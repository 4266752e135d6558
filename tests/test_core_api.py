"""Tests of the Anxcor facade: configuration, filters, errors, skipped windows, result layout."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from obspy import Stream, Trace, UTCDateTime
from obspy.geodetics import gps2dist_azimuth

from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase
from anxcor.errors import AnxcorError, ConfigError
from anxcor.steps import Bandpass, CrossCorrelate, Taper, Whiten, XArrayProcessor

T0 = UTCDateTime(2022, 6, 1)
RATE = 10.0
WINDOW = 300.0
N_WINDOWS = 4
CHANNELS = [f"{a}:{b}" for a in "ZNE" for b in "ZNE"]
#: Correlation in float64, for the tests that compare two computations to rounding (1e-9 and
#: tighter); in single precision (the default) they agree to about 1e-7 of the peak.
DOUBLE = {"precision": "double"}


def _stream(stations=("S00", "S01", "S02"), seconds=WINDOW * N_WINDOWS, seed=0):
    rng = np.random.default_rng(seed)
    traces = []
    for station in stations:
        for component in "ZNE":
            header = {"network": "XX", "station": station, "channel": f"BH{component}", "sampling_rate": RATE, "starttime": T0}
            traces.append(Trace(rng.standard_normal(int(seconds * RATE)), header=header))
    return Stream(traces)


def _with_gap(stream, station, start, end, components="ZNE"):
    """Cut the samples of ``station`` between two times (seconds after T0) out of the stream."""
    out = Stream()
    for tr in stream:
        if tr.stats.station == station and tr.stats.channel[-1] in components:
            out += tr.slice(T0, T0 + start - tr.stats.delta / 2)
            out += tr.slice(T0 + end, tr.stats.endtime)
        else:
            out += tr.copy()
    return out


def _anxcor(**task_kwargs):
    anx = Anxcor(window_length=WINDOW)
    anx.set_task_kwargs("resample", {"target_rate": RATE})
    anx.set_task_kwargs("crosscorrelate", {"max_tau_shift": 10.0})
    for name, kwargs in task_kwargs.items():
        anx.set_task_kwargs(name, kwargs)
    return anx


def _times(anx):
    return anx.get_starttimes(T0, T0 + WINDOW * N_WINDOWS, 0.0)


# ---------------------------------------------------------------------- construction


@pytest.mark.parametrize("value", [0, -900, "900", None, True, float("nan")])
def test_window_length_validation(value):
    with pytest.raises(ConfigError, match="window_length"):
        Anxcor(window_length=value)


def test_window_length_stored_and_options_keyword_only():
    anx = Anxcor(window_length=900)
    assert anx.window_length == 900.0
    with pytest.raises(TypeError):
        Anxcor(900, 3600)
    with pytest.raises(ConfigError, match="read_span"):
        Anxcor(900, read_span=-1)


def test_default_task_order():
    assert Anxcor().task_names == [
        "orient", "detrend", "taper", "bandpass", "resample", "temporal_norm", "whiten", "crosscorrelate", "stack",
    ]


# ---------------------------------------------------------------------- tasks


def test_set_task_kwargs_changes_only_named_params():
    anx = Anxcor(window_length=900)
    before = {name: anx.get_task(name).get_params() for name in anx.task_names}
    anx.set_task_kwargs("whiten", {"freqmin": 0.1})
    after = {name: anx.get_task(name).get_params() for name in anx.task_names}
    assert after["whiten"] == {**before["whiten"], "freqmin": 0.1}
    assert after["whiten"]["freqmax"] == 1.0
    assert {k: v for k, v in after.items() if k != "whiten"} == {k: v for k, v in before.items() if k != "whiten"}
    anx.set_process_kwargs("crosscorrelate", {"max_tau_shift": 42.0})
    assert anx.get_task("crosscorrelate") == CrossCorrelate(max_tau_shift=42.0)


def test_set_task_kwargs_rejects_unknown_params_listing_valid_ones():
    anx = Anxcor(window_length=900)
    with pytest.raises(ConfigError) as info:
        anx.set_task_kwargs("bandpass", {"freq_min": 0.1})
    message = str(info.value)
    assert "freq_min" in message
    for valid in ("freqmin", "freqmax", "order", "zerophase"):
        assert valid in message
    assert anx.get_task("bandpass") == Bandpass()  # unchanged


def test_set_task_kwargs_unknown_task_and_bad_values():
    anx = Anxcor(window_length=900)
    with pytest.raises(ConfigError, match="whitening"):
        anx.set_task_kwargs("whitening", {"freqmin": 0.1})
    with pytest.raises(ConfigError, match="freqmin"):
        anx.set_task_kwargs("whiten", {"freqmin": -1.0})
    with pytest.raises(ConfigError):
        anx.set_task_kwargs("whiten", [("freqmin", 0.1)])
    assert anx.get_task("whiten") == Whiten()


def test_set_task_none_disables_and_replaces():
    anx = Anxcor(window_length=900)
    anx.set_task("whiten", None)
    assert anx.get_task("whiten") is None
    assert "whiten" in anx.task_names  # the slot is kept, so it can be set again
    tasks = {t["task"]: t for t in json.loads(anx.config_json())["tasks"]}
    assert tasks["whiten"]["step"] is None
    anx.set_task("whiten", Whiten(freqmin=0.2, freqmax=0.8))
    assert anx.get_task("whiten") == Whiten(freqmin=0.2, freqmax=0.8)
    with pytest.raises(ConfigError):
        anx.set_task("crosscorrelate", None)
    with pytest.raises(ConfigError):
        anx.set_task("no_such_task", Taper())


class Double(XArrayProcessor):
    def process(self, array):
        return array * 2.0


def test_add_process_ordering():
    anx = Anxcor(window_length=900)
    defaults = ["orient", "detrend", "taper", "bandpass", "resample", "temporal_norm", "whiten"]
    anx.add_process(Double())
    assert anx.task_names == [*defaults, "double", "crosscorrelate", "stack"]
    anx.add_process(Double(), before="bandpass")
    assert anx.task_names == ["orient", "detrend", "taper", "double_2", "bandpass", "resample", "temporal_norm",
                              "whiten", "double", "crosscorrelate", "stack"]
    anx.add_process(lambda a: a, name="identity", after="taper")
    assert anx.task_names[:5] == ["orient", "detrend", "taper", "identity", "double_2"]
    with pytest.raises(ConfigError, match="identity"):
        anx.add_process(Double(), name="identity")
    with pytest.raises(ConfigError):
        anx.add_process(Double(), before="taper", after="taper")
    with pytest.raises(ConfigError, match="nowhere"):
        anx.add_process(Double(), before="nowhere")
    with pytest.raises(ConfigError):
        anx.add_process(3.0)


# ---------------------------------------------------------------------- station combinations


def test_station_combinations_include_autocorrelations():
    anx = Anxcor(window_length=900)
    anx.add_dataset(InMemoryDatabase(_stream(seconds=10)), "test")
    pairs = anx.get_station_combinations()
    assert list(pairs.columns) == ["src", "rec", "station_pair"]
    assert list(zip(pairs["src"], pairs["rec"], strict=True)) == [
        ("XX.S00", "XX.S00"), ("XX.S00", "XX.S01"), ("XX.S00", "XX.S02"),
        ("XX.S01", "XX.S01"), ("XX.S01", "XX.S02"), ("XX.S02", "XX.S02"),
    ]


def test_station_and_pair_filters():
    anx = Anxcor(window_length=900)
    anx.add_dataset(InMemoryDatabase(_stream(stations=("S00", "S01", "S02", "T00"), seconds=10)), "test")
    anx.set_station_filter(exclude=["XX.S01"])
    assert list(anx.get_station_combinations()["station_pair"]) == [
        "XX.S00:XX.S00", "XX.S00:XX.S02", "XX.S00:XX.T00", "XX.S02:XX.S02", "XX.S02:XX.T00", "XX.T00:XX.T00",
    ]
    anx.set_station_filter(include=["XX.S*"], exclude=["XX.S02"])
    assert list(anx.get_station_combinations()["station_pair"]) == ["XX.S00:XX.S00", "XX.S00:XX.S01", "XX.S01:XX.S01"]
    anx.set_station_filter()
    anx.set_pair_filter(include=["XX.S00:*"], exclude=["*:XX.T00"])
    assert list(anx.get_station_combinations()["station_pair"]) == ["XX.S00:XX.S00", "XX.S00:XX.S01", "XX.S00:XX.S02"]
    with pytest.raises(ConfigError):
        anx.set_pair_filter(include=[3])


def test_station_combinations_need_a_dataset():
    with pytest.raises(ConfigError, match="add_dataset"):
        Anxcor(window_length=900).get_station_combinations()


# ---------------------------------------------------------------------- process errors


def test_process_without_dataset():
    anx = _anxcor()
    with pytest.raises(ConfigError, match="add_dataset"):
        anx.process(_times(anx))


def test_process_empty_or_bad_starttimes():
    anx = _anxcor()
    anx.add_dataset(_stream(), "test")
    with pytest.raises(ConfigError, match="empty"):
        anx.process([])
    with pytest.raises(ConfigError):
        anx.process([T0.timestamp, float("nan")])
    with pytest.raises(ConfigError, match="duplicate"):
        anx.process([T0.timestamp, T0.timestamp])


def test_process_max_tau_shift_not_shorter_than_window():
    anx = _anxcor(crosscorrelate={"max_tau_shift": WINDOW})
    anx.add_dataset(_stream(), "test")
    with pytest.raises(ConfigError, match="max_tau_shift"):
        anx.process(_times(anx))


@pytest.mark.parametrize("stack", [0, -2, 1.5, "yes"])
def test_process_invalid_stack(stack):
    anx = _anxcor()
    anx.add_dataset(_stream(), "test")
    with pytest.raises(ConfigError, match="stack"):
        anx.process(_times(anx), stack=stack)


def test_process_errors_are_anxcor_errors():
    with pytest.raises(AnxcorError):
        _anxcor().process([])


# ---------------------------------------------------------------------- numbers


def _raw_anxcor():
    """Only the (no-op) resample is left: the result is the plain mean cross-correlation."""
    anx = _anxcor()
    for name in ("orient", "detrend", "taper", "bandpass", "temporal_norm", "whiten"):
        anx.set_task(name, None)
    return anx


def _direct_correlation(src, rec, max_lag):
    """corr[k] = sum_t src[t] * rec[t + k], k = -max_lag..max_lag, zero outside the window."""
    n = src.size
    out = np.empty(2 * max_lag + 1)
    for i, k in enumerate(range(-max_lag, max_lag + 1)):
        out[i] = np.dot(src[: n - k], rec[k:]) if k >= 0 else np.dot(src[-k:], rec[: n + k])
    return out


def test_raw_pipeline_is_mean_of_direct_correlations():
    stream = _stream(stations=("S00", "S01"), seed=3)
    anx = _raw_anxcor()
    anx.set_task_kwargs("crosscorrelate", DOUBLE)  # checked against float64 sums to rounding
    anx.add_dataset(stream, "test")
    result = anx.process(_times(anx))
    n, max_lag = int(WINDOW * RATE), int(10.0 * RATE)
    for src_comp, rec_comp in [("Z", "Z"), ("Z", "E"), ("N", "Z")]:
        src = stream.select(station="S00", channel=f"BH{src_comp}")[0].data
        rec = stream.select(station="S01", channel=f"BH{rec_comp}")[0].data
        expected = np.mean(
            [_direct_correlation(src[w * n : (w + 1) * n], rec[w * n : (w + 1) * n], max_lag) for w in range(N_WINDOWS)],
            axis=0,
        )
        got = result["test"].sel(station_pair="XX.S00:XX.S01", channel=f"{src_comp}:{rec_comp}").values
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    # the autocorrelation at zero lag is the mean energy per window
    z = stream.select(station="S01", channel="BHZ")[0].data
    zero = result["test"].sel(station_pair="XX.S01:XX.S01", channel="Z:Z", time=0.0).item()
    assert zero == pytest.approx(np.mean([np.sum(z[w * n : (w + 1) * n] ** 2) for w in range(N_WINDOWS)]), rel=1e-10)


def test_added_process_runs_in_the_pipeline():
    stream = _stream(stations=("S00", "S01"), seed=4)
    plain = _raw_anxcor()
    plain.add_dataset(stream, "test")
    doubled = _raw_anxcor()
    doubled.add_process(Double())
    doubled.add_dataset(stream, "test")
    a = plain.process(_times(plain))["test"].values
    b = doubled.process(_times(doubled))["test"].values
    np.testing.assert_allclose(b, 4.0 * a, rtol=1e-10, atol=1e-12 * np.abs(a).max())


def test_stack_false_windows_average_to_stack():
    stream = _stream(stations=("S00", "S01"), seed=5)
    anx = _anxcor(crosscorrelate=DOUBLE)  # equal to rounding: the stack sums spectra, not windows
    anx.add_dataset(stream, "test")
    stacked = anx.process(_times(anx))
    windows = anx.process(_times(anx), stack=False)
    pairs = anx.process(_times(anx), stack=2)
    assert windows["test"].sizes["window"] == N_WINDOWS
    assert pairs["test"].sizes["window"] == 2
    mean = windows["test"].mean("window")
    np.testing.assert_allclose(stacked["test"].values, mean.values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        pairs["test"].isel(window=0).values, windows["test"].isel(window=[0, 1]).mean("window").values, rtol=1e-9, atol=1e-12
    )
    np.testing.assert_array_equal(windows["window"].values, _times(anx))


# ---------------------------------------------------------------------- skipped windows


@pytest.fixture(scope="module")
def gap_runs():
    clean = _stream(seed=7)
    gappy = _with_gap(clean, "S02", WINDOW * 2 + 100.0, WINDOW * 2 + 150.0)  # inside window 2
    without = Stream([tr.copy() for tr in clean if tr.stats.station != "S02"])
    results = {}
    for key, stream in (("gappy", gappy), ("without", without)):
        anx = _anxcor(crosscorrelate=DOUBLE)  # the clean pairs are compared to rounding
        anx.add_dataset(InMemoryDatabase(stream), "test")
        results[key] = anx.process(_times(anx))
    return results


def test_gap_skips_station_in_that_window_only(gap_runs):
    result = gap_runs["gappy"]
    counts = result["n_windows"].transpose("station_pair", "channel").to_pandas()
    for pair in result["station_pair"].values:
        expected = N_WINDOWS - 1 if "XX.S02" in pair else N_WINDOWS
        assert (counts.loc[pair] == expected).all(), pair
    assert np.isfinite(result["test"].values).all()


def test_gap_is_recorded_in_failures(gap_runs):
    failures = json.loads(gap_runs["gappy"].attrs["failures"])
    assert failures, "the gap must be recorded"
    assert {f["station"] for f in failures} == {"XX.S02"}
    assert all("gap" in f["reason"] for f in failures)
    assert {f["component"] for f in failures} == {"Z", "N", "E"}
    assert {f["window_start"] for f in failures} == {str(T0 + 2 * WINDOW)}
    assert {f["dataset"] for f in failures} == {"test"}
    assert json.loads(gap_runs["without"].attrs["failures"]) == []


def test_gap_does_not_change_other_pairs(gap_runs):
    gappy, without = gap_runs["gappy"], gap_runs["without"]
    clean_pairs = list(without["station_pair"].values)
    assert clean_pairs == ["XX.S00:XX.S00", "XX.S00:XX.S01", "XX.S01:XX.S01"]
    a = gappy["test"].sel(station_pair=clean_pairs)
    b = without["test"].sel(station_pair=clean_pairs)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-10, atol=1e-12 * np.abs(b.values).max())
    np.testing.assert_array_equal(
        gappy["n_windows"].sel(station_pair=clean_pairs).values, without["n_windows"].sel(station_pair=clean_pairs).values
    )


def test_gap_with_stack_false_masks_only_that_window():
    clean = _stream(seed=7)
    gappy = _with_gap(clean, "S02", WINDOW * 2 + 100.0, WINDOW * 2 + 150.0)
    anx = _anxcor(crosscorrelate=DOUBLE)  # the stack is compared with the windows' mean to rounding
    anx.add_dataset(gappy, "test")
    windows = anx.process(_times(anx), stack=False)
    stacked = anx.process(_times(anx))
    data = windows["test"].transpose("window", "station_pair", "channel", "time")
    counts = windows["n_windows"].transpose("window", "station_pair", "channel")
    for p, pair in enumerate(windows["station_pair"].values):
        for w in range(N_WINDOWS):
            missing = "XX.S02" in pair and w == 2
            assert np.isnan(data.values[w, p]).all() == missing, (pair, w)
            assert np.isfinite(data.values[w, p]).all() == (not missing), (pair, w)
            assert (counts.values[w, p] == (0 if missing else 1)).all(), (pair, w)
    # the stack is the mean of the windows that had data
    np.testing.assert_allclose(
        stacked["test"].values, windows["test"].mean("window", skipna=True).values, rtol=1e-9, atol=1e-12
    )


def test_gap_in_one_component_only_drops_its_channel_pairs():
    clean = _stream(stations=("S00", "S01"), seed=8)
    gappy = _with_gap(clean, "S01", WINDOW + 50.0, WINDOW + 60.0, components="Z")  # window 1, Z only
    anx = _anxcor()
    anx.add_dataset(gappy, "test")
    result = anx.process(_times(anx))
    counts = result["n_windows"].sel(station_pair="XX.S00:XX.S01")
    for channel in CHANNELS:
        expected = N_WINDOWS - 1 if channel.endswith(":Z") else N_WINDOWS
        assert int(counts.sel(channel=channel)) == expected, channel
    auto = result["n_windows"].sel(station_pair="XX.S01:XX.S01")
    for channel in CHANNELS:
        expected = N_WINDOWS - 1 if "Z" in channel else N_WINDOWS
        assert int(auto.sel(channel=channel)) == expected, channel
    failures = json.loads(result.attrs["failures"])
    assert [(f["station"], f["component"]) for f in failures] == [("XX.S01", "Z")]
    assert "gap" in failures[0]["reason"]


# ---------------------------------------------------------------------- result layout


@pytest.fixture(scope="module")
def located():
    coordinates = pd.DataFrame(
        {
            "network": ["XX", "XX", "XX"],
            "station": ["S00", "S01", "S02"],
            "latitude": [40.0, 40.5, 39.2],
            "longitude": [-110.0, -109.3, -111.1],
            "elevation": [1000.0, 1200.0, 900.0],
        }
    )
    anx = _anxcor()
    anx.add_dataset(InMemoryDatabase(_stream(seed=9)), "test", inventory=coordinates)
    return anx.process(_times(anx)), coordinates.set_index("station")


def test_result_layout(located):
    result, _ = located
    assert list(result.data_vars) == ["test"]
    assert result["test"].dims == ("channel", "station_pair", "time")
    assert list(result["channel"].values) == CHANNELS
    assert list(result["src"].values) == [p.split(":")[0] for p in result["station_pair"].values]
    assert list(result["rec"].values) == [p.split(":")[1] for p in result["station_pair"].values]
    lags = result["time"].values
    np.testing.assert_allclose(lags, -lags[::-1], atol=1e-12)
    assert 0.0 in lags
    assert (result["n_windows"] == N_WINDOWS).all()


def test_attrs_are_netcdf_safe_and_file_round_trips(located, tmp_path):
    result, _ = located
    for key, value in result.attrs.items():
        assert type(value) in (str, int, float), (key, type(value))
    for name in ("config", "history", "failures", "starttimes"):
        json.loads(result.attrs[name])
    assert json.loads(result.attrs["starttimes"]) == pytest.approx(_times(Anxcor(window_length=WINDOW)))
    path = tmp_path / "result.nc"
    result.to_netcdf(path, engine="scipy")
    with xr.open_dataset(path, engine="scipy") as back:
        back = back.load()
    np.testing.assert_allclose(back["test"].values, result["test"].values)
    np.testing.assert_allclose(back["distance"].values, result["distance"].values)
    assert list(back["station_pair"].values) == list(result["station_pair"].values)
    assert back.attrs["config"] == result.attrs["config"]


def test_distance_and_azimuth_match_gps2dist_azimuth(located):
    result, table = located
    for k, pair in enumerate(result["station_pair"].values):
        src, rec = (label.split(".")[1] for label in pair.split(":"))
        a, b = table.loc[src], table.loc[rec]
        if src == rec:
            assert result["distance"].values[k] == 0.0
            continue
        meters, az, baz = gps2dist_azimuth(a.latitude, a.longitude, b.latitude, b.longitude)
        assert result["distance"].values[k] == pytest.approx(meters / 1000.0, rel=1e-9)
        assert result["azimuth"].values[k] == pytest.approx(az, abs=1e-9)
        assert result["backazimuth"].values[k] == pytest.approx(baz, abs=1e-9)
    assert result["distance"].attrs["units"] == "km"
    # a hand check: 0.5 deg of latitude north and 0.7 deg east is roughly 80 km to the north-east
    d = result["distance"].sel(station_pair="XX.S00:XX.S01").item()
    assert 75.0 < d < 85.0
    assert 40.0 < result["azimuth"].sel(station_pair="XX.S00:XX.S01").item() < 55.0


def test_history_lists_active_tasks_in_order():
    anx = _raw_anxcor()
    anx.add_dataset(_stream(stations=("S00",)), "test")
    result = anx.process(_times(anx))
    history = json.loads(result.attrs["history"])
    assert [h["task"] for h in history] == ["resample", "crosscorrelate", "stack"]
    assert history[1]["params"]["max_tau_shift"] == 10.0


def test_missing_component_gives_nan_not_zeros():
    stream = _stream(stations=("S00", "S01"), seed=10)
    z_only = Stream([tr for tr in stream if tr.stats.station == "S00" or tr.stats.channel == "BHZ"])
    anx = _anxcor()
    anx.add_dataset(z_only, "test")
    result = anx.process(_times(anx))
    counts = result["n_windows"].sel(station_pair="XX.S00:XX.S01")
    values = result["test"].sel(station_pair="XX.S00:XX.S01")
    for channel in CHANNELS:
        has_data = channel.endswith(":Z")  # the receiver S01 only has Z
        assert int(counts.sel(channel=channel)) == (N_WINDOWS if has_data else 0), channel
        assert np.isfinite(values.sel(channel=channel).values).all() == has_data, channel
        assert np.isnan(values.sel(channel=channel).values).all() == (not has_data), channel


def test_mixed_sampling_rates_are_resampled():
    fast = _stream(stations=("S00",), seed=11)
    fast = Stream([tr.copy().resample(40.0) for tr in fast])  # 40 Hz station
    slow = _stream(stations=("S01",), seed=12)
    anx = _anxcor()
    anx.add_dataset(fast + slow, "test")
    result = anx.process(_times(anx))
    assert result.attrs["sampling_rate"] == RATE
    assert (result["n_windows"] == N_WINDOWS).all()
    assert np.isfinite(result["test"].values).all()
    assert json.loads(result.attrs["failures"]) == []


def test_result_does_not_depend_on_read_span():
    stream = _stream(seed=13)
    results = []
    for read_span in (WINDOW, 100.0 * WINDOW):
        anx = Anxcor(window_length=WINDOW, read_span=read_span)
        anx.set_task_kwargs("resample", {"target_rate": RATE})
        anx.set_task_kwargs("crosscorrelate", {"max_tau_shift": 10.0, **DOUBLE})  # compared to rounding
        anx.add_dataset(stream, "test")
        times = anx.get_starttimes(T0, T0 + WINDOW * N_WINDOWS, 0.5)  # overlapping windows
        assert len(times) == 2 * N_WINDOWS - 1
        results.append(anx.process(times))
    np.testing.assert_allclose(results[0]["test"].values, results[1]["test"].values, rtol=1e-10, atol=1e-12)
    assert (results[0]["n_windows"] == 2 * N_WINDOWS - 1).all()
