"""Command line: `run` correlates an archive from a saved configuration; `info` summarises the file."""

import subprocess
import sys

import numpy as np
import pandas as pd
import xarray as xr
from obspy import UTCDateTime

from anxcor.core import Anxcor
from anxcor.database import WaveBankDatabase
from anxcor.io import load_result


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "anxcor", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_run_then_info(tmp_path, small_archive):
    anx = Anxcor(window_length=600.0)
    anx.set_task_kwargs("resample", dict(target_rate=small_archive.rate))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=30.0))
    config = tmp_path / "run.json"
    anx.save_config(config)
    out = tmp_path / "result.nc"
    start, end = UTCDateTime(small_archive.starttime), UTCDateTime(small_archive.endtime)
    done = _cli("run", config, "--wavebank", small_archive.waveform_dir, "--coordinates", small_archive.path / "stations.csv",
                "--start", start, "--end", end, "--overlap", 0.5, "--name", "syn", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "result saved to" in done.stdout
    saved = load_result(out)

    expected_anx = Anxcor.load_config(config)
    coordinates = pd.read_csv(small_archive.path / "stations.csv", dtype={"network": str, "station": str})
    expected_anx.add_dataset(WaveBankDatabase(small_archive.waveform_dir), "syn", inventory=coordinates)
    expected = expected_anx.process(expected_anx.get_starttimes(start, end, 0.5))
    xr.testing.assert_allclose(saved["syn"], expected["syn"], rtol=1e-12, atol=1e-12 * float(np.abs(expected["syn"]).max()))
    np.testing.assert_array_equal(saved["n_windows"].values, expected["n_windows"].values)

    info = _cli("info", out)
    assert info.returncode == 0, info.stderr
    assert "10 station pairs x 9 channel pairs" in info.stdout
    assert "windows per stack 11..11" in info.stdout
    assert "failures: 0" in info.stdout


def test_run_needs_exactly_one_source(tmp_path):
    config = tmp_path / "run.json"
    Anxcor(window_length=600.0).save_config(config)
    done = _cli("run", config, "--start", "2021-01-01", "--end", "2021-01-02", "--out", tmp_path / "x.nc")
    assert done.returncode == 2
    assert "--sds ROOT or --wavebank DIRECTORY" in done.stderr
