"""Orientation: horizontals recorded off north come back to north/east from inventory azimuths."""

import numpy as np
import pytest
from obspy import Inventory, Stream, Trace, UTCDateTime
from obspy.core.inventory import Channel, Network, Station

from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase
from anxcor.errors import ConfigError, DataError
from anxcor.steps import OrientHorizontals, WindowContext
from anxcor.steps.orient import horizontal_to_north_east

START = UTCDateTime(2021, 1, 1)


def project(north, east, azimuth_deg):
    """What a horizontal sensor of the given azimuth records: N cos(a) + E sin(a)."""
    a = np.deg2rad(azimuth_deg)
    return north * np.cos(a) + east * np.sin(a)


def inventory_for(station, channels):
    """channels: {code: (azimuth, dip)}"""
    chans = [
        Channel(code, "", 40.0, -111.0, 1500.0, 0.0, azimuth=az, dip=dip, sample_rate=10.0, start_date=START - 86400)
        for code, (az, dip) in channels.items()
    ]
    return Inventory(networks=[Network("XX", stations=[Station(station, 40.0, -111.0, 1500.0, channels=chans)])], source="test")


@pytest.mark.parametrize("azimuths", [(30.0, 120.0), (10.0, 95.0), (200.0, 290.0)])
def test_north_east_recovered_from_projections(azimuths):
    rng = np.random.default_rng(20)
    north, east = rng.standard_normal((2, 500))
    first, second = project(north, east, azimuths[0]), project(north, east, azimuths[1])
    n, e = horizontal_to_north_east(first, second, *azimuths)
    np.testing.assert_allclose(n, north, atol=1e-12)
    np.testing.assert_allclose(e, east, atol=1e-12)


def test_parallel_horizontals_cannot_be_oriented():
    with pytest.raises(DataError, match="parallel"):
        horizontal_to_north_east(np.ones(3), np.ones(3), 40.0, 40.0)


def test_step_uses_inventory_azimuths_and_flips_a_downward_vertical():
    rng = np.random.default_rng(21)
    up, north, east = rng.standard_normal((3, 400))
    inventory = inventory_for("S1", {"HHZ": (0.0, 90.0), "HH1": (30.0, 0.0), "HH2": (120.0, 0.0)})
    data = np.stack([-up, project(north, east, 30.0), project(north, east, 120.0)])
    context = WindowContext("XX.S1", START.timestamp, ("Z", "N", "E"), ("XX.S1..HHZ", "XX.S1..HH1", "XX.S1..HH2"), inventory)
    out, rate = OrientHorizontals().apply(data, 10.0, context=context)
    assert rate == 10.0
    np.testing.assert_allclose(out, np.stack([up, north, east]), atol=1e-12)
    np.testing.assert_array_equal(data[0], -up)  # the input is not modified


def test_without_metadata_data_pass_or_are_rejected_on_request():
    data = np.random.default_rng(22).standard_normal((3, 100))
    context = WindowContext("XX.S1", START.timestamp, ("Z", "N", "E"), ("XX.S1..HHZ", "XX.S1..HH1", "XX.S1..HH2"), None)
    out, _ = OrientHorizontals().apply(data, 10.0, context=context)
    np.testing.assert_array_equal(out, data)
    with pytest.raises(DataError, match="no inventory"):
        OrientHorizontals(require_metadata=True).apply(data, 10.0, context=context)
    with pytest.raises(ConfigError, match="require_metadata"):
        OrientHorizontals(require_metadata="yes")


def test_rotated_installation_correlates_like_an_aligned_one():
    """Station B installed with its horizontals at 30/120 degrees: after orientation its
    correlations equal those of the same motion recorded by north/east sensors."""
    rng = np.random.default_rng(23)
    n = 6000
    motion = {sta: rng.standard_normal((3, n)) for sta in ("A", "B")}

    def stream(rotated):
        traces = []
        for sta, (z, north, east) in motion.items():
            if sta == "B" and rotated:
                rows = {"HHZ": z, "HH1": project(north, east, 30.0), "HH2": project(north, east, 120.0)}
            else:
                rows = {"HHZ": z, "HHN": north, "HHE": east}
            for code, values in rows.items():
                traces.append(Trace(values, header=dict(network="XX", station=sta, channel=code, sampling_rate=10.0, starttime=START)))
        return Stream(traces)

    def run(rotated):
        anx = Anxcor(window_length=500.0)
        for task in ("detrend", "taper", "bandpass", "temporal_norm", "whiten"):
            anx.set_task(task, None)
        anx.set_task_kwargs("resample", dict(target_rate=10.0))
        anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=20.0))
        inventory = inventory_for("B", {"HHZ": (0.0, -90.0), "HH1": (30.0, 0.0), "HH2": (120.0, 0.0)}) if rotated else None
        anx.add_dataset(InMemoryDatabase(stream(rotated)), "x", inventory=inventory)
        return anx.process([START.timestamp + 10.0])

    aligned, rotated = run(False), run(True)
    assert float(np.abs(aligned["x"]).max()) > 0
    np.testing.assert_allclose(rotated["x"].values, aligned["x"].values, rtol=1e-9, atol=1e-9 * float(np.abs(aligned["x"]).max()))
