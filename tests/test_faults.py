"""Faults under dask: a worker killed mid-run is replaced and the result is the uninterrupted one;
a database that cannot be shipped to workers is refused before any work starts."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

from anxcor.core import Anxcor
from anxcor.database import WaveBankDatabase
from anxcor.errors import ConfigError


def configured(archive):
    anx = Anxcor(window_length=600.0, read_span=600.0)
    anx.set_task_kwargs("resample", dict(target_rate=archive.rate))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=30.0))
    anx.add_dataset(WaveBankDatabase(archive.waveform_dir), "syn")
    return anx, anx.get_starttimes(archive.starttime, archive.endtime, 0.5)


def test_killed_worker_does_not_change_the_result(small_archive):
    anx, times = configured(small_archive)
    expected = anx.process(times)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        victim = sorted(client.run(os.getpid).items())[0][1]  # one worker's process id
        progress = []
        outcome = {}

        def run():
            outcome["result"] = anx.process(times, dask_client=client, progress=lambda d, t: progress.append(d))

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 60
        while not progress and time.monotonic() < deadline:
            time.sleep(0.01)
        assert progress, "the run never started"
        os.kill(victim, signal.SIGKILL)  # kill that worker mid-run; its nanny starts a new one
        at_kill = len(progress)
        thread.join(timeout=240)
        assert not thread.is_alive()
        assert len(progress) == progress[-1]  # every task reported once, to the end
        assert at_kill < progress[-1], "the worker should die before the run is over"
    xr.testing.assert_allclose(outcome["result"], expected, rtol=1e-12, atol=1e-12 * float(np.abs(expected["syn"]).max()))


class Unpicklable(WaveBankDatabase):
    """Holds a lock, which cannot travel to a worker."""

    def __init__(self, directory):
        super().__init__(directory)
        self.lock = threading.Lock()


def test_unpicklable_database_is_refused_before_work(small_archive):
    anx = Anxcor(window_length=600.0)
    anx.set_task_kwargs("resample", dict(target_rate=small_archive.rate))
    database = Unpicklable(small_archive.waveform_dir)
    anx.add_dataset(database, "syn")
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, Client(cluster) as client:
        with pytest.raises(ConfigError, match="cannot be pickled"):
            anx.process(anx.get_starttimes(small_archive.starttime, small_archive.endtime, 0.0), dask_client=client)
        assert not client.who_has()  # nothing was submitted
