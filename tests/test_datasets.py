"""Tests of :mod:`anxcor.datasets`: layout, determinism, validation and the physics of the field.

The physics tests use numpy and obspy only (no other anxcor code): they read the miniSEED
files and ``stations.csv`` as any user would, cross-correlate whitened vertical records and
check where the correlation peaks.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from obspy import UTCDateTime, read
from obspy.clients.filesystem.sds import Client
from obspy.geodetics import gps2dist_azimuth

from anxcor.datasets import SyntheticArchive, synthetic_archive
from anxcor.errors import ConfigError

SMALL = {"stations": 3, "hours": 0.25, "rate": 5.0, "waves_per_hour": 40}


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _whitened_xcorr(src: np.ndarray, rec: np.ndarray, rate: float) -> np.ndarray:
    """corr[k] = sum_t src[t] rec[t + k] after whitening between 0.1 and 0.5 Hz.

    Index k >= 0 is a causal lag of k / rate s, index -k an acausal lag of -k / rate s.
    """
    nfft = 2 * src.size
    spec_src = np.fft.rfft(src, nfft)
    spec_rec = np.fft.rfft(rec, nfft)
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate)
    keep = (freqs >= 0.1) & (freqs <= 0.5)
    spec_src = np.where(keep, spec_src / np.maximum(np.abs(spec_src), 1e-30), 0.0)
    spec_rec = np.where(keep, spec_rec / np.maximum(np.abs(spec_rec), 1e-30), 0.0)
    return np.fft.irfft(np.conj(spec_src) * spec_rec, nfft)


def _vertical_records(root: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    table = pd.read_csv(root / "stations.csv")
    stream = read(str(root / "waveforms" / "*HHZ*.mseed"))
    stream.merge()
    return table, {tr.stats.station: tr.data.astype(np.float64) for tr in stream}


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("layout", ["hourly", "sds"])
def test_same_seed_gives_identical_files(tmp_path, layout):
    synthetic_archive(tmp_path / "a", seed=3, layout=layout, **SMALL)
    synthetic_archive(tmp_path / "b", seed=3, layout=layout, **SMALL)
    first, second = _file_bytes(tmp_path / "a"), _file_bytes(tmp_path / "b")
    assert len(first) == 2 + SMALL["stations"] * 3  # stations.csv, archive.json, one file per channel
    assert first == second


def test_identical_call_reuses_the_archive_and_a_changed_one_rewrites_it(tmp_path):
    first = synthetic_archive(tmp_path, seed=3, **SMALL)
    files = sorted(first.waveform_dir.iterdir())
    stamps = [p.stat().st_mtime_ns for p in files]
    again = synthetic_archive(tmp_path, seed=3, **SMALL)
    assert [p.stat().st_mtime_ns for p in files] == stamps  # nothing rewritten
    pd.testing.assert_frame_equal(again.stations, first.stations)
    assert (again.starttime, again.endtime, again.rate) == (first.starttime, first.endtime, first.rate)
    other = synthetic_archive(tmp_path, seed=4, **SMALL)
    assert not other.stations.equals(first.stations)


def test_rewriting_in_place_gives_identical_files(tmp_path):
    synthetic_archive(tmp_path, seed=3, layout="sds", **SMALL)
    before = _file_bytes(tmp_path)
    synthetic_archive(tmp_path, seed=3, layout="sds", **SMALL)  # day files must not grow
    assert _file_bytes(tmp_path) == before


def test_other_seed_gives_other_data(tmp_path):
    one = synthetic_archive(tmp_path / "a", seed=1, **SMALL)
    two = synthetic_archive(tmp_path / "b", seed=2, **SMALL)
    assert not one.stations[["x_km", "y_km"]].equals(two.stations[["x_km", "y_km"]])
    data_one, data_two = one.read_stream()[0].data, two.read_stream()[0].data
    assert data_one.shape == data_two.shape
    assert not np.array_equal(data_one, data_two)


# --------------------------------------------------------------------------- layouts


def test_hourly_layout_files_and_read_back(tmp_path):
    start = UTCDateTime(2021, 3, 4, 5)
    archive = synthetic_archive(
        tmp_path, stations=2, hours=1.5, rate=4.0, components="ZNE", waves_per_hour=20,
        starttime=start,
    )
    assert isinstance(archive, SyntheticArchive)
    assert archive.path == tmp_path
    assert archive.waveform_dir == tmp_path / "waveforms"
    assert archive.starttime == start.timestamp
    assert archive.endtime == (start + 5400).timestamp
    assert (archive.rate, archive.velocity, archive.components) == (4.0, 3.0, "ZNE")
    assert archive.layout == "hourly"

    table = pd.read_csv(tmp_path / "stations.csv", keep_default_na=False)
    assert list(table.columns) == [
        "network", "station", "latitude", "longitude", "elevation", "x_km", "y_km",
    ]
    assert list(table["station"]) == ["S000", "S001"]
    assert (table["network"] == "XX").all() and (table["elevation"] == 1500.0).all()
    np.testing.assert_allclose(table[["x_km", "y_km"]], archive.stations[["x_km", "y_km"]])
    assert (table[["x_km", "y_km"]].abs() <= 30.0).all().all()

    names = sorted(p.name for p in archive.waveform_dir.iterdir())
    expected = sorted(
        f"XX.{sta}..HH{c}__{hour}.mseed"
        for sta in ("S000", "S001")
        for c in "ZNE"
        for hour in ("20210304T05", "20210304T06")
    )
    assert names == expected
    for name, npts, offset in (("XX.S001..HHN__20210304T05.mseed", 14400, 0),
                               ("XX.S001..HHN__20210304T06.mseed", 7200, 3600)):
        (trace,) = read(str(archive.waveform_dir / name))
        assert trace.stats.sampling_rate == 4.0
        assert trace.stats.starttime == start + offset
        assert trace.stats.npts == npts
        assert trace.data.dtype == np.float32

    stream = archive.read_stream()
    assert sorted(tr.id for tr in stream) == sorted(
        f"XX.{sta}..HH{c}" for sta in ("S000", "S001") for c in "ZNE"
    )
    for trace in stream:
        assert trace.stats.starttime == start
        assert trace.stats.npts == 21600
        assert np.isfinite(trace.data).all() and trace.data.std() > 0


def test_sds_layout_across_midnight_and_new_year(tmp_path):
    start = UTCDateTime(2020, 12, 31, 23)
    archive = synthetic_archive(
        tmp_path, stations=2, hours=2.0, rate=2.5, components="Z1", layout="sds",
        waves_per_hour=20, starttime=start,
    )
    assert archive.waveform_dir == tmp_path / "sds"
    assert (tmp_path / "stations.csv").is_file()
    files = sorted(str(p.relative_to(archive.waveform_dir))
                   for p in archive.waveform_dir.rglob("*") if p.is_file())
    assert files == sorted(
        f"{year}/XX/{sta}/HH{c}.D/XX.{sta}..HH{c}.D.{year}.{doy}"
        for sta in ("S000", "S001")
        for c in "Z1"
        for year, doy in (("2020", "366"), ("2021", "001"))
    )
    (old_day,) = read(str(archive.waveform_dir / "2020/XX/S000/HHZ.D/XX.S000..HHZ.D.2020.366"))
    (new_day,) = read(str(archive.waveform_dir / "2021/XX/S000/HHZ.D/XX.S000..HHZ.D.2021.001"))
    assert old_day.stats.starttime == start and old_day.stats.npts == 9000
    assert new_day.stats.starttime == UTCDateTime(2021, 1, 1) and new_day.stats.npts == 9000

    client = Client(str(archive.waveform_dir))
    for channel in ("HHZ", "HH1"):
        stream = client.get_waveforms("XX", "S001", "", channel, start, start + 7200)
        assert len(stream) == 1
        trace = stream[0]
        assert trace.stats.sampling_rate == 2.5
        assert trace.stats.starttime == start
        assert trace.stats.npts == 18000
        (same,) = archive.read_stream().select(station="S001", channel=channel)
        np.testing.assert_array_equal(trace.data, same.data)


@pytest.mark.filterwarnings("ignore::Warning")  # obsplus and pytables deprecations
def test_hourly_archive_indexes_in_obsplus_wavebank(tmp_path):
    obsplus = pytest.importorskip("obsplus")
    archive = synthetic_archive(tmp_path, **SMALL)
    bank = obsplus.WaveBank(archive.waveform_dir)
    bank.update_index()
    stream = bank.get_waveforms(network="XX", station="S002", channel="HHE")
    assert len(stream) == 1 and stream[0].stats.npts == int(0.25 * 3600 * 5)


def test_expected_lag_is_geodesic_distance_over_velocity(tmp_path):
    archive = synthetic_archive(tmp_path, velocity=2.5, **SMALL)
    table = archive.stations
    distance_m = gps2dist_azimuth(table.latitude[0], table.longitude[0],
                                  table.latitude[2], table.longitude[2])[0]
    assert archive.expected_lag("XX.S000", "XX.S002") == pytest.approx(distance_m / 2500.0)
    assert archive.expected_lag("XX.S002..HHZ", "XX.S000..HHZ") == pytest.approx(
        distance_m / 2500.0
    )
    # the flat geometry of the synthesis and the geodesic agree within 0.5 %
    flat = np.hypot(table.x_km[2] - table.x_km[0], table.y_km[2] - table.y_km[0])
    assert distance_m / 1000.0 == pytest.approx(flat, rel=5e-3)
    with pytest.raises(ConfigError, match="expected"):
        archive.expected_lag("XX.S000", "XX.S999")
    with pytest.raises(ConfigError, match="expected"):
        archive.expected_lag("S000", "XX.S001")


# --------------------------------------------------------------------------- physics


def test_isotropic_field_correlation_peaks_at_distance_over_velocity(tmp_path):
    rate, velocity = 10.0, 3.0
    synthetic_archive(tmp_path, stations=6, hours=1.0, rate=rate, components="Z", seed=0,
                      velocity=velocity)
    table, records = _vertical_records(tmp_path)
    max_lag = int(35 * rate)  # the largest d / v in a 60 km square is 28 s
    checked = passed = 0
    for i in range(len(table)):
        for j in range(i + 1, len(table)):
            src, rec = table.iloc[i], table.iloc[j]
            distance_m = gps2dist_azimuth(src.latitude, src.longitude,
                                          rec.latitude, rec.longitude)[0]
            lag = distance_m / 1000.0 / velocity
            if lag <= 3.0:
                continue
            corr = _whitened_xcorr(records[src.station], records[rec.station], rate)
            causal = (np.argmax(corr[1:max_lag]) + 1) / rate
            acausal = (np.argmax(corr[-max_lag:]) - max_lag) / rate
            checked += 1
            passed += abs(causal - lag) < 1.0 and abs(acausal + lag) < 1.0
    assert checked >= 8
    # one hour of a 2-D diffuse field converges only partly: most, not all, pairs
    assert passed >= 0.7 * checked


def test_directional_field_correlation_peaks_at_projected_lag(tmp_path):
    rate, velocity, azimuth, spread = 10.0, 3.0, 60.0, 10.0
    synthetic_archive(tmp_path, stations=6, hours=1.0, rate=rate, components="Z", seed=0,
                      velocity=velocity, azimuth=azimuth, spread=spread)
    table, records = _vertical_records(tmp_path)
    east, north = np.sin(np.radians(azimuth)), np.cos(np.radians(azimuth))
    max_lag = int(35 * rate)
    checked = 0
    for i in range(len(table)):
        for j in range(len(table)):
            dx = table.x_km[j] - table.x_km[i]
            dy = table.y_km[j] - table.y_km[i]
            along, across = dx * east + dy * north, dx * north - dy * east
            # the azimuth spread smears the arrival over +/- |across| sin(spread) / v:
            # only pairs where that stays small have a sharp peak
            if abs(along) <= 5.0 or abs(across) * np.sin(np.radians(spread)) / velocity > 2.0:
                continue
            corr = _whitened_xcorr(records[table.station[i]], records[table.station[j]], rate)
            window = np.concatenate([corr[-max_lag:], corr[: max_lag + 1]])
            peak = (np.argmax(window) - max_lag) / rate
            assert peak == pytest.approx(along / velocity, abs=1.5), (i, j)
            checked += 1
    assert checked >= 6


def test_velocity_change_applies_from_change_hour(tmp_path):
    rate, velocity, dvv = 5.0, 3.0, 0.1
    common = {"stations": 4, "hours": 2.0, "rate": rate, "components": "Z", "seed": 5,
              "velocity": velocity, "azimuth": 0.0, "spread": 5.0}
    steady = synthetic_archive(tmp_path / "steady", **common)
    changed = synthetic_archive(tmp_path / "changed", dvv=dvv, change_hour=1, **common)

    def hour(archive, station, stamp):
        name = f"XX.{station}..HHZ__20210101{stamp}.mseed"
        return read(str(archive.waveform_dir / name))[0].data.astype(np.float64)

    # the random draws do not depend on the velocity: hour 0 is unchanged, hour 1 is not
    assert np.array_equal(hour(steady, "S000", "T00"), hour(changed, "S000", "T00"))
    assert not np.array_equal(hour(steady, "S000", "T01"), hour(changed, "S000", "T01"))

    # waves travel north: the pair furthest apart north-south arrives sooner after the change
    table = changed.stations
    src, rec = table.station[table.y_km.idxmin()], table.station[table.y_km.idxmax()]
    along = table.y_km.max() - table.y_km.min()
    max_lag = int(35 * rate)
    for stamp, speed in (("T00", velocity), ("T01", velocity * (1 + dvv))):
        corr = _whitened_xcorr(hour(changed, src, stamp), hour(changed, rec, stamp), rate)
        window = np.concatenate([corr[-max_lag:], corr[: max_lag + 1]])
        peak = (np.argmax(window) - max_lag) / rate
        assert peak == pytest.approx(along / speed, abs=0.3 * dvv * along / velocity)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("stations", 0),
        ("stations", 2.0),
        ("stations", True),
        ("hours", 0),
        ("hours", -1.0),
        ("hours", float("nan")),
        ("rate", 0.0),
        ("rate", 2.0),
        ("rate", 10.0000001),
        ("seed", -1),
        ("seed", 1.5),
        ("components", ""),
        ("components", "ZZ"),
        ("components", "ZX"),
        ("components", "z"),
        ("components", ["Z"]),
        ("velocity", 0.0),
        ("velocity", float("inf")),
        ("aperture_km", 0.0),
        ("waves_per_hour", 0),
        ("network", ""),
        ("network", "XYZ"),
        ("network", "X."),
        ("azimuth", "north"),
        ("spread", -1.0),
        ("dvv", -1.0),
        ("change_hour", "soon"),
        ("noise_level", -0.1),
        ("layout", "daily"),
        ("starttime", "not a time"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, name, value):
    with pytest.raises(ConfigError, match=f"^{name}: expected .* got "):
        synthetic_archive(tmp_path, **{**SMALL, name: value})
    assert not (tmp_path / "stations.csv").exists()


def test_bad_path_raises_config_error():
    with pytest.raises(ConfigError, match="path: expected"):
        synthetic_archive(42, **SMALL)
