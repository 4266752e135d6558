"""Tests of anxcor.database: the AnxcorDatabase contract, the adapters, coordinate tables."""

import numpy as np
import pandas as pd
import pytest
from obspy import Inventory, Stream, Trace, UTCDateTime
from obspy.core.inventory import Network, Station

from anxcor.core import Anxcor, AnxcorDatabase
from anxcor.database import (
    InMemoryDatabase,
    SDSDatabase,
    WaveBankDatabase,
    as_database,
    coordinates_table,
)
from anxcor.errors import AnxcorError, ConfigError, DatabaseError

T0 = UTCDateTime(2021, 3, 4, 0, 0, 0)


def _stream(stations=("S00", "S01"), channels=("HHZ", "HHN", "HHE"), rate=10.0, seconds=600.0, start=T0, seed=0):
    rng = np.random.default_rng(seed)
    traces = []
    for station in stations:
        for channel in channels:
            header = {"network": "XX", "station": station, "location": "", "channel": channel, "sampling_rate": rate, "starttime": start}
            traces.append(Trace(rng.standard_normal(int(seconds * rate)).astype(np.float64), header=header))
    return Stream(traces)


def _expected_slice(trace, t1, t2):
    """Samples of ``trace`` at times in [t1, t2], by index arithmetic."""
    rate = trace.stats.sampling_rate
    first = int(np.ceil((t1 - trace.stats.starttime) * rate - 1e-9))
    last = int(np.floor((t2 - trace.stats.starttime) * rate + 1e-9))
    return trace.data[max(first, 0) : last + 1]


# ---------------------------------------------------------------------- add_dataset / as_database


@pytest.mark.parametrize("obj", [42, "a/path", {"XX.S00": []}, None, np.zeros(3)])
def test_add_dataset_rejects_non_databases_naming_the_type(obj):
    anx = Anxcor(window_length=100)
    with pytest.raises(DatabaseError) as info:
        anx.add_dataset(obj, "test")
    assert type(obj).__name__ in str(info.value)
    assert "AnxcorDatabase" in str(info.value)
    assert isinstance(info.value, AnxcorError)
    assert isinstance(info.value, TypeError)


def test_add_dataset_accepts_stream():
    anx = Anxcor(window_length=100)
    anx.add_dataset(_stream(stations=("S00", "S01", "S02")), "test")
    pairs = anx.get_station_combinations()
    assert list(pairs["station_pair"]) == [
        "XX.S00:XX.S00", "XX.S00:XX.S01", "XX.S00:XX.S02", "XX.S01:XX.S01", "XX.S01:XX.S02", "XX.S02:XX.S02",
    ]


def test_add_dataset_rejects_bad_or_duplicate_names():
    anx = Anxcor(window_length=100)
    anx.add_dataset(_stream(), "test")
    with pytest.raises(ConfigError, match="test"):
        anx.add_dataset(_stream(), "test")
    for bad in ("", "two words", 3):
        with pytest.raises(ConfigError):
            anx.add_dataset(_stream(), bad)


def test_as_database_wraps_stream_and_keeps_databases():
    stream = _stream()
    db = as_database(stream)
    assert isinstance(db, InMemoryDatabase)
    assert db.stream is stream
    assert as_database(db) is db


def test_in_memory_database_rejects_non_stream():
    with pytest.raises(ConfigError, match="list"):
        InMemoryDatabase([1, 2])


# ---------------------------------------------------------------------- in-memory


def test_in_memory_database_stations_and_trimmed_waveforms():
    stream = _stream(stations=("S01", "S00"), seed=1)
    db = InMemoryDatabase(stream)
    assert db.get_stations() == ["XX.S00", "XX.S01"]
    t1, t2 = T0 + 100.05, T0 + 200.0
    got = db.get_waveforms(network="XX", station="S01", starttime=t1, endtime=t2)
    assert sorted(tr.stats.channel for tr in got) == ["HHE", "HHN", "HHZ"]
    assert {tr.stats.station for tr in got} == {"S01"}
    for tr in got:
        original = stream.select(station="S01", channel=tr.stats.channel)[0]
        assert tr.stats.starttime >= t1
        assert tr.stats.endtime <= t2
        np.testing.assert_array_equal(tr.data, _expected_slice(original, t1, t2))
    # other stations' data are untouched by slicing
    assert stream.select(station="S01")[0].stats.npts == 6000


# ---------------------------------------------------------------------- obsplus WaveBank


def _write_bank(path, stream):
    path.mkdir(parents=True, exist_ok=True)
    for station in sorted({tr.stats.station for tr in stream}):
        stream.select(station=station).write(str(path / f"XX.{station}.mseed"), format="MSEED")
    return path


