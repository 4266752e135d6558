"""save_result / load_result: identical round trips in netCDF and zarr, atomic writes, clear errors."""

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from obspy import Stream, Trace, UTCDateTime

from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase
from anxcor.errors import ConfigError, DataError
from anxcor.io import load_result, save_result
from anxcor.steps import align_station_pairs

START = UTCDateTime(2021, 1, 1)
RATE = 10.0
FORMATS = (".nc", ".zarr")
COORDS = pd.DataFrame(
    {
        "network": ["XX"] * 3,
        "station": ["A", "B", "C"],
        "latitude": [40.0, 40.1, 40.2],
        "longitude": [-111.0, -111.0, -111.1],
        "elevation": [0.0, 0.0, 0.0],
    }
)


def _stream(stations, seed, seconds=300.0):
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    return Stream([
        Trace(rng.standard_normal(n), header=dict(network="XX", station=s, channel=f"HH{c}", sampling_rate=RATE, starttime=START))
        for s in stations
        for c in "ZNE"
    ])


def _anxcor(**correlate):
    anx = Anxcor(window_length=100.0)
    anx.set_task_kwargs("resample", dict(target_rate=RATE))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=5.0, **correlate))
    return anx


TIMES = [START.timestamp + k * 100.0 for k in range(3)]


@pytest.fixture(scope="module")
def layouts():
    """One result of each documented layout, from tiny in-memory runs."""
    anx = _anxcor()
    anx.add_dataset(InMemoryDatabase(_stream("AB", 1), coordinates=COORDS), "x")
    stacked = anx.process(TIMES)
    out = {
        "stacked": stacked,
        "windows": anx.process(TIMES, stack=False),
        "substacks": anx.process(TIMES, stack=2),
        "rotated": align_station_pairs(stacked),
    }
    several = _anxcor()
    several.add_dataset(InMemoryDatabase(_stream("AB", 2), coordinates=COORDS), "one")
    several.add_dataset(InMemoryDatabase(_stream("BC", 3), coordinates=COORDS), "two")
    out["several"] = several.process(TIMES[:2])
    spectrum = _anxcor(output="spectrum")
    spectrum.add_dataset(InMemoryDatabase(_stream("AB", 4)), "raw")
    out["spectrum"] = spectrum.process(TIMES[:2])  # complex64 (the default single precision)
    spectrum_double = _anxcor(output="spectrum", precision="double")
    spectrum_double.add_dataset(InMemoryDatabase(_stream("AB", 4)), "raw")
    out["spectrum_double"] = spectrum_double.process(TIMES[:2])  # complex128
    return out


def _assert_same(loaded, original):
    """Identical, and also the same dtypes, attr types and variable order (assert_identical ignores those)."""
    xr.testing.assert_identical(loaded, original)
    assert {k: v.dtype for k, v in loaded.variables.items()} == {k: v.dtype for k, v in original.variables.items()}
    assert {k: type(v) for k, v in loaded.attrs.items()} == {k: type(v) for k, v in original.attrs.items()}
    assert list(loaded.data_vars) == list(original.data_vars)
    assert list(loaded.coords) == list(original.coords)
    for name, var in loaded.variables.items():
        assert var.attrs == original[name].attrs, name
        assert not var.encoding, name  # nothing format-specific sticks to the loaded result
        assert isinstance(var.data, np.ndarray), name  # fully in memory


def _leftovers(folder):
    return sorted(p for p in os.listdir(folder) if ".tmp-" in p or ".old-" in p)


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("layout", ["stacked", "windows", "substacks", "several", "rotated", "spectrum", "spectrum_double"])
def test_round_trip_is_identical(layouts, layout, ext, tmp_path):
    result = layouts[layout]
    path = save_result(result, tmp_path / f"result{ext}")
    assert path == tmp_path / f"result{ext}"
    loaded = load_result(path)
    _assert_same(loaded, result)
    assert _leftovers(tmp_path) == []
    assert "anxcor_io" not in loaded.attrs


def test_layouts_cover_what_the_format_must_handle(layouts):
    # guard that the fixtures really exercise int64 counts, unicode labels, complex values, extra dims
    assert layouts["stacked"]["n_windows"].dtype == np.int64
    assert layouts["stacked"]["station_pair"].dtype.kind == "U"
    assert layouts["windows"]["x"].dims[0] == "window"
    assert "n_windows_one" in layouts["several"].coords and "n_windows_two" in layouts["several"].coords
    assert "T:R" in layouts["rotated"]["channel"].values
    assert layouts["spectrum"]["raw"].dtype == np.complex64 and "frequency" in layouts["spectrum"].dims
    assert layouts["spectrum_double"]["raw"].dtype == np.complex128 and "frequency" in layouts["spectrum_double"].dims
    assert layouts["stacked"]["x"].dtype == np.float32


