"""Runners: serial and dask.distributed give the same numbers; the graph has the promised shape."""

import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

from anxcor.core import Anxcor
from anxcor.database import WaveBankDatabase
from anxcor.execute import (
    GATHER_MB,
    PREP_TASKS_PER_SPAN,
    _collect_blocks,
    build_graph,
    correlate_and_finalize,
    gather_batch,
    prep_groups,
    prep_station_group,
    run_dask,
)
from anxcor.shared_result import shared_result


def configured(archive, precision="single", **options):
    anx = Anxcor(window_length=600.0, read_span=1200.0, **options)
    anx.set_task_kwargs("resample", dict(target_rate=archive.rate))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=30.0, precision=precision))
    anx.add_dataset(WaveBankDatabase(archive.waveform_dir, coordinates=archive.stations), "syn")
    return anx, anx.get_starttimes(archive.starttime, archive.endtime, 0.5)


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def serial_result(small_archive):
    anx, times = configured(small_archive)
    return anx.process(times)


@pytest.fixture(scope="module")
def serial_double(small_archive):
    """The serial run in double precision, for the tests that compare different groupings of the
    same sums to rounding (in single precision they differ by about 1e-7 of the peak)."""
    anx, times = configured(small_archive, precision="double")
    return anx.process(times)


def test_dask_client_gives_the_serial_numbers(small_archive, serial_result, client):
    anx, times = configured(small_archive)
    distributed = anx.process(times, dask_client=client)
    assert float(np.abs(serial_result["syn"]).max()) > 0
    scale = float(np.abs(serial_result["syn"]).max())
    xr.testing.assert_allclose(distributed, serial_result, rtol=1e-10, atol=1e-12 * scale)
    assert distributed.attrs == serial_result.attrs


def test_workers_get_the_allocator_plugin(small_archive, client):
    from anxcor.workers import AllocatorPlugin

    anx, times = configured(small_archive)
    anx.process(times, dask_client=client)
    names = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert all(AllocatorPlugin.name in plugins for plugins in names.values()) and len(names) == 2


@pytest.mark.parametrize("memory", ["memory file", "mapped array"])
def test_mapped_results_hold_the_same_numbers(small_archive, serial_result, client, monkeypatch, memory):
    """Results in a memory file (anxcor.shared_result, the default on Linux) or, without one, mapped by
    anxcor.allocator.empty_result (forced here for a small run) are ordinary arrays."""
    import mmap

    import anxcor.allocator
    import anxcor.core

    monkeypatch.setattr(anxcor.allocator, "MAPPED_RESULT_BYTES", 0)
    if memory == "mapped array":
        monkeypatch.setattr(anxcor.core, "shared_result", lambda *args, **kwargs: None)
    anx, times = configured(small_archive)
    for result in (anx.process(times), anx.process(times, dask_client=client)):
        values = result["syn"].values
        owner = values
        while isinstance(owner, np.ndarray) and owner.base is not None:
            owner = owner.base
        assert isinstance(owner.obj if isinstance(owner, memoryview) else owner, mmap.mmap)
        xr.testing.assert_equal(result, serial_result)
        values[0, 0, 0] = 123.0  # writable, like any result
        assert float(result["syn"][0, 0, 0]) == 123.0


def test_unstacked_and_substacked_runs_average_to_the_stack(small_archive, serial_double, client):
    anx, times = configured(small_archive, precision="double")
    windows = anx.process(times, stack=False, dask_client=client)
    assert windows.sizes["window"] == len(times) == 11
    scale = float(np.abs(serial_double["syn"]).max())  # near-zero lags: an absolute floor at rounding level
    np.testing.assert_allclose(windows["syn"].mean("window"), serial_double["syn"], rtol=1e-10, atol=1e-12 * scale)
    substacks = anx.process(times, stack=4)
    assert substacks.sizes["window"] == 3  # 4 + 4 + 3 windows
    assert substacks["n_windows"].sel(channel="Z:Z").values[:, 0].tolist() == [4, 4, 3]
    weighted = (substacks["syn"] * substacks["n_windows"]).sum("window") / substacks["n_windows"].sum("window")
    np.testing.assert_allclose(weighted, serial_double["syn"], rtol=1e-10, atol=1e-12 * scale)


