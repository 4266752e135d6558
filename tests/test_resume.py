"""Resumable runs: a killed run restarted with the same configuration computes only what is
missing and gives the uninterrupted result; appending windows computes only the new spans."""

import subprocess
import sys
import time

import pytest
import xarray as xr
from distributed import Client, LocalCluster

import anxcor.execute
from anxcor.cache import load_partial
from anxcor.core import Anxcor
from anxcor.database import WaveBankDatabase

KILLED_RUN = r"""
import sys, time
from anxcor.core import Anxcor
from anxcor.database import WaveBankDatabase
anx = Anxcor.load_config(sys.argv[1])
anx.add_dataset(WaveBankDatabase(sys.argv[2]), "syn")
times = anx.get_starttimes(float(sys.argv[3]), float(sys.argv[4]), 0.0)
anx.process(times, cache_dir=sys.argv[5], progress=lambda done, total: time.sleep(1.0))
"""


def complete_files(cache):
    """The cache's finished files (a kill while writing may leave a hidden ``.<name>.tmp-...`` beside them)."""
    return [path for path in cache.glob("syn/*.npz") if not path.name.startswith(".")]


def configured(archive, tmp_path):
    anx = Anxcor(window_length=600.0, read_span=600.0)
    anx.set_task_kwargs("resample", dict(target_rate=archive.rate))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=30.0))
    config = anx.save_config(tmp_path / "run.json")
    anx.add_dataset(WaveBankDatabase(archive.waveform_dir), "syn")
    return anx, config


@pytest.fixture
def count_reads(monkeypatch):
    calls = []
    original = anxcor.execute.read_station_span

    def counting(db, station, start, end, pad):
        calls.append((station, start))
        return original(db, station, start, end, pad)

    monkeypatch.setattr(anxcor.execute, "read_station_span", counting)
    return calls


def test_killed_run_resumes_with_only_the_missing_spans(tmp_path, small_archive, count_reads):
    anx, config = configured(small_archive, tmp_path)
    times = anx.get_starttimes(small_archive.starttime, small_archive.endtime, 0.0)
    assert len(times) == 6  # six read spans of one window each, one pair block
    uninterrupted = anx.process(times)
    count_reads.clear()
    cache = tmp_path / "cache"
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(config), str(small_archive.waveform_dir),
         str(small_archive.starttime), str(small_archive.endtime), str(cache)],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while len(complete_files(cache)) < 2 and time.monotonic() < deadline:
        assert worker.poll() is None, worker.stderr.read().decode()
        time.sleep(0.05)
    worker.kill()
    worker.wait()
    done = complete_files(cache)
    done_before = len(done)
    assert 2 <= done_before < 6, "the run should have been killed part-way"
    for path in done:  # written under a hidden temporary name and renamed: never half-written
        assert load_partial(str(path)).counts.sum() > 0

    resumed = Anxcor.load_config(config)
    resumed.add_dataset(WaveBankDatabase(small_archive.waveform_dir), "syn")
    result = resumed.process(times, cache_dir=cache)
    n_stations = len(small_archive.stations)
    assert len(count_reads) == n_stations * (6 - done_before)  # only the missing spans were read
    xr.testing.assert_identical(result, uninterrupted)


def test_appending_new_windows_reads_only_the_new_spans(tmp_path, small_archive, count_reads):
    anx, _ = configured(small_archive, tmp_path)
    times = anx.get_starttimes(small_archive.starttime, small_archive.endtime, 0.0)
    cache = tmp_path / "cache"
    anx.process(times[:4], cache_dir=cache)  # the first 40 minutes
    count_reads.clear()
    extended = anx.process(times, cache_dir=cache)  # the whole hour
    assert len(count_reads) == len(small_archive.stations) * 2
    xr.testing.assert_identical(extended, anx.process(times))


def test_dask_run_uses_and_fills_the_cache(tmp_path, small_archive):
    anx, _ = configured(small_archive, tmp_path)
    times = anx.get_starttimes(small_archive.starttime, small_archive.endtime, 0.0)
    cache = tmp_path / "cache"
    anx.process(times[:3], cache_dir=cache)
    serial = anx.process(times)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, Client(cluster) as client:
        distributed = anx.process(times, dask_client=client, cache_dir=cache)
    assert len(list(cache.glob("syn/*.npz"))) == 6
    xr.testing.assert_allclose(distributed, serial, rtol=1e-12, atol=0)