@pytest.mark.parametrize("ext", FORMATS)
def test_object_unicode_and_bool_coords_survive(layouts, ext, tmp_path):
    result = layouts["stacked"].assign_coords(
        note=("station_pair", np.array(["Ä→B", "", "naïve"], dtype=object)),
        usable=("station_pair", np.array([True, False, True])),
        src=("station_pair", layouts["stacked"]["src"].values.astype(object)),
    )
    result.attrs["comment"] = "Piton de la Fournaise, réseau PF"
    loaded = load_result(save_result(result, tmp_path / f"r{ext}"))
    _assert_same(loaded, result)
    assert loaded["note"].values.tolist() == ["Ä→B", "", "naïve"]


@pytest.mark.parametrize("ext", FORMATS)
def test_save_and_load_warn_about_nothing(layouts, ext, tmp_path):
    # e.g. zarr v3 warns that fixed-width unicode has no stable spec: strings go as variable-length UTF-8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_result(save_result(layouts["stacked"], tmp_path / f"r{ext}"))


@pytest.mark.parametrize(
    "layout, part_dtype, stored", [("spectrum", np.float32, "<c8"), ("spectrum_double", np.float64, "<c16")]
)
def test_complex_values_are_two_marked_float_variables_on_disk(layouts, layout, part_dtype, stored, tmp_path):
    path = save_result(layouts[layout], tmp_path / "s.nc")
    with xr.open_dataset(path) as raw:
        assert "raw" not in raw.variables
        assert raw["raw__real"].dtype == part_dtype and raw["raw__imag"].dtype == part_dtype
        assert raw["raw__real"].attrs["anxcor_complex"] == "real part of raw"
        assert raw["raw__imag"].attrs["anxcor_complex"] == "imaginary part of raw"
        np.testing.assert_array_equal(raw["raw__real"].values, layouts[layout]["raw"].values.real)
        np.testing.assert_array_equal(raw["raw__imag"].values, layouts[layout]["raw"].values.imag)
        meta = json.loads(raw.attrs["anxcor_io"])
    assert meta["dtypes"]["raw"] == stored and meta["dtypes"]["n_windows"] == "<i8"


def test_netcdf3_int64_counts_come_back_as_int64(layouts, tmp_path, monkeypatch):
    import anxcor.io

    monkeypatch.setattr(anxcor.io, "_netcdf_engine", lambda: "scipy")
    path = save_result(layouts["several"], tmp_path / "r.nc")
    with xr.open_dataset(path) as raw:
        assert raw["n_windows_one"].dtype == np.int32  # netCDF-3 has no 64-bit integers
    assert load_result(path)["n_windows_one"].dtype == np.int64


@pytest.mark.parametrize("ext", FORMATS)
def test_loaded_result_saves_again_in_the_other_format(layouts, ext, tmp_path):
    other = ".zarr" if ext == ".nc" else ".nc"
    first = load_result(save_result(layouts["spectrum"], tmp_path / f"a{ext}"))
    _assert_same(load_result(save_result(first, tmp_path / f"b{other}")), layouts["spectrum"])


@pytest.mark.parametrize("ext", FORMATS)
def test_overwriting_replaces_the_old_result(layouts, ext, tmp_path):
    path = tmp_path / f"r{ext}"
    save_result(layouts["stacked"], path)
    save_result(layouts["rotated"], path)
    _assert_same(load_result(path), layouts["rotated"])
    assert os.listdir(tmp_path) == [path.name]


def _failing_writer(real_format):
    """A writer that leaves a partial file (or store) at its target, then fails."""

    def write(self, target, *args, **kwargs):
        if real_format == ".nc":
            with open(target, "wb") as f:
                f.write(b"CDF\x02partial")
        else:
            os.makedirs(target)
            with open(os.path.join(target, "zarr.json"), "w") as f:
                f.write('{"zarr_format": 3, "node_type": "group"}')
        raise OSError("disk full (simulated)")

    return write


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_write_leaves_nothing_new_and_no_temporaries(layouts, ext, existing, tmp_path, monkeypatch):
    path = tmp_path / f"r{ext}"
    if existing:
        save_result(layouts["stacked"], path)
    monkeypatch.setattr(xr.Dataset, "to_netcdf" if ext == ".nc" else "to_zarr", _failing_writer(ext))
    with pytest.raises(OSError, match="simulated"):
        save_result(layouts["rotated"], path)
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []
    if existing:
        assert os.listdir(tmp_path) == [path.name]
        _assert_same(load_result(path), layouts["stacked"])  # the older result is untouched
    else:
        assert not path.exists()
        assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("ext", FORMATS)