def test_small_pair_blocks_and_read_spans_do_not_change_the_numbers(small_archive, serial_double):
    anx, times = configured(small_archive, precision="double", pair_block_mb=0.5)
    anx.read_span = 600.0
    plan = anx._plan(anx._stations("syn"), anx._pairs(anx._stations("syn")), times, anx._spec(False))
    assert len(plan.blocks) > 1 and len(plan.spans) == len(times)
    scale = float(np.abs(serial_double["syn"]).max())
    xr.testing.assert_allclose(anx.process(times), serial_double, rtol=1e-10, atol=1e-12 * scale)


def test_dask_blocks_fetched_in_batches_give_the_serial_numbers(small_archive, serial_double, client, monkeypatch):
    import anxcor.execute

    anx, times = configured(small_archive, precision="double", pair_block_mb=0.5)
    plan = anx._plan(anx._stations("syn"), anx._pairs(anx._stations("syn")), times, anx._spec(False))
    assert len(plan.blocks) > 2
    monkeypatch.setattr(anxcor.execute, "gather_batch", lambda plan, spec: 2)
    fetched = []
    gather = client.gather

    def recording_gather(futures, *args, **kwargs):
        fetched.append(len(futures))
        return gather(futures, *args, **kwargs)

    monkeypatch.setattr(client, "gather", recording_gather)
    distributed = anx.process(times, dask_client=client)
    assert sum(fetched) == len(plan.blocks) and max(fetched) == 2 and fetched.count(1) <= 1
    scale = float(np.abs(serial_double["syn"]).max())
    xr.testing.assert_allclose(distributed, serial_double, rtol=1e-10, atol=1e-12 * scale)


class _FakeFuture:
    def __init__(self, key, client, status="finished"):
        self.key, self.client, self.status, self.released = key, client, status, False

    def release(self):
        self.released = True
        self.status = "cancelled"  # as distributed reports a released future


class _FakeClient:
    """Gathers finished futures; raises, as distributed does, for failed or cancelled ones."""

    def __init__(self):
        self.calls = []

    def gather(self, futures):
        assert not any(f.released for f in futures)
        self.calls.append([f.key for f in futures])
        failed = [f for f in futures if f.status != "finished"]
        if failed:
            raise RuntimeError(f"{failed[0].key} {failed[0].status}")
        return [f"result of {f.key}" for f in futures]


def _futures(client, order):
    return [_FakeFuture(key, client, status) for key, status in order]


def test_finished_blocks_are_fetched_in_batches():
    client = _FakeClient()
    futures = _futures(client, [("c1", "finished"), ("f1", "finished"), ("c2", "finished"), ("f2", "finished"),
                                ("f3", "finished"), ("f4", "finished"), ("f5", "finished")])
    position = {f.key: int(f.key[1]) for f in futures if f.key.startswith("f")}
    progress = []
    results = list(_collect_blocks(iter(futures), position, len(futures), lambda d, t: progress.append((d, t)), 2))
    assert client.calls == [["f1", "f2"], ["f3", "f4"], ["f5"]]
    assert results == [(position[k], f"result of {k}") for k in ("f1", "f2", "f3", "f4", "f5")]
    assert all(f.released for f in futures)
    assert progress == [(done, len(futures)) for done in range(1, len(futures) + 1)]


