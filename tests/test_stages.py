"""save_at_process / load_at_process: station-windows saved after a task, and a run started from them."""

import json

import numpy as np
import pytest
import xarray as xr
from obspy import Stream, Trace, UTCDateTime

from anxcor.core import Anxcor, AnxcorDatabase
from anxcor.database import InMemoryDatabase
from anxcor.errors import ConfigError

START = UTCDateTime(2021, 1, 1)


def _stream():
    rng = np.random.default_rng(60)
    return Stream([
        Trace(rng.standard_normal(6000), header=dict(network="XX", station=s, channel=f"HH{c}", sampling_rate=10.0, starttime=START))
        for s in ("A", "B", "C") for c in "ZNE"
    ])


class Unreadable(AnxcorDatabase):
    """Knows its stations but must never be read: proves a run started from saved files."""

    def get_stations(self):
        return ["XX.A", "XX.B", "XX.C"]

    def get_waveforms(self, **kwargs):
        raise AssertionError("the archive was read although the run starts from saved station-windows")


def _anxcor(max_tau=20.0):
    anx = Anxcor(window_length=300.0)
    anx.set_task_kwargs("resample", dict(target_rate=10.0))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=max_tau))
    return anx


TIMES = [START.timestamp + k * 150.0 for k in range(3)]


def test_saved_stage_reproduces_the_run_without_reading(tmp_path):
    anx = _anxcor()
    anx.add_dataset(InMemoryDatabase(_stream()), "x")
    anx.save_at_process(tmp_path / "stage", "whiten")
    first = anx.process(TIMES)
    files = sorted((tmp_path / "stage" / "x").rglob("*.npz"))
    assert len(files) == 3 * len(TIMES)  # one per station-window
    assert {f.parent.name for f in files} == {"XX.A", "XX.B", "XX.C"}

    again = _anxcor()
    again.add_dataset(Unreadable(), "x")
    again.load_at_process(tmp_path / "stage", "whiten")
    resumed = again.process(TIMES)
    xr.testing.assert_allclose(resumed["x"], first["x"], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(resumed["n_windows"].values, first["n_windows"].values)
    assert json.loads(resumed.attrs["channels"]) == json.loads(first.attrs["channels"])


def test_later_settings_can_change_from_a_saved_stage(tmp_path):
    anx = _anxcor()
    anx.add_dataset(InMemoryDatabase(_stream()), "x")
    anx.save_at_process(tmp_path / "stage", "temporal_norm")
    anx.process(TIMES)
    changed = _anxcor(max_tau=12.0)
    changed.set_task_kwargs("whiten", dict(freqmin=0.2, freqmax=2.0))
    changed.add_dataset(InMemoryDatabase(_stream()), "x")
    full = changed.process(TIMES)
    changed_from_stage = _anxcor(max_tau=12.0)
    changed_from_stage.set_task_kwargs("whiten", dict(freqmin=0.2, freqmax=2.0))
    changed_from_stage.add_dataset(Unreadable(), "x")
    changed_from_stage.load_at_process(tmp_path / "stage", "temporal_norm")
    xr.testing.assert_allclose(changed_from_stage.process(TIMES)["x"], full["x"], rtol=1e-12, atol=0)


def test_missing_stage_files_are_recorded(tmp_path):
    anx = _anxcor()
    anx.add_dataset(Unreadable(), "x")
    anx.load_at_process(tmp_path / "nothing", "whiten")
    result = anx.process(TIMES[:1])
    failures = json.loads(result.attrs["failures"])
    assert len(failures) == 3 and all("no saved stage" in f["reason"] for f in failures)
    assert int(result["n_windows"].max()) == 0


def test_stage_task_must_exist_and_be_active(tmp_path):
    anx = _anxcor()
    with pytest.raises(ConfigError, match="no task named"):
        anx.save_at_process(tmp_path, "whitening")
    anx.set_task("whiten", None)
    with pytest.raises(ConfigError, match="disabled"):
        anx.load_at_process(tmp_path, "whiten")
    with pytest.raises(ConfigError, match="crosscorrelate"):
        anx.save_at_task(tmp_path, "stack")


def test_save_at_task_keeps_the_correlation_stage(tmp_path):
    anx = _anxcor()
    anx.add_dataset(InMemoryDatabase(_stream()), "x")
    anx.save_at_task(tmp_path / "corr")
    first = anx.process(TIMES)
    assert list((tmp_path / "corr" / "x").glob("*.npz"))
    again = _anxcor()
    again.add_dataset(Unreadable(), "x")
    again.load_at_task(tmp_path / "corr")
    xr.testing.assert_identical(again.process(TIMES), first)
