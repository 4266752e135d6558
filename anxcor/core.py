"""The :class:`Anxcor` facade: holds the configuration and the databases, builds and runs the plan.

Examples
--------
>>> from anxcor.core import Anxcor
>>> anx = Anxcor(window_length=900)
>>> anx.get_starttimes(0.0, 3600.0, 0.5)[:3]
[0.0, 450.0, 900.0]
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import cloudpickle
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import tokenize
from obspy import Inventory, Stream, UTCDateTime

from . import __version__
from .allocator import empty_result, spill_array
from .database import AnxcorDatabase, as_database, coordinates_table, database_coordinates
from .errors import ConfigError, DatabaseError, DataError
from .execute import (
    CHANNEL_PAIRS,
    ProcessingSpec,
    RunPlan,
    WindowGroups,
    block_size_for,
    make_pair_blocks,
    run_dask,
    run_serial,
)
from .io import check_result_path
from .io import load_result as _load_result
from .io import save_result as _save_result
from .io import xarray_to_obspy as _xarray_to_obspy
from .progress import TextProgress
from .result import SIGN_CONVENTION, assemble_variable, failure_records, pair_geometry, repair_records
from .shared_result import ArrayWriter, shared_result
from .steps import (
    Bandpass,
    CrossCorrelate,
    OrientHorizontals,
    RemoveMeanTrend,
    Resample,
    Stack,
    Step,
    Taper,
    TemporalNorm,
    Whiten,
    as_step,
)
from .steps.base import step_description
from .steps.rotate import align_station_pairs as _align_station_pairs
from .validation import is_number, require_positive
from .windows import GAP_FILLS, plan_read_spans
from .windows import get_starttimes as _get_starttimes

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["Anxcor", "AnxcorDatabase"]

#: What anxcor accepts as a time: UTC timestamp (s), obspy UTCDateTime or an ISO string.
TimeLike = float | UTCDateTime | str

logger = logging.getLogger(__name__)

#: The default preprocessing tasks, in order, with the class that builds each.
DEFAULT_TASKS: dict[str, type] = {
    "orient": OrientHorizontals,
    "detrend": RemoveMeanTrend,
    "taper": Taper,
    "bandpass": Bandpass,
    "resample": Resample,
    "temporal_norm": TemporalNorm,
    "whiten": Whiten,
}
#: Tasks after preprocessing, with their classes.
FINAL_TASKS: dict[str, type] = {"crosscorrelate": CrossCorrelate, "stack": Stack}


class Anxcor:
    """Ambient-noise cross-correlation of one or more waveform databases.

    Parameters
    ----------
    window_length
        Length of each correlation window in seconds.
    read_span
        Seconds of data read per ``get_waveforms`` call and station (default 6 h);
        consecutive windows inside one span are cut from that read (at least one window is
        always read).
    pair_block_mb
        Memory budget in MB for one block of pairs' cross-spectra; bounds memory per task.
    gap_fill
        None (default): a component with a gap is skipped for that window. ``'interpolate'``
        or ``'mean'``: gaps adding up to at most ``max_gap_fraction`` of the window are
        filled (straight lines, or the data's mean) and the window is used. Skips are listed
        in ``result.attrs['failures']``, fills (and merged overlapping traces) in
        ``result.attrs['repairs']``.
    max_gap_fraction
        Largest fraction of a window that ``gap_fill`` may make up.

    Notes
    -----
    The default pipeline, applied to every station-window (all components at once):
    ``orient`` (:class:`~anxcor.steps.OrientHorizontals`: 1/2 or misaligned horizontals to
    north/east when the inventory gives azimuths), ``detrend`` (:class:`~anxcor.steps.RemoveMeanTrend`), ``taper``
    (:class:`~anxcor.steps.Taper`, 5% each end), ``bandpass``
    (:class:`~anxcor.steps.Bandpass`, 0.01-8 Hz), ``resample``
    (:class:`~anxcor.steps.Resample`, 20 Hz), ``temporal_norm``
    (:class:`~anxcor.steps.TemporalNorm`, running-absolute-mean over 10 s), ``whiten``
    (:class:`~anxcor.steps.Whiten`, 0.05-1 Hz); then ``crosscorrelate``
    (:class:`~anxcor.steps.CrossCorrelate`, +-100 s) and ``stack``
    (:class:`~anxcor.steps.Stack`, linear mean).
    """

    def __init__(
        self,
        window_length: float = 900.0,
        *,
        read_span: float = 21600.0,
        pair_block_mb: float = 32.0,
        gap_fill: str | None = None,
        max_gap_fraction: float = 0.05,
    ):
        self.window_length = require_positive("window_length (s)", window_length, "Anxcor")
        self.read_span = require_positive("read_span (s)", read_span, "Anxcor")
        self.pair_block_mb = require_positive("pair_block_mb (MB)", pair_block_mb, "Anxcor")
        if gap_fill not in GAP_FILLS:
            raise ConfigError(f"Anxcor gap_fill must be one of {GAP_FILLS}, got {gap_fill!r}")
        self.gap_fill = gap_fill
        self.max_gap_fraction = require_positive("max_gap_fraction", max_gap_fraction, "Anxcor")
        if self.max_gap_fraction >= 1:
            raise ConfigError(f"Anxcor needs max_gap_fraction < 1 (a fraction of the window), got {max_gap_fraction!r}")
        self._tasks: list[tuple[str, Step | None]] = [(name, cls()) for name, cls in DEFAULT_TASKS.items()]
        self._final: dict[str, Any] = {name: cls() for name, cls in FINAL_TASKS.items()}
        self._datasets: dict[str, DatasetEntry] = {}
        self._save_stage: tuple[Path, str] | None = None
        self._load_stage: tuple[Path, str] | None = None
        self._task_cache: Path | None = None
        self._station_filter: tuple[list[str] | None, list[str] | None] = (None, None)
        self._pair_filter: tuple[list[str] | None, list[str] | None] = (None, None)

    # ------------------------------------------------------------------ windows
    def get_starttimes(self, starttime: TimeLike, endtime: TimeLike, overlap: float) -> list[float]:
        """Window start times (UTC timestamps) of the windows lying fully in [starttime, endtime].

        Parameters
        ----------
        starttime, endtime
            The period: UTC timestamps in seconds, obspy ``UTCDateTime`` or ISO strings.
        overlap
            Fraction of a window shared with the next, ``0 <= overlap < 1``; windows start
            every ``window_length * (1 - overlap)`` seconds.

        Returns
        -------
        list of float
            See :func:`anxcor.windows.get_starttimes`.

        Examples
        --------
        >>> Anxcor(window_length=900).get_starttimes(0.0, 3600.0, 0.25)
        [0.0, 675.0, 1350.0, 2025.0, 2700.0]
        """
        return _get_starttimes(starttime, endtime, self.window_length, overlap)

    # ------------------------------------------------------------------ datasets
    def add_dataset(
        self, database: AnxcorDatabase | Stream | Any, name: str, inventory: Inventory | pd.DataFrame | None = None
    ) -> None:
        """Add a waveform source under ``name`` (the result's data variable name).

        Parameters
        ----------
        database
            An :class:`AnxcorDatabase`, or an obsplus ``WaveBank`` / obspy ``Stream``, which
            are wrapped.
        name
            Name of the result variable for this dataset.
        inventory
            Optional station metadata: an obspy Inventory (coordinates, and the orientation
            and response that steps may use) or a DataFrame with columns network, station,
            latitude, longitude, elevation; otherwise the database's own
            ``get_inventory()`` / ``get_coordinates()`` are used.
        """
        if not isinstance(name, str) or not name or not name.isidentifier():
            raise ConfigError(f"dataset name must be a non-empty identifier-like string, got {name!r}")
        if name in self._datasets:
            raise ConfigError(f"a dataset named {name!r} was already added; names must be unique")
        db = as_database(database)
        coordinates = coordinates_table(inventory) if inventory is not None else None
        self._datasets[name] = DatasetEntry(db, coordinates, inventory if isinstance(inventory, Inventory) else None)

    # ------------------------------------------------------------------ tasks
    @property
    def task_names(self) -> list[str]:
        """Names of all tasks, in processing order."""
        return [name for name, _ in self._tasks] + list(FINAL_TASKS)

    def get_task(self, name: str) -> Step | CrossCorrelate | Stack | None:
        """The step currently used for task ``name`` (None when disabled)."""
        if name in self._final:
            return self._final[name]
        return self._tasks[self._task_index(name)][1]

    def set_task(self, name: str, step: Step | Callable | CrossCorrelate | Stack | None) -> None:
        """Replace task ``name`` with ``step``.

        Parameters
        ----------
        name
            A task name (see :attr:`task_names`).
        step
            A :class:`~anxcor.steps.Step` (e.g. an ``XArrayProcessor`` subclass), a function
            ``f(DataArray) -> DataArray``, or None to disable the task. ``'crosscorrelate'``
            and ``'stack'`` take :class:`~anxcor.steps.CrossCorrelate` and
            :class:`~anxcor.steps.Stack` objects and cannot be disabled.
        """
        if name in FINAL_TASKS:
            if not isinstance(step, FINAL_TASKS[name]):
                raise ConfigError(f"task {name!r} needs a {FINAL_TASKS[name].__name__}, got {type(step).__name__}")
            self._final[name] = step
            return
        index = self._task_index(name)
        self._tasks[index] = (name, None if step is None else as_step(step))

    def set_task_kwargs(self, name: str, kwargs: dict) -> None:
        """Change some parameters of task ``name``, keeping the others.

        Examples
        --------
        >>> anx = Anxcor(900)
        >>> anx.set_task_kwargs('whiten', dict(freqmin=0.1, freqmax=1.0))
        >>> anx.get_task('whiten').freqmin
        0.1
        """
        if not isinstance(kwargs, dict):
            raise ConfigError(f"set_task_kwargs needs a dict of parameters, got {type(kwargs).__name__}")
        current = self.get_task(name)
        cls = type(current) if current is not None else DEFAULT_TASKS.get(name)
        if cls is None:
            raise ConfigError(f"task {name!r} is disabled and has no default class; use set_task")
        params = {} if current is None else current.get_params()
        unknown = set(kwargs) - set(params) if current is not None else set()
        if unknown:
            raise ConfigError(
                f"task {name!r} ({cls.__name__}) has no parameter(s) {sorted(unknown)}; "
                f"valid ones: {sorted(params)}"
            )
        try:
            step = cls(**{**params, **kwargs})
        except TypeError as exc:
            raise ConfigError(f"cannot build {cls.__name__} for task {name!r}: {exc}") from None
        self.set_task(name, step)

    #: The original ANXCOR name of :meth:`set_task_kwargs`.
    set_process_kwargs = set_task_kwargs

    def add_process(
        self, step: Step | Callable, *, name: str | None = None, before: str | None = None, after: str | None = None
    ) -> None:
        """Insert a custom preprocessing step.

        Parameters
        ----------
        step
            A :class:`~anxcor.steps.Step` or a function ``f(DataArray) -> DataArray`` (see
            :class:`~anxcor.steps.XArrayProcessor` for what the DataArray holds).
        name
            Task name; default the class (or ``functionstep``) name in lower case.
        before, after
            Name of the task to insert it before or after; by default it runs after all
            other preprocessing, just before correlation.
        """
        step = as_step(step)
        if before is not None and after is not None:
            raise ConfigError("give at most one of before= and after=")
        if name is None:
            base = type(step).__name__.lower()
            name, k = base, 1
            while name in self.task_names:
                k += 1
                name = f"{base}_{k}"
        elif name in self.task_names:
            raise ConfigError(f"a task named {name!r} exists already; pick another name")
        if before is not None:
            index = self._task_index(before)
        elif after is not None:
            index = self._task_index(after) + 1
        else:
            index = len(self._tasks)
        self._tasks.insert(index, (name, step))

    def _task_index(self, name: str) -> int:
        for index, (task, _) in enumerate(self._tasks):
            if task == name:
                return index
        raise ConfigError(f"no task named {name!r}; tasks are {self.task_names}")

    # ------------------------------------------------------------------ stages on disk
    def save_at_process(self, directory: str | Path, task: str) -> None:
        """Save every station-window as it leaves preprocessing task ``task``.

        Files go to ``directory/<dataset>/<NET.STA>/<window start>.npz`` (see
        :mod:`anxcor.stages`); a later run can start from them with :meth:`load_at_process`.
        Pass ``task=None`` to stop saving.
        """
        self._save_stage = None if task is None else (Path(directory), self._active_task(task))

    def load_at_process(self, directory: str | Path, task: str) -> None:
        """Start from station-windows saved after ``task`` by :meth:`save_at_process`.

        Nothing is read from the databases and the tasks up to ``task`` are skipped; a
        station-window without a file is skipped and recorded. Pass ``task=None`` to read
        the archive again.
        """
        self._load_stage = None if task is None else (Path(directory), self._active_task(task))

    def save_at_task(self, directory: str | Path, task: str = "crosscorrelate") -> None:
        """Keep the correlation stage (per read span and pair block) in ``directory``.

        The same as passing ``cache_dir=directory`` to every :meth:`process`: a rerun with
        :meth:`load_at_task` (or the same call) loads what is there and computes the rest.
        """
        if task != "crosscorrelate":
            raise ConfigError(f"save_at_task keeps the 'crosscorrelate' stage; got task {task!r}")
        self._task_cache = Path(directory)

    #: Resuming from the correlation stage uses the same folder: see :meth:`save_at_task`.
    load_at_task = save_at_task

    def _active_task(self, task: str) -> str:
        index = self._task_index(task)
        if self._tasks[index][1] is None:
            raise ConfigError(f"task {task!r} is disabled; saving or loading at it would mean nothing")
        return task

    def _stage(self, stage, name: str) -> tuple[str, int] | None:
        """(folder for this dataset, index among the active steps) of a saved stage."""
        if stage is None:
            return None
        directory, task = stage
        active = [t for t, step in self._tasks if step is not None]
        if task not in active:
            raise ConfigError(f"task {task!r} (for a saved stage) is not an active preprocessing task: {active}")
        return str(directory / name), active.index(task)

    # ------------------------------------------------------------------ filters
    def set_station_filter(self, include: list[str] | str | None = None, exclude: list[str] | str | None = None) -> None:
        """Keep only stations matching ``include`` and none of ``exclude``.

        Parameters
        ----------
        include, exclude
            fnmatch patterns on ``'NET.STA'`` (e.g. ``'XX.S00*'``); None means no constraint.
        """
        self._station_filter = (_patterns(include, "include"), _patterns(exclude, "exclude"))

    def set_pair_filter(self, include: list[str] | str | None = None, exclude: list[str] | str | None = None) -> None:
        """Keep only station pairs matching ``include`` and none of ``exclude``.

        Parameters
        ----------
        include, exclude
            fnmatch patterns on ``'NET.SRC:NET.REC'`` (e.g. ``'*:XX.S001'``); None means no
            constraint. Autocorrelations are pairs like ``'XX.S001:XX.S001'``.
        """
        self._pair_filter = (_patterns(include, "include"), _patterns(exclude, "exclude"))

    def get_station_combinations(self, name: str | None = None) -> pd.DataFrame:
        """The station pairs that will be correlated (autocorrelations included).

        Parameters
        ----------
        name
            One dataset's pairs; default the union over all datasets.

        Returns
        -------
        pandas.DataFrame
            Columns ``src``, ``rec`` and ``station_pair``, sorted.
        """
        names = [name] if name is not None else list(self._datasets)
        if not names:
            raise ConfigError("no dataset added yet; call add_dataset first")
        pairs = sorted({p for n in names for p in self._pairs(self._stations(n))})
        return pd.DataFrame(
            {"src": [s for s, _ in pairs], "rec": [r for _, r in pairs], "station_pair": [f"{s}:{r}" for s, r in pairs]}
        )

    def _stations(self, name: str) -> list[str]:
        if name not in self._datasets:
            raise ConfigError(f"no dataset named {name!r}; added: {list(self._datasets)}")
        db = self._datasets[name][0]
        try:
            stations = db.get_stations()
        except Exception as exc:  # a broken database must say which call failed
            raise DatabaseError(f"{type(db).__name__}.get_stations() raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(stations, (list, tuple)) or not all(isinstance(s, str) and "." in s for s in stations):
            raise DataError(
                f"{type(db).__name__}.get_stations() must return a list of 'NET.STA' strings, got {stations!r:.200}"
            )
        include, exclude = self._station_filter
        return sorted({s for s in stations if _keep(s, include, exclude)})

    def _pairs(self, stations: list[str]) -> list[tuple[str, str]]:
        include, exclude = self._pair_filter
        return [
            (a, b)
            for i, a in enumerate(stations)
            for b in stations[i:]
            if _keep(f"{a}:{b}", include, exclude)
        ]

    # ------------------------------------------------------------------ running
    def process(
        self,
        starttimes: Sequence[float],
        dask_client: Client | None = None,
        *,
        stack: bool | int = True,
        progress: bool | Callable[[int, int], None] = False,
        cache_dir: str | Path | None = None,
        store: str | Path | None = None,
    ) -> xr.Dataset:
        """Correlate every dataset over the windows starting at ``starttimes``.

        Parameters
        ----------
        starttimes
            Window start times (UTC timestamps in seconds), e.g. from :meth:`get_starttimes`.
        dask_client
            A ``dask.distributed.Client``: run on its cluster (same numbers as serial).
        stack
            True: mean over all windows; False: keep every window (``window`` dim); an
            integer k: means over consecutive groups of k windows.
        progress
            True for a text progress bar on stderr, or a function ``f(done, total)``.
        cache_dir
            A folder for partial results (one file per read span and pair block). A run that
            was interrupted resumes from it: rerun with the same configuration and start
            times and only what is missing is read and computed; rerun with more start times
            (new days) and only the new spans are. The cache assumes the archive's data for
            the windows already done do not change: delete the folder if they do.
        store
            For results larger than memory: a ``.zarr`` store (or ``.nc`` file) to write the
            result to. The blocks go, as they finish, into a temporary file beside it (hidden,
            deleted at the end) instead of memory; then the result is saved there with
            :func:`~anxcor.io.save_result` (an existing one is replaced) and returned read
            lazily from it (dask arrays, see :func:`~anxcor.io.load_result`). Needs free disk
            space for about twice the result.

        Returns
        -------
        xarray.Dataset
            See the result layout in the documentation; ``attrs`` hold the configuration,
            the processing history and a failures record (JSON strings).
        """
        times = self._check_times(starttimes)
        stack = _check_stack(stack)
        if not self._datasets:
            raise ConfigError("no dataset added; call add_dataset(database, name) before process")
        if dask_client is not None and (
            not callable(getattr(dask_client, "get", None)) or not hasattr(dask_client, "scheduler_info")
        ):
            raise ConfigError(f"dask_client must be a dask.distributed.Client, got {type(dask_client).__name__}")
        spec = self._spec(keep_windows=stack is not True or not self._final["stack"].is_linear)
        if spec.correlator.output == "spectrum" and spec.keep_windows:
            raise ConfigError(
                "crosscorrelate output='spectrum' gives the linear stack's mean cross-spectrum: use "
                "stack=True with the 'linear' stack method, or output='lags'"
            )
        groups = _window_groups(times, stack, spec)
        store = None if store is None else check_result_path(store)  # before the run, not after it
        allocate = empty_result if store is None else partial(spill_array, store)
        config = self.config_json()  # serialised once: cache keys, graph keys and attrs share it
        reporter = TextProgress() if progress is True else (progress or None)
        variables, counts, failures, repairs, channels = {}, {}, [], [], {}
        for name, (db, extra_coordinates, extra_inventory) in self._datasets.items():
            stations = self._stations(name)
            if not stations:
                raise DataError(f"dataset {name!r}: the database lists no stations (after filters)")
            pairs = self._pairs(stations)
            inventory = extra_inventory if extra_inventory is not None else db.get_inventory()
            plan = self._plan(stations, pairs, times, spec, inventory, groups)
            cache = cache_dir if cache_dir is not None else self._task_cache
            if cache is not None:
                plan = _with_cache(plan, cache, name, config, stack)
            dataset_spec = replace(spec, save_stage=self._stage(self._save_stage, name), load_stage=self._stage(self._load_stage, name))
            logger.info(
                "dataset %r: %d stations, %d pairs x 9 channel pairs, %d windows in %d read spans, %d pair blocks",
                name, len(stations), len(pairs), len(times), len(plan.spans), len(plan.blocks),
            )
            # before the run (0.01 s for 8,256 pairs): on dask, finished tasks are released only
            # as the blocks are collected, so nothing else should happen meanwhile
            coordinates = extra_coordinates if extra_coordinates is not None else database_coordinates(db, inventory)
            geometry = pair_geometry(pairs, coordinates)
            # linear stack: the blocks are written into the result as they finish (by the serial runner,
            # or by dask workers on this machine, see anxcor.shared_result); others are placed
            destination, shared, writer = None, None, None
            if groups is None:
                shape = (len(pairs), len(CHANNEL_PAIRS), spec.output_width)
                shared = shared_result(shape, spec.output_dtype, beside=store)
                destination = allocate(shape, spec.output_dtype) if shared is None else shared.array
            try:
                if dask_client is None:
                    if destination is not None:
                        writer = ArrayWriter(destination) if shared is None else shared.writer()
                    block_results = run_serial(plan, dataset_spec, db, progress=reporter, destination=writer)
                else:
                    shipped = _pickled_database(db, name)
                    token = tokenize(
                        config, name, plan.stations, plan.starttimes, type(db).__qualname__, shipped,
                        dataset_spec.save_stage, dataset_spec.load_stage, plan.cache_paths,
                    )
                    block_results = run_dask(
                        plan, dataset_spec, db, dask_client, token, progress=reporter,
                        target=None if shared is None else shared.target,
                    )
                variable, n_windows, dataset_failures, dataset_repairs, dataset_channels = assemble_variable(
                    block_results, plan.blocks, pairs, *_last_axis(spec), group_starts=_group_starts(groups, times),
                    data=destination, allocate=allocate,
                )
            finally:
                for handle in (writer, shared):
                    if handle is not None:
                        handle.close()
            variables[name] = (variable, geometry)
            counts[name] = n_windows
            failures.extend(failure_records(name, dataset_failures, len(times)))
            repairs.extend(repair_records(name, dataset_repairs))
            channels[name] = dataset_channels
            if int(n_windows.max()) == 0:
                reasons = pd.Series([f[3] for f in dataset_failures]).value_counts().head(3)
                logger.warning(
                    "dataset %r: no window had usable data for any pair; most common reasons: %s",
                    name, dict(reasons) if len(reasons) else "no data returned by the database",
                )
        if hasattr(reporter, "close"):
            reporter.close()
        result = self._dataset(variables, counts, failures, repairs, channels, times, spec, stack, config)
        if store is None:
            return result
        _save_result(result, store)
        del result, variables  # the temporary files go with their arrays
        return _load_result(store, lazy=True)

    def _check_times(self, starttimes) -> list[float]:
        try:
            times = [float(t) for t in np.atleast_1d(np.asarray(starttimes, dtype=object))]
        except (TypeError, ValueError):
            raise ConfigError("starttimes must be a list of UTC timestamps in seconds (floats)") from None
        if not times:
            raise ConfigError("starttimes is empty; get_starttimes(t0, t1, overlap) makes a list")
        if not np.isfinite(times).all():
            raise ConfigError("starttimes contain NaN or infinite values")
        if len(set(times)) != len(times):
            raise ConfigError("starttimes contain duplicates; each window must start at a different time")
        return times

    def _spec(self, keep_windows: bool) -> ProcessingSpec:
        steps = tuple(step for _, step in self._tasks if step is not None)
        correlator: CrossCorrelate = self._final["crosscorrelate"]
        resamples = [i for i, step in enumerate(steps) if isinstance(step, Resample)]
        if not resamples:
            raise ConfigError(
                "the pipeline has no resample step, so stations could have different rates; "
                "keep the 'resample' task (set_task_kwargs('resample', dict(target_rate=...)))"
            )
        rate = float(steps[resamples[-1]].target_rate)
        for step in steps[resamples[-1] + 1 :]:
            rate = float(step.output_rate(rate))  # e.g. a Decimate after the resample
            low = getattr(step, "freqmin", None)
            if is_number(low) and low >= 0.5 * rate:
                raise ConfigError(
                    f"{type(step).__name__} freqmin={low} Hz is not below the Nyquist frequency "
                    f"{0.5 * rate} Hz of the {rate} Hz target rate; lower freqmin or raise the resample target_rate"
                )
        if correlator.max_tau_shift >= self.window_length:
            raise ConfigError(
                f"max_tau_shift ({correlator.max_tau_shift} s) must be shorter than window_length "
                f"({self.window_length} s); set_task_kwargs('crosscorrelate', dict(max_tau_shift=...))"
            )
        n_samples = int(round(self.window_length * rate))
        nfft = correlator.nfft(n_samples, rate)
        return ProcessingSpec(
            window_length=self.window_length,
            steps=steps,
            correlator=correlator,
            sampling_rate=rate,
            n_samples=n_samples,
            nfft=nfft,
            max_lag=correlator.max_lag(rate),
            bins=correlator.band_bins(nfft, rate, steps),
            keep_windows=keep_windows,
            stack=self._final["stack"],
            gap_fill=self.gap_fill,
            max_gap_fraction=self.max_gap_fraction,
        )

    def _plan(self, stations, pairs, times, spec, inventory=None, groups=None) -> RunPlan:
        index = {s: i for i, s in enumerate(stations)}
        pair_index = np.array([(index[a], index[b]) for a, b in pairs], dtype=np.int64).reshape(-1, 2)
        first, last = spec.band
        size = block_size_for(
            len(stations), last - first, spec.output_width, self.pair_block_mb * 1e6,
            spec.correlator.complex_dtype.itemsize, spec.output_dtype.itemsize,
        )
        return RunPlan(
            stations=tuple(stations),
            starttimes=tuple(times),
            spans=tuple(plan_read_spans(times, self.window_length, self.read_span)),
            blocks=tuple(make_pair_blocks(pair_index, size)),
            inventories=_station_inventories(stations, inventory),
            groups=groups,
        )

    def _dataset(self, variables, counts, failures, repairs, channels, times, spec, stack, config) -> xr.Dataset:
        data_vars, coords = {}, {}
        for name, (variable, geometry) in variables.items():
            data_vars[name] = variable
            if geometry is not None:
                pairs = variable["station_pair"].values
                for key, values in geometry.items():
                    known = xr.DataArray(values, dims="station_pair", coords={"station_pair": pairs})
                    coords[key] = known if key not in coords else coords[key].combine_first(known)
        dataset = xr.Dataset(data_vars)
        labels = dataset["station_pair"].values
        dataset = dataset.assign_coords(
            src=("station_pair", [label.split(":")[0] for label in labels]),
            rec=("station_pair", [label.split(":")[1] for label in labels]),
        )
        for key, values in coords.items():
            dataset = dataset.assign_coords({key: values.reindex(station_pair=labels)})
        for name, n_windows in counts.items():
            coord = "n_windows" if len(counts) == 1 else f"n_windows_{name}"
            dataset = dataset.assign_coords({coord: n_windows.reindex(station_pair=labels, fill_value=0)})
        if "distance" in dataset.coords:
            dataset["distance"].attrs["units"] = "km"
            dataset["azimuth"].attrs["units"] = "degrees"
            dataset["backazimuth"].attrs["units"] = "degrees"
        if "time" in dataset.coords:
            dataset["time"].attrs.update(units="s", long_name="lag time")
        else:
            dataset["frequency"].attrs.update(units="Hz", long_name="frequency of the cross-spectrum")
        dataset.attrs.update(
            anxcor_version=__version__,
            window_length=self.window_length,
            sampling_rate=spec.sampling_rate,
            max_tau_shift=spec.correlator.max_tau_shift,
            n_windows_requested=len(times),
            stack=_stack_description(self._final["stack"].method, stack),
            sign_convention=SIGN_CONVENTION,
            starttimes=json.dumps(sorted(times)),
            config=config,
            history=json.dumps(self._history()),
            failures=json.dumps(failures),
            repairs=json.dumps(repairs),
            channels=json.dumps(channels, sort_keys=True),
        )
        return dataset

    # ------------------------------------------------------------------ description
    def _history(self) -> list[dict]:
        steps = [{"task": name, **step_description(step)} for name, step in self._tasks if step is not None]
        steps += [{"task": name, **step_description(self._final[name])} for name in FINAL_TASKS]
        return steps

    def config_json(self) -> str:
        """The configuration (options, every task with its parameters, filters) as JSON text.

        The same text :meth:`save_config` writes (see :mod:`anxcor.config`), and what
        ``result.attrs['config']`` records; :meth:`from_config_json` builds an Anxcor from it.
        Unlike :meth:`save_config` it never fails: a step that cannot be saved (e.g. defined
        in a notebook) is described by its name, and loading that text raises ``ConfigError``.
        """
        from .config import config_text

        return config_text(self, strict=False)

    # ------------------------------------------------------------------ persistence
    def save_config(self, path: str | Path) -> Path:
        """Save every option, task (with its step's parameters) and filter as versioned JSON.

        Databases are not saved (they are code): add them again after :meth:`load_config`.
        The file is written to a temporary name and renamed. Raises ``ConfigError`` naming
        the task when a step cannot be loaded back, e.g. a class or function defined in a
        notebook (``__main__``), inside a function, or a lambda: define it in an importable
        module instead. See :mod:`anxcor.config` for the format.

        Examples
        --------
        >>> import os, tempfile
        >>> anx = Anxcor(window_length=600.0)
        >>> path = anx.save_config(os.path.join(tempfile.mkdtemp(), "run.json"))
        >>> Anxcor.load_config(path).config_json() == anx.config_json()
        True
        """
        from .config import save_config

        return save_config(self, path)

    @classmethod
    def load_config(cls, path: str | Path) -> Anxcor:
        """A new Anxcor from a file written by :meth:`save_config`: ``anx = Anxcor.load_config('run.json')``.

        It returns a new object (calling it on an instance leaves that instance as it is); add
        the databases with :meth:`add_dataset`. Raises ``ConfigError`` naming the key for an
        unknown or mistyped key, option, step or parameter, or an unsupported version.
        """
        from .config import load_config

        return load_config(path, cls=cls)

    @classmethod
    def from_config_json(cls, text: str) -> Anxcor:
        """A new Anxcor from configuration JSON text, e.g. ``result.attrs['config']``."""
        from .config import anxcor_from_config_json

        return anxcor_from_config_json(text, cls=cls)

    # ------------------------------------------------------------------ conversion
    @staticmethod
    def save_result(result: xr.Dataset, path: str | Path) -> Path:
        """Write a result to ``.nc`` (netCDF) or ``.zarr``, atomically; see :func:`anxcor.io.save_result`."""
        return _save_result(result, path)

    @staticmethod
    def load_result(path: str | Path) -> xr.Dataset:
        """Read a result written by :meth:`save_result`; see :func:`anxcor.io.load_result`."""
        return _load_result(path)

    @staticmethod
    def align_station_pairs(result: xr.Dataset) -> xr.Dataset:
        """Rotate every pair's 9 channel pairs from ZNE to ZRT; see :func:`anxcor.steps.rotate.align_station_pairs`."""
        return _align_station_pairs(result)

    @staticmethod
    def xarray_to_obspy(result: xr.Dataset, *, skip_empty: bool = False):
        """One obspy Trace per dataset x station pair x channel pair; see :func:`anxcor.io.xarray_to_obspy`."""
        return _xarray_to_obspy(result, skip_empty=skip_empty)

    def __repr__(self) -> str:
        tasks = ", ".join(f"{name}={step!r}" for name, step in self._tasks)
        return f"Anxcor(window_length={self.window_length}, datasets={list(self._datasets)}, tasks=[{tasks}])"


class DatasetEntry(NamedTuple):
    """A database added with :meth:`Anxcor.add_dataset`, with the metadata given beside it."""

    database: AnxcorDatabase
    coordinates: pd.DataFrame | None
    inventory: Inventory | None


def _with_cache(plan: RunPlan, cache_dir, name: str, config: str, stack) -> RunPlan:
    """The plan with one cache file per (read span, pair block).

    Files are keyed by the configuration, the dataset name, the block's station pairs and the
    span's window starts, not by the database object: resuming may use another object over
    the same archive (or none that can be read, see ``load_at_task``).
    """
    from .cache import partial_path

    run_token = tokenize(config, str(stack), plan.groups is None)
    paths = tuple(
        tuple(
            partial_path(cache_dir, name, run_token, list(plan.stations), block, [plan.starttimes[w] for w in span.windows])
            for block in plan.blocks
        )
        for span in plan.spans
    )
    return replace(plan, cache_paths=paths)


def _stack_description(method: str, stack) -> str:
    """What ``attrs['stack']`` says: the method and over which windows."""
    if stack is False:
        return "none (every window kept)"
    return f"{method} over {'all windows' if stack is True else f'groups of {stack} consecutive windows'}"


def _last_axis(spec: ProcessingSpec) -> tuple[np.ndarray, str]:
    """The result's last axis: lags in seconds, or frequencies in Hz for cross-spectra."""
    if spec.correlator.output == "spectrum":
        return spec.correlator.frequencies(spec.n_samples, spec.sampling_rate), "frequency"
    return spec.correlator.lags(spec.sampling_rate), "time"


def _window_groups(times: list[float], stack, spec: ProcessingSpec) -> WindowGroups | None:
    """Which windows each output holds, in time order (None: linear mean over all windows)."""
    if not spec.keep_windows:
        return None
    order = [int(i) for i in np.argsort(times, kind="stable")]
    if stack is True:  # a non-linear stack over every window
        return WindowGroups((tuple(order),), combine=True, squeeze=True)
    if stack is False:
        return WindowGroups(tuple((w,) for w in order), combine=False, squeeze=False)
    return WindowGroups(tuple(tuple(order[i : i + stack]) for i in range(0, len(order), stack)), combine=True, squeeze=False)


def _group_starts(groups: WindowGroups | None, times: list[float]) -> list[float] | None:
    """The ``window`` coordinate: start of each output's first window (None: no window dim)."""
    if groups is None or groups.squeeze:
        return None
    return [times[members[0]] for members in groups.groups]


def _station_inventories(stations: list[str], inventory: Inventory | None) -> tuple:
    """Each station's part of ``inventory`` (None where it has none); empty without inventory."""
    if inventory is None:
        return ()
    if not isinstance(inventory, Inventory):
        raise ConfigError(f"get_inventory() must return an obspy Inventory or None, got {type(inventory).__name__}")
    subsets = []
    for station in stations:
        network, _, code = station.partition(".")
        subset = inventory.select(network=network, station=code)
        subsets.append(subset if len(subset) else None)
    return tuple(subsets)


def _check_stack(stack):
    if stack is None or stack is True:
        return True
    if stack is False:
        return False
    if isinstance(stack, (int, np.integer)) and not isinstance(stack, bool) and stack >= 1:
        return int(stack)
    raise ConfigError(f"stack must be True, False or a positive integer (windows per substack), got {stack!r}")


def _pickled_database(db, name: str) -> bytes:
    """The database as dask will ship it (cloudpickle), or a ConfigError saying why it cannot go."""
    try:
        return cloudpickle.dumps(db)  # what dask uses: classes defined in a notebook are fine
    except Exception as exc:  # any pickling failure means it cannot be shipped
        raise ConfigError(
            f"dataset {name!r}: the database object ({type(db).__name__}) cannot be pickled, so it cannot "
            f"be sent to dask workers ({type(exc).__name__}: {exc}). Keep only paths/settings on it and "
            "open files or connections inside get_waveforms."
        ) from None


def _patterns(values, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple, set)) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{what} filter needs strings (fnmatch patterns), got {values!r}")
    return list(values)


def _keep(label: str, include, exclude) -> bool:
    if include is not None and not any(fnmatch.fnmatchcase(label, p) for p in include):
        return False
    return not (exclude is not None and any(fnmatch.fnmatchcase(label, p) for p in exclude))