@pytest.mark.parametrize("status", ["error", "cancelled"])
def test_a_failed_block_raises_at_once_and_every_future_is_released(status):
    client = _FakeClient()
    futures = _futures(client, [("f1", "finished"), ("f2", status), ("f3", "finished"), ("f4", "finished")])
    position = {f.key: int(f.key[1]) for f in futures}
    taken = []

    def pending():
        for future in futures:
            taken.append(future.key)
            yield future

    with pytest.raises(RuntimeError, match=f"f2 {status}"):
        list(_collect_blocks(pending(), position, len(futures), None, 8))
    assert client.calls == [["f1", "f2"]]
    assert taken == ["f1", "f2"]  # raised before the next block was waited for
    assert futures[0].released and futures[1].released


def test_gather_batch_fits_the_budget_of_rows():
    from types import SimpleNamespace

    spec = SimpleNamespace(output_width=4001, output_dtype=np.dtype("float32"))
    block_bytes = 10 * 9 * 4001 * 4
    plan = SimpleNamespace(groups=None, blocks=[SimpleNamespace(pairs=np.arange(10)), SimpleNamespace(pairs=np.arange(3))])
    assert gather_batch(plan, spec) == int(GATHER_MB * 1024**2 // block_bytes)
    grouped = SimpleNamespace(groups=SimpleNamespace(groups=((0, 1), (2,), (3,)), squeeze=False), blocks=plan.blocks)
    assert gather_batch(grouped, spec) == int(GATHER_MB * 1024**2 // (3 * block_bytes))
    huge = SimpleNamespace(groups=None, blocks=[SimpleNamespace(pairs=np.arange(10**6))])
    assert gather_batch(huge, spec) == 1


def test_graph_prepares_each_span_in_groups_of_stations(small_archive):
    anx, times = configured(small_archive)
    spec = anx._spec(False)
    stations = anx._stations("syn")
    plan = anx._plan(stations, anx._pairs(stations), times, spec)
    graph, finals = build_graph(plan, spec, anx._datasets["syn"][0], token="t")
    kinds = [key[0].rsplit("-", 1)[0] for key in graph if isinstance(key, tuple)]
    assert kinds.count("anxcor-read") == 0  # reading happens inside the prep task
    n_groups = min(len(stations), PREP_TASKS_PER_SPAN)
    assert kinds.count("anxcor-prep") == n_groups * len(plan.spans)
    for s in range(len(plan.spans)):  # every station prepared once per span
        tasks = [graph[key] for key in graph if isinstance(key, tuple) and key[0] == "anxcor-prep-t" and key[2] == s]
        assert all(task[0] is prep_station_group for task in tasks)
        assert [station for task in tasks for station in task[3]] == list(plan.stations)
    # linear stack: the last span's correlation and the block's finalisation are one task
    assert kinds.count("anxcor-corr") == (len(plan.spans) - 1) * len(plan.blocks)
    assert len(finals) == len(plan.blocks)
    assert all(graph[key][0] is correlate_and_finalize for key in finals)
    again, _ = build_graph(plan, spec, anx._datasets["syn"][0], token="t")
    assert list(again) == list(graph)


def test_station_groups_are_consecutive_and_even():
    groups = prep_groups(40, 16)
    assert len(groups) == 16 and [i for g in groups for i in g] == list(range(40))
    assert {len(g) for g in groups} == {2, 3}
    assert [list(g) for g in prep_groups(3, 16)] == [[0], [1], [2]]


def test_workers_on_this_machine_write_into_the_result(small_archive, serial_result, client):
    """With the client's result file, finished blocks come back without rows (the workers wrote them);
    a worker that cannot reach the file (here: told it is on another machine) sends them instead."""
    from dataclasses import replace

    if shared_result((1, 1), "f4") is None:
        pytest.skip("result memory files need Linux (memfd_create and /proc)")
    anx, times = configured(small_archive)
    spec = anx._spec(False)
    stations = anx._stations("syn")
    pairs = anx._pairs(stations)
    plan = anx._plan(stations, pairs, times, spec)
    expected = serial_result["syn"].transpose("station_pair", "channel", "time").values
    shared = shared_result(expected.shape, spec.output_dtype)
    try:
        for target, sent in ((shared.target, False), (replace(shared.target, boot_id="elsewhere", nonce="x"), True)):
            shared.array[...] = 0
            blocks = list(run_dask(plan, spec, anx._datasets["syn"][0], client, token="t", target=target))
            assert len(blocks) == len(plan.blocks)
            assert all((part.data is not None) == sent for _, part in blocks)
            if sent:
                for index, part in blocks:
                    shared.array[plan.blocks[index].pairs] = part.data
            np.testing.assert_array_equal(shared.array, expected)
    finally:
        shared.close()


def test_graph_is_named_by_the_run_token(monkeypatch):
    """client.get gets dask's graph expression named by the token (dask need not tokenize the graph),
    or, with a dask without that class, the graph itself."""
    import sys

    from anxcor.execute import _named_graph

    graph = {"a": 1, "b": (sum, ["a", "a"])}
    named = _named_graph(graph, "anxcor-run-token")
    assert named is not graph and sorted(named.__dask_keys__()) == ["a", "b"]
    assert named._name.endswith("anxcor-run-token")
    monkeypatch.setitem(sys.modules, "dask._expr", None)  # import fails
    assert _named_graph(graph, "anxcor-run-token") is graph


def test_stored_dask_result_is_the_serial_result(small_archive, serial_result, client, tmp_path):
    anx, times = configured(small_archive)
    stored = anx.process(times, dask_client=client, store=tmp_path / "dask.zarr")
    assert stored["syn"].chunks is not None
    xr.testing.assert_identical(stored.compute(), serial_result)
    assert [p.name for p in tmp_path.iterdir()] == ["dask.zarr"]


def test_dask_counts_the_bytes_of_prepared_windows_and_partials(small_archive):
    """dask's memory accounting and task placement see what prep outputs and partials really hold
    (by default it counted any object it does not know as ``sys.getsizeof``: 56 bytes a window)."""
    import pickle

    from dask.sizeof import sizeof

    from anxcor.execute import correlate_block

    anx, times = configured(small_archive)
    spec = anx._spec(False)
    stations = anx._stations("syn")
    plan = anx._plan(stations, anx._pairs(stations), times, spec)
    span, db = plan.spans[0], anx._datasets["syn"][0]
    starts = tuple(plan.starttimes[w] for w in span.windows)
    block = plan.blocks[0]
    names = tuple(plan.stations[i] for i in block.stations)
    group = prep_station_group(spec, db, names, span, starts, *(None,) * len(names))
    # the reference: the bytes pickle writes for the same objects (arrays dominate both)
    assert len(group) >= 2 and 0.8 < sizeof(group) / len(pickle.dumps(group)) < 1.25
    partial = correlate_block(spec, block, *group)
    assert 0.8 < sizeof(partial) / len(pickle.dumps(partial)) < 1.25
    assert partial.data.nbytes + partial.counts.nbytes <= sizeof(partial)


def test_prepared_spectra_own_their_memory_with_all_frequencies_kept(small_archive):
    """With every bin kept, a window's spectra are not a view of the padded 4-row transform
    (which would hold a hidden fourth row for as long as the window lives, unseen by dask)."""
    anx, times = configured(small_archive)
    anx.set_task_kwargs("crosscorrelate", dict(band=None))
    spec = anx._spec(False)
    stations = anx._stations("syn")
    plan = anx._plan(stations, anx._pairs(stations), times, spec)
    span, db = plan.spans[0], anx._datasets["syn"][0]
    starts = tuple(plan.starttimes[w] for w in span.windows)
    (windows,) = prep_station_group(spec, db, (plan.stations[0],), span, starts, None)
    prepared = [w for w in windows if w.spectra is not None]
    assert prepared and spec.band == (0, spec.nfft // 2 + 1)
    assert all(w.spectra.base is None and w.spectra.dtype == np.complex64 for w in prepared)