def test_add_dataset_accepts_wavebank(tmp_path):
    from obsplus import WaveBank

    stream = _stream(seed=2)
    bank = WaveBank(_write_bank(tmp_path / "bank", stream))
    db = as_database(bank)
    assert isinstance(db, WaveBankDatabase)
    assert db.get_stations() == ["XX.S00", "XX.S01"]
    anx = Anxcor(window_length=100)
    anx.add_dataset(bank, "test")
    assert list(anx.get_station_combinations()["station_pair"]) == ["XX.S00:XX.S00", "XX.S00:XX.S01", "XX.S01:XX.S01"]


def test_wavebank_database_returns_trimmed_waveforms(tmp_path):
    stream = _stream(seed=3)
    db = WaveBankDatabase(_write_bank(tmp_path / "bank", stream))  # a directory works too
    t1, t2 = T0 + 50.0, T0 + 170.0
    got = db.get_waveforms(network="XX", station="S00", starttime=t1, endtime=t2)
    assert sorted(tr.stats.channel for tr in got) == ["HHE", "HHN", "HHZ"]
    for tr in got:
        original = stream.select(station="S00", channel=tr.stats.channel)[0]
        assert tr.stats.starttime == t1
        assert abs(tr.stats.endtime - t2) <= tr.stats.delta
        expected = _expected_slice(original, t1, t2)
        np.testing.assert_array_equal(tr.data[: expected.size], expected[: tr.data.size])
        assert abs(tr.data.size - expected.size) <= 1


def test_wavebank_database_rejects_other_objects():
    with pytest.raises(ConfigError, match="int"):
        WaveBankDatabase(5)


class WavebankWrapper(AnxcorDatabase):
    """The seed README's example database, as written there."""

    def __init__(self, directory):
        super().__init__()
        from obsplus import WaveBank

        self.bank = WaveBank(directory)

    def get_waveforms(self, **kwargs):
        stream = self.bank.get_waveforms(**kwargs)
        traces = []
        for trace in stream:
            data = trace.data[:-1]
            header = {
                "delta": np.floor(trace.stats.delta * 1000) / 1000.0,
                "station": trace.stats.station,
                "starttime": trace.stats.starttime,
                "channel": trace.stats.channel,
                "network": trace.stats.network,
            }
            traces.append(Trace(data, header=header))
        return Stream(traces=traces)

    def get_stations(self):
        df = self.bank.get_uptime_df()

        def create_seed(row):
            return row["network"] + "." + row["station"]

        df["seed"] = df.apply(lambda row: create_seed(row), axis=1)
        return df["seed"].unique().tolist()


def test_seed_readme_wrapper_runs_through_process(tmp_path):
    stream = _stream(seed=4, rate=20.0)
    wrapper = WavebankWrapper(str(_write_bank(tmp_path / "bank", stream)))
    assert sorted(wrapper.get_stations()) == ["XX.S00", "XX.S01"]
    anx = Anxcor(window_length=100)
    anx.set_task_kwargs("resample", {"target_rate": 10.0})
    anx.set_task_kwargs("crosscorrelate", {"max_tau_shift": 10.0})
    anx.add_dataset(wrapper, "test")
    times = anx.get_starttimes(T0 + 10, T0 + 590, 0.0)
    assert len(times) == 5
    result = anx.process(times)
    # every window of every pair made it in although the traces are one sample short
    assert int(result["n_windows"].min()) == 5
    assert np.isfinite(result["test"].values).all()
    assert result.attrs["failures"] == "[]"


# ---------------------------------------------------------------------- SDS


def _write_sds(root, stream):
    """Write ``stream`` into an SDS tree by hand, one file per channel and day."""
    for trace in stream:
        day = trace.stats.starttime
        while day < trace.stats.endtime:
            day_start = UTCDateTime(day.year, day.month, day.day)
            piece = trace.slice(day_start, day_start + 86400 - trace.stats.delta / 2)
            s = piece.stats
            folder = root / str(day.year) / s.network / s.station / f"{s.channel}.D"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{s.network}.{s.station}.{s.location}.{s.channel}.D.{day.year}.{day.julday:03d}"
            piece.write(str(folder / name), format="MSEED")
            day = day_start + 86400


