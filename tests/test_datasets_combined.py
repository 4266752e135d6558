"""Several datasets in one run: one variable each over the union of station pairs (the documented rule)."""

import numpy as np
import pandas as pd
from obspy import Stream, Trace, UTCDateTime

from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase

START = UTCDateTime(2021, 1, 1)


def _stream(stations, seed):
    rng = np.random.default_rng(seed)
    return Stream([
        Trace(rng.standard_normal(3000), header=dict(network="XX", station=s, channel="HHZ", sampling_rate=10.0, starttime=START))
        for s in stations
    ])


def _anxcor():
    anx = Anxcor(window_length=300.0)
    anx.set_task_kwargs("resample", dict(target_rate=10.0))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=10.0))
    return anx


COORDS = pd.DataFrame({"network": ["XX"] * 3, "station": ["A", "B", "C"], "latitude": [40.0, 40.1, 40.2], "longitude": [-111.0, -111.0, -111.1]})


def test_each_dataset_is_its_own_variable_over_the_union_of_pairs():
    one, two = _stream(["A", "B"], 1), _stream(["B", "C"], 2)
    both = _anxcor()
    both.add_dataset(InMemoryDatabase(one, coordinates=COORDS), "one")
    both.add_dataset(InMemoryDatabase(two, coordinates=COORDS), "two")
    result = both.process([START.timestamp])
    assert list(result.data_vars) == ["one", "two"]
    assert list(result.station_pair.values) == ["XX.A:XX.A", "XX.A:XX.B", "XX.B:XX.B", "XX.B:XX.C", "XX.C:XX.C"]
    assert "n_windows" not in result.coords
    zz = dict(channel="Z:Z")
    assert result["n_windows_one"].sel(**zz).values.tolist() == [1, 1, 1, 0, 0]
    assert result["n_windows_two"].sel(**zz).values.tolist() == [0, 0, 1, 1, 1]
    assert np.isnan(result["one"].sel(station_pair="XX.B:XX.C", **zz)).all()
    # geometry comes from whichever dataset knows the pair
    assert np.isfinite(result["distance"]).all()
    for name, stream in (("one", one), ("two", two)):
        alone = _anxcor()
        alone.add_dataset(InMemoryDatabase(stream), name)
        single = alone.process([START.timestamp])
        for label in single.station_pair.values:
            np.testing.assert_array_equal(result[name].sel(station_pair=label).values, single[name].sel(station_pair=label).values)
    # the same station B in both datasets holds different data, so B:B differs between variables
    assert not np.allclose(result["one"].sel(station_pair="XX.B:XX.B", **zz), result["two"].sel(station_pair="XX.B:XX.B", **zz))
