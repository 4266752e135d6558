"""process(store=...): results larger than memory go through a file and come back lazily."""

import numpy as np
import pytest
import xarray as xr

from anxcor.core import Anxcor
from anxcor.database import WaveBankDatabase
from anxcor.errors import ConfigError
from anxcor.io import load_result


def configured(archive):
    anx = Anxcor(window_length=600.0, read_span=1200.0)
    anx.set_task_kwargs("resample", dict(target_rate=archive.rate))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=30.0))
    anx.add_dataset(WaveBankDatabase(archive.waveform_dir, coordinates=archive.stations), "syn")
    return anx, anx.get_starttimes(archive.starttime, archive.endtime, 0.5)


@pytest.fixture(scope="module")
def in_memory(small_archive):
    anx, times = configured(small_archive)
    return anx.process(times)


@pytest.mark.parametrize("name", ["result.zarr", "result.nc"])
def test_stored_result_is_the_in_memory_result_read_lazily(small_archive, in_memory, tmp_path, name):
    anx, times = configured(small_archive)
    stored = anx.process(times, store=tmp_path / name)
    assert stored["syn"].chunks is not None  # dask-backed: read from the store when used
    assert float(np.abs(in_memory["syn"]).max()) > 0
    xr.testing.assert_identical(stored.compute(), in_memory)
    xr.testing.assert_identical(load_result(tmp_path / name), in_memory)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left beside it


def test_stored_substacks_match(small_archive, tmp_path):
    anx, times = configured(small_archive)
    substacks = anx.process(times, stack=4)
    stored = anx.process(times, stack=4, store=tmp_path / "sub.zarr")
    assert stored.sizes["window"] == 3
    xr.testing.assert_identical(stored.compute(), substacks)


def test_store_replaces_an_existing_result(small_archive, in_memory, tmp_path):
    anx, times = configured(small_archive)
    target = tmp_path / "again.zarr"
    anx.process(times[:2], store=target)
    xr.testing.assert_identical(anx.process(times, store=target).compute(), in_memory)


@pytest.mark.parametrize(
    ("store", "message"),
    [("result.h5", "cannot tell the format"), ("missing/result.zarr", "does not exist")],
)
def test_bad_store_fails_before_the_run(small_archive, tmp_path, store, message):
    anx, times = configured(small_archive)
    with pytest.raises(ConfigError, match=message):
        anx.process(times, store=tmp_path / store)
    assert list(tmp_path.iterdir()) == []