def test_an_interrupt_mid_write_also_cleans_up(layouts, ext, tmp_path, monkeypatch):
    writer = "to_netcdf" if ext == ".nc" else "to_zarr"
    real = getattr(xr.Dataset, writer)

    def interrupted(self, target, *args, **kwargs):
        real(self, target, *args, **kwargs)  # a complete temporary file: still must not appear at path
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, writer, interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_result(layouts["stacked"], tmp_path / f"r{ext}")
    assert os.listdir(tmp_path) == []


def test_zarr_swap_failure_puts_the_old_store_back(layouts, tmp_path, monkeypatch):
    path = tmp_path / "r.zarr"
    save_result(layouts["stacked"], path)
    real_replace = os.replace

    def replace(src, dst):
        if ".tmp-" in os.path.basename(src) and os.fspath(dst) == os.fspath(path):
            raise OSError("rename failed (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        save_result(layouts["rotated"], path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [path.name]
    _assert_same(load_result(path), layouts["stacked"])


@pytest.mark.parametrize("name", ["r.h5", "r", "r.json", "r.nc.bak"])
def test_unknown_extension_is_a_config_error_naming_the_accepted_ones(layouts, name, tmp_path):
    for call in (lambda: save_result(layouts["stacked"], tmp_path / name), lambda: load_result(tmp_path / name)):
        with pytest.raises(ConfigError, match=r"'\.nc'.*'\.zarr'"):
            call()
    assert os.listdir(tmp_path) == []


def test_extension_is_case_insensitive(layouts, tmp_path):
    _assert_same(load_result(save_result(layouts["stacked"], tmp_path / "R.NC")), layouts["stacked"])


def test_save_rejects_what_is_not_a_result(layouts, tmp_path):
    with pytest.raises(ConfigError, match="Dataset"):
        save_result(layouts["stacked"]["x"], tmp_path / "r.nc")
    with pytest.raises(ConfigError, match="anxcor_version"):
        save_result(xr.Dataset({"a": ("t", [1.0])}), tmp_path / "r.nc")
    with pytest.raises(ConfigError, match="does not exist"):
        save_result(layouts["stacked"], tmp_path / "missing" / "r.nc")
    assert os.listdir(tmp_path) == []


def test_save_will_not_delete_a_folder_that_is_not_a_zarr_store(layouts, tmp_path):
    folder = tmp_path / "photos.zarr"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a zarr store"):
        save_result(layouts["stacked"], folder)
    assert (folder / "keep.txt").read_text() == "mine"
    (tmp_path / "dir.nc").mkdir()
    with pytest.raises(ConfigError, match="folder"):
        save_result(layouts["stacked"], tmp_path / "dir.nc")


@pytest.mark.parametrize("ext", FORMATS)
def test_missing_file_is_a_data_error_with_the_path(ext, tmp_path):
    path = tmp_path / f"nothing{ext}"
    with pytest.raises(DataError, match="nothing") as info:
        load_result(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("ext", FORMATS)
def test_a_file_without_anxcor_version_is_a_data_error(ext, tmp_path):
    path = tmp_path / f"other{ext}"
    foreign = xr.Dataset({"a": ("t", np.arange(3.0))}, attrs={"title": "someone else's"})
    if ext == ".nc":
        foreign.to_netcdf(path, engine="scipy")
    else:
        foreign.to_zarr(path, consolidated=False)
    with pytest.raises(DataError, match="not an anxcor result"):
        load_result(path)


def test_a_garbage_file_is_a_data_error(tmp_path):
    path = tmp_path / "broken.nc"
    path.write_bytes(b"CDF\x02 truncated")
    with pytest.raises(DataError, match="cannot read"):
        load_result(path)


def test_a_result_written_by_plain_to_netcdf_still_loads(layouts, tmp_path):
    path = tmp_path / "plain.nc"
    layouts["stacked"].to_netcdf(path, engine="scipy")
    loaded = load_result(path)
    xr.testing.assert_identical(loaded, layouts["stacked"])
    assert isinstance(loaded.attrs["n_windows_requested"], int)


def test_facade_methods_save_and_load(tmp_path):
    anx, result = _facade_result()
    path = anx.save_result(result, tmp_path / "r.zarr")
    xr.testing.assert_identical(Anxcor.load_result(path), result)


def _facade_result():
    rng = np.random.default_rng(50)
    start = UTCDateTime(2021, 1, 1)
    stream = Stream([
        Trace(rng.standard_normal(3000), header=dict(network="XX", station=s, channel="HHZ", sampling_rate=10.0, starttime=start))
        for s in ("A", "B")
    ])
    anx = Anxcor(window_length=300.0)
    anx.set_task_kwargs("resample", dict(target_rate=10.0))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=10.0))
    anx.add_dataset(InMemoryDatabase(stream), "x")
    return anx, anx.process([start.timestamp])
