"""The original ANXCOR README's Basic Usage code runs against anxcor as written.

The code blocks are read from ``../shared/seed/ORIGINAL_README.md`` and executed in order;
only the placeholders are filled in (the data directory and the start time), ``np`` is
provided because the README uses it without importing it, and each block is dedented as
IPython does for a notebook cell (the last block starts with a stray space).
"""

import re
import textwrap

import numpy as np
from conftest import shared_path
from obspy import Stream

PLACEHOLDER_DIR = "'..path/to/your/seismic/data..'"
PLACEHOLDER_START = "starttime_stamp = 0.0"


def basic_usage_blocks():
    text = shared_path("seed", "ORIGINAL_README.md").read_text()
    section = text.split("## Basic Usage", 1)[1].split("## Known Issues", 1)[0]
    # each block is a notebook cell; IPython drops a cell's common indentation, so do we
    return [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", section, flags=re.S)]


def test_basic_usage_runs_serially_and_on_dask_with_same_numbers(small_archive):
    blocks = basic_usage_blocks()
    assert len(blocks) == 7, "the README's Basic Usage section changed shape"
    code = "\n".join(blocks)
    assert PLACEHOLDER_DIR in code and PLACEHOLDER_START in code
    code = code.replace(PLACEHOLDER_DIR, repr(str(small_archive.waveform_dir)))
    code = code.replace(PLACEHOLDER_START, f"starttime_stamp = {small_archive.starttime!r}")
    namespace = {"np": np, "__name__": "__main__"}
    exec(compile(code, "ORIGINAL_README.md", "exec"), namespace)
    try:
        serial_run, dask_run = _rerun_serial(namespace), namespace["result"]
    finally:
        namespace["client"].close()
    assert namespace["times"] == [small_archive.starttime + k * 675.0 for k in range(5)]
    n_stations = len(small_archive.stations)
    assert dask_run["test"].sizes == {"channel": 9, "station_pair": n_stations * (n_stations + 1) // 2, "time": 4001}
    assert (dask_run["n_windows"] == 5).all()
    np.testing.assert_allclose(dask_run["test"], serial_run["test"], rtol=1e-10)
    streams = namespace["streams"]
    assert isinstance(streams, Stream) and len(streams) == 9 * dask_run.sizes["station_pair"]


def _rerun_serial(namespace):
    """The README's serial result is overwritten by its dask run; compute it again."""
    return namespace["anxcor"].process(namespace["times"])


def test_readme_wrapper_class_copes_with_short_traces_and_rounded_delta(small_archive):
    """The wrapper drops each trace's last sample and floors delta to the millisecond: the
    windows that need the missing edge sample still count, and the numbers equal a run on the
    untouched archive (delta 0.1 s is exact to the millisecond here) up to that one sample:
    the last window's final sample is held at its neighbour's value (measured: 2.4e-5 of the
    peak)."""
    from anxcor.database import WaveBankDatabase

    blocks = basic_usage_blocks()
    namespace = {"np": np}
    exec(compile(blocks[0] + "\n" + blocks[1], "ORIGINAL_README.md", "exec"), namespace)  # running the documented code is the test
    runs = {}
    for name, database in (("wrapped", namespace["WavebankWrapper"](str(small_archive.waveform_dir))),
                           ("plain", WaveBankDatabase(small_archive.waveform_dir))):
        anx = namespace["Anxcor"](window_length=15 * 60.0)
        anx.add_dataset(database, name)
        times = anx.get_starttimes(small_archive.starttime, small_archive.starttime + 3600, 0.25)
        runs[name] = anx.process(times)
    wrapped, plain = runs["wrapped"], runs["plain"]
    assert (wrapped["n_windows"] == 5).all(), wrapped.attrs["failures"]
    scale = float(np.abs(plain["plain"]).max())
    np.testing.assert_allclose(wrapped["wrapped"].values, plain["plain"].values, rtol=0, atol=1e-4 * scale)
    assert not np.array_equal(wrapped["wrapped"].values, plain["plain"].values)  # the edge sample did differ
