"""Labels, numbers and dask graph keys do not depend on Python's hash seed (separate processes)."""

import json
import os
import subprocess
import sys

import numpy as np
from obspy import Stream, Trace, UTCDateTime

from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase

SCRIPT = r"""
import hashlib, json, sys
import numpy as np
from dask.base import tokenize
from anxcor.core import Anxcor
from anxcor.datasets import synthetic_archive
from anxcor.database import WaveBankDatabase
archive = synthetic_archive(sys.argv[1], stations=3, hours=0.5, rate=5.0, seed=9)
anx = Anxcor(window_length=600.0)
anx.set_task_kwargs("resample", dict(target_rate=5.0))
anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=20.0))
anx.add_dataset(WaveBankDatabase(archive.waveform_dir, coordinates=archive.stations), "syn")
times = anx.get_starttimes(archive.starttime, archive.endtime, 0.5)
result = anx.process(times)
stream = anx.xarray_to_obspy(result)
print(json.dumps({
    "ids": [tr.id for tr in stream],
    "digest": hashlib.sha256(np.ascontiguousarray(result["syn"].values).tobytes()).hexdigest(),
    "token": tokenize(anx.config_json(), "syn", tuple(result.station_pair.values), tuple(times)),
}))
"""


def test_same_labels_numbers_and_keys_under_different_hash_seeds(tmp_path):
    outputs = []
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path / "archive")],
            env=env, capture_output=True, text=True, check=True, timeout=300,
        )
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert len(outputs[0]["ids"]) == 6 * 9
    assert outputs[0] == outputs[1] == outputs[2]


def test_skip_empty_leaves_out_pairs_without_data():
    start = UTCDateTime(2021, 1, 1)
    rng = np.random.default_rng(30)
    traces = [
        Trace(rng.standard_normal(3000), header=dict(network="XX", station=sta, channel=f"HH{c}", sampling_rate=5.0, starttime=start))
        for sta, comps in (("A", "ZNE"), ("B", "Z"))
        for c in comps
    ]
    anx = Anxcor(window_length=300.0)
    anx.set_task_kwargs("resample", dict(target_rate=5.0))
    anx.set_task_kwargs("whiten", dict(freqmin=0.1, freqmax=1.0))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=20.0))
    anx.add_dataset(InMemoryDatabase(Stream(traces)), "x")
    result = anx.process([start.timestamp])
    full, kept = anx.xarray_to_obspy(result), anx.xarray_to_obspy(result, skip_empty=True)
    assert len(full) == 3 * 9
    # A:A has all 9, A:B only the 3 with receiver Z, B:B only Z:Z
    assert len(kept) == 9 + 3 + 1
    assert all(np.isfinite(tr.data).all() for tr in kept)
    assert {tr.stats.channel for tr in kept if tr.stats.station == "A:B"} == {"Z:Z", "N:Z", "E:Z"}