def test_sds_database_stations_and_trimmed_waveforms(tmp_path):
    start = UTCDateTime(2020, 12, 31, 23, 55)  # crosses a day and a year boundary
    stream = _stream(stations=("S00", "S01", "S02"), rate=10.0, seconds=600.0, start=start, seed=5)
    _write_sds(tmp_path, stream)
    assert (tmp_path / "2020" / "XX" / "S00" / "HHZ.D" / "XX.S00..HHZ.D.2020.366").is_file()
    assert (tmp_path / "2021" / "XX" / "S00" / "HHZ.D" / "XX.S00..HHZ.D.2021.001").is_file()
    db = SDSDatabase(tmp_path)
    assert db.get_stations() == ["XX.S00", "XX.S01", "XX.S02"]
    t1, t2 = start + 200.0, start + 400.0  # spans midnight
    got = db.get_waveforms(network="XX", station="S02", starttime=t1, endtime=t2)
    assert sorted(tr.stats.channel for tr in got) == ["HHE", "HHN", "HHZ"]
    assert {tr.stats.station for tr in got} == {"S02"}
    for tr in got:
        original = stream.select(station="S02", channel=tr.stats.channel)[0]
        assert tr.stats.starttime == t1
        assert tr.stats.endtime == t2
        np.testing.assert_array_equal(tr.data, _expected_slice(original, t1, t2))


def test_sds_database_needs_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="SDS"):
        SDSDatabase(tmp_path / "missing")


# ---------------------------------------------------------------------- coordinates


def test_coordinates_table_from_inventory():
    inventory = Inventory(
        networks=[
            Network("XX", stations=[Station("S00", 10.0, 20.0, 100.0), Station("S01", -5.5, 170.25, 0.0)]),
            Network("YY", stations=[Station("A", 45.0, -120.0, 1500.0)]),
        ],
        source="test",
    )
    table = coordinates_table(inventory)
    assert list(table.index) == ["XX.S00", "XX.S01", "YY.A"]
    assert list(table.columns) == ["latitude", "longitude", "elevation"]
    np.testing.assert_array_equal(
        table.to_numpy(), [[10.0, 20.0, 100.0], [-5.5, 170.25, 0.0], [45.0, -120.0, 1500.0]]
    )


def test_coordinates_table_from_dataframe_fills_elevation():
    frame = pd.DataFrame({"network": ["XX", "XX"], "station": ["S00", "S01"], "latitude": [1, 2], "longitude": [3, 4]})
    table = coordinates_table(frame)
    assert table.loc["XX.S01", "latitude"] == 2.0
    assert table.loc["XX.S00", "longitude"] == 3.0
    assert (table["elevation"] == 0.0).all()
    assert "seed_id" not in frame.columns  # input left alone


def test_coordinates_table_missing_column_is_named():
    frame = pd.DataFrame({"network": ["XX"], "station": ["S00"], "longitude": [3.0]})
    with pytest.raises(ConfigError, match="latitude"):
        coordinates_table(frame)


def test_coordinates_table_rejects_nan_and_other_types():
    frame = pd.DataFrame({"network": ["XX"], "station": ["S00"], "latitude": [np.nan], "longitude": [3.0]})
    with pytest.raises(ConfigError, match="NaN"):
        coordinates_table(frame)
    with pytest.raises(ConfigError, match="dict"):
        coordinates_table({"XX.S00": (1.0, 2.0)})


def test_database_coordinates_passed_at_construction():
    frame = pd.DataFrame({"network": ["XX"], "station": ["S00"], "latitude": [1.5], "longitude": [2.5], "elevation": [7.0]})
    db = InMemoryDatabase(_stream(stations=("S00",)), coordinates=frame)
    table = db.get_coordinates()
    assert table.loc["XX.S00"].tolist() == [1.5, 2.5, 7.0]


def test_wavebank_database_reads_like_wavebank_and_sees_new_files_after_refresh(tmp_path):
    from obsplus import WaveBank

    stream = _stream(seed=4)
    root = _write_bank(tmp_path / "bank", stream)
    db = WaveBankDatabase(root)
    t1, t2 = T0 + 20.0, T0 + 150.0
    ours = db.get_waveforms(network="XX", station="S01", starttime=t1, endtime=t2).merge()
    theirs = WaveBank(root).get_waveforms(network="XX", station="S01", starttime=t1, endtime=t2)
    assert sorted(tr.id for tr in ours) == sorted(tr.id for tr in theirs)
    for tr in theirs:
        mine = ours.select(id=tr.id)[0]
        assert mine.stats.starttime == tr.stats.starttime
        np.testing.assert_array_equal(mine.data, tr.data)
    # wildcards go to WaveBank.get_waveforms, which understands them
    assert len(db.get_waveforms(network="XX", station="S0*", starttime=t1, endtime=t2)) == 2 * 3
    # the index is read once: a station added later appears after refresh()
    extra = Stream([tr.copy() for tr in stream.select(station="S00")])
    for tr in extra:
        tr.stats.station = "S09"
    extra.write(str(tmp_path / "bank" / "extra.mseed"), format="MSEED")
    assert "XX.S09" not in db.get_stations()
    db.refresh()
    assert "XX.S09" in db.get_stations()
    assert len(db.get_waveforms(network="XX", station="S09", starttime=t1, endtime=t2)) == 3
