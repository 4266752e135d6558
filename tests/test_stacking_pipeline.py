"""Non-linear stacks through process(): same as stacking the kept windows by hand; dask agrees."""

import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

from anxcor.core import Anxcor
from anxcor.database import WaveBankDatabase
from anxcor.steps import Stack


def configured(archive, method="linear"):
    anx = Anxcor(window_length=600.0)
    anx.set_task_kwargs("resample", dict(target_rate=archive.rate))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=30.0))
    anx.set_task_kwargs("stack", dict(method=method))
    anx.add_dataset(WaveBankDatabase(archive.waveform_dir, coordinates=archive.stations), "syn")
    return anx, anx.get_starttimes(archive.starttime, archive.endtime, 0.5)


@pytest.fixture(scope="module")
def kept_windows(small_archive):
    anx, times = configured(small_archive)
    return anx.process(times, stack=False)


@pytest.mark.parametrize("method", ["pws", "nth_root", "robust", "selective", "tfpws"])
def test_process_stack_equals_combining_the_kept_windows(small_archive, kept_windows, method):
    anx, times = configured(small_archive, method)
    result = anx.process(times)
    assert "window" not in result.dims
    windows = kept_windows["syn"].transpose("window", "channel", "station_pair", "time").values
    expected, used = Stack(method=method).combine(windows, small_archive.rate)
    got = result["syn"].transpose("channel", "station_pair", "time").values
    assert got.dtype == np.float32  # the stack is computed in float64 and stored in the result's precision
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7 * np.abs(expected).max())
    np.testing.assert_array_equal(result["n_windows"].transpose("channel", "station_pair").values, used)
    history = result.attrs["history"]
    assert f'"method": "{method}"' in history
    assert result.attrs["stack"] == f"{method} over all windows"


def test_substacks_with_a_nonlinear_method(small_archive, kept_windows):
    anx, times = configured(small_archive, "pws")
    result = anx.process(times, stack=4)
    assert result.sizes["window"] == 3
    assert result.attrs["stack"] == "pws over groups of 4 consecutive windows"
    np.testing.assert_array_equal(result["window"].values, kept_windows["window"].values[::4])
    windows = kept_windows["syn"].transpose("window", "channel", "station_pair", "time").values
    for g in range(3):
        expected, _ = Stack(method="pws").combine(windows[4 * g : 4 * g + 4], small_archive.rate)
        got = result["syn"].isel(window=g).transpose("channel", "station_pair", "time").values
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7 * np.abs(expected).max())


def test_nonlinear_stack_on_dask_matches_serial(small_archive):
    anx, times = configured(small_archive, "pws")
    serial = anx.process(times)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, Client(cluster) as client:
        distributed = anx.process(times, dask_client=client)
    xr.testing.assert_allclose(distributed, serial, rtol=1e-10, atol=1e-12 * float(np.abs(serial["syn"]).max()))


def test_pws_sharpens_the_synthetic_travel_time_peak(small_archive, kept_windows):
    """Phase weighting keeps the coherent +-d/v arrivals and suppresses the incoherent rest."""
    linear = kept_windows["syn"].mean("window")
    anx, times = configured(small_archive, "pws")
    pws = anx.process(times)["syn"]
    lags = linear["time"].values
    ratios = []
    for label in linear.station_pair.values:
        src, rec = str(label).split(":")
        if src == rec:
            continue
        expected = small_archive.expected_lag(src, rec)
        near = (np.abs(np.abs(lags) - expected) < 2.0)
        far = np.abs(lags) > expected + 8.0
        if far.sum() < 50:
            continue
        for trace in (linear, pws):
            values = trace.sel(channel="Z:Z", station_pair=label).values
            ratios.append(np.abs(values[near]).max() / np.sqrt(np.mean(values[far] ** 2)))
    linear_snr, pws_snr = np.array(ratios[0::2]), np.array(ratios[1::2])
    assert len(linear_snr) >= 3
    assert np.median(pws_snr / linear_snr) > 1.5
