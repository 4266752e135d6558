"""One plan, two runners: the same pure task functions run serially or on a dask cluster.

The work of one dataset is a graph of these tasks:

- ``prep``: per station and read span one ``get_waveforms`` call (:mod:`anxcor.windows`),
  then per window of the span: grid, preprocess, FFT once (all components at once), keeping
  only the frequency band the correlation uses (on dask, a task prepares a group of stations);
- ``corr``: one per read span and pair block: all pairs x 9 channel pairs of the block; for the
  linear stack the cross-spectra summed over the span's windows (only the frequency band the
  correlation keeps), otherwise each window's correlations;
- ``sum``: per pair block, the spans' partial results added in span order (a chain, so serial
  and dask runs add in the same order and give the same numbers; without a cache folded
  into the correlation tasks, see :func:`correlate_and_add`), or for kept windows one
  concatenation;
- ``final``: per pair block, the mean and one inverse FFT per pair and channel pair (linear
  stack), or the stacks of window groups. Without a cache the linear stack's final task also
  correlates the last read span (:func:`correlate_and_finalize`).

Pair blocks are products of station blocks (stations ``A`` x stations ``B``), sized so a
block's cross-spectra stay within a memory budget; a ``corr`` task needs the spectra of
``|A| + |B|`` stations only.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import pairwise
from operator import getitem

import numpy as np
import scipy.fft
from dask.sizeof import sizeof

from .allocator import tune_allocator
from .errors import DataError
from .shared_result import ResultTarget, ResultWriter, attach_result
from .stages import load_stage, save_stage, stage_path
from .steps.base import Step, WindowContext
from .steps.correlate import CrossCorrelate, lags_from_cross_spectra, window_summed_cross_spectra
from .steps.rowfft import transform_rows
from .steps.stack import Stack
from .windows import COMPONENTS, ReadSpan, StationRecord, grid_component, read_station_span

__all__ = [
    "ProcessingSpec",
    "PairBlock",
    "StationWindow",
    "BlockPartial",
    "make_pair_blocks",
    "prep_station_window",
    "prep_station_span",
    "prep_station_group",
    "correlate_block",
    "add_partials",
    "correlate_and_add",
    "correlate_and_finalize",
    "finalize_into",
    "finalize_block",
    "WindowGroups",
    "run_serial",
    "run_dask",
]

logger = logging.getLogger(__name__)

N_CHANNEL_PAIRS = len(COMPONENTS) ** 2
#: Channel-pair labels, source component first, in the order of the result's ``channel`` dim.
CHANNEL_PAIRS: tuple[str, ...] = tuple(f"{a}:{b}" for a in COMPONENTS for b in COMPONENTS)
#: Failure reason of a component the database returned no trace for (collapsed in the result
#: to one record per station and component when it is absent from every window).
ABSENT_COMPONENT = "component absent from the data"
#: Seconds read before and after each span, so edge samples and sub-sample offsets are covered.
READ_PAD_S = 1.0


@dataclass(frozen=True)
class ProcessingSpec:
    """Everything a task needs to know, fixed before the run starts (picklable, immutable)."""

    window_length: float
    steps: tuple[Step, ...]
    correlator: CrossCorrelate
    sampling_rate: float
    n_samples: int
    nfft: int
    max_lag: int
    keep_windows: bool
    gap_fill: str | None = None
    max_gap_fraction: float = 0.05
    stack: Stack = field(default_factory=Stack)
    save_stage: tuple[str, int] | None = None  # (folder, index of the step after which to save)
    load_stage: tuple[str, int] | None = None  # (folder, index of the step the saved data left)
    bins: tuple[int, int] | None = None  # frequency bins kept, [first, last); None: all

    @property
    def band(self) -> tuple[int, int]:
        """First and one-past-last frequency bin the correlation keeps."""
        return self.bins if self.bins is not None else (0, self.nfft // 2 + 1)

    @property
    def output_width(self) -> int:
        """Length of the result's last axis: lags, or the full frequency grid for cross-spectra."""
        return self.nfft // 2 + 1 if self.correlator.output == "spectrum" else 2 * self.max_lag + 1

    @property
    def output_dtype(self) -> np.dtype:
        """dtype of the result: complex cross-spectra, or real correlations."""
        return self.correlator.complex_dtype if self.correlator.output == "spectrum" else self.correlator.real_dtype


@dataclass(frozen=True)
class WindowGroups:
    """How kept windows are stacked at the end: window indices of each output, in time order.

    ``squeeze`` means a single group whose stack replaces the ``window`` dim (a non-linear
    stack over all windows); ``combine`` False means the windows are kept as they are.
    """

    groups: tuple[tuple[int, ...], ...]
    combine: bool
    squeeze: bool


@dataclass(frozen=True)
class PairBlock:
    """A block of station pairs: sources from one station block, receivers from another.

    Attributes
    ----------
    stations
        Global indices of the stations whose spectra the block needs, ascending.
    src, rec
        Per pair, positions into ``stations`` of the source and receiver.
    pairs
        Per pair, position in the run's global pair list.
    """

    stations: tuple[int, ...]
    src: np.ndarray
    rec: np.ndarray
    pairs: np.ndarray

    def sides(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Source stations, each pair's source among them, receiver stations, each pair's receiver.

        The station lists are positions into ``stations``, ascending: the rows and columns of
        the block's matrix products (:func:`~anxcor.steps.correlate.window_summed_cross_spectra`).
        """
        sources, source_of_pair = np.unique(self.src, return_inverse=True)
        receivers, receiver_of_pair = np.unique(self.rec, return_inverse=True)
        return sources, source_of_pair, receivers, receiver_of_pair


@dataclass
class StationWindow:
    """One station-window after preprocessing: spectra of valid components, plus failures."""

    window: int
    spectra: np.ndarray | None  # (3, kept bins) complex, zero rows for missing components
    valid: np.ndarray  # (3,) bool
    failures: tuple[tuple, ...] = ()
    source_spectra: np.ndarray | None = None  # the station's spectra as a source, when they differ
    repairs: tuple[tuple, ...] = ()  # (station, time, component, what): gaps filled, traces merged
    channels: tuple[tuple[str, str, str], ...] = ()  # (station, component, SEED id) of the traces used


@dataclass
class BlockPartial:
    """Partial result of one pair block: summed (or per-window) correlations and counts."""

    # summed cross-spectra (kept bins, source stations, 3, receiver stations, 3) of the block's
    # sources x receivers, or (windows, pairs, 9, lags) when keeping windows
    data: np.ndarray
    counts: np.ndarray  # (pairs, 9) int, or (windows, pairs, 9)
    windows: np.ndarray  # window indices held (keep_windows only; empty otherwise)
    failures: frozenset = field(default_factory=frozenset)
    repairs: frozenset = field(default_factory=frozenset)
    channels: frozenset = field(default_factory=frozenset)  # (station, component, SEED id) used


@sizeof.register(StationWindow)
def _sizeof_station_window(window: StationWindow) -> int:
    """Bytes a prepared station-window holds, for dask's memory accounting and task placement.

    Without it dask counts any object it does not know as ``sys.getsizeof``: 56 bytes for a
    window whose spectra take 20 kB, 6.5 kB for a prep task's 2 MB output.
    """
    arrays = (window.spectra, window.source_spectra, window.valid)
    return _held_bytes(window, arrays, (window.failures, window.repairs, window.channels))


@sizeof.register(BlockPartial)
def _sizeof_block_partial(partial: BlockPartial) -> int:
    """Bytes a block's partial result holds (see :func:`_sizeof_station_window`): 9 MB of sums at 12 x 12 stations."""
    arrays = (partial.data, partial.counts, partial.windows)
    return _held_bytes(partial, arrays, (partial.failures, partial.repairs, partial.channels))


def _held_bytes(holder, arrays, records) -> int:
    """An object's own size, its arrays' bytes (None: absent) and dask's estimate of its records."""
    return sys.getsizeof(holder) + sum(a.nbytes for a in arrays if a is not None) + sum(sizeof(r) for r in records)


def make_pair_blocks(pairs: np.ndarray, block_size: int) -> list[PairBlock]:
    """Group pairs ``(i, j)`` by ``(i // block_size, j // block_size)`` station blocks."""
    blocks = []
    keys = pairs // block_size
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    unique_keys, starts = np.unique(keys[order], axis=0, return_index=True)
    bounds = [*list(starts), len(order)]
    for k in range(len(unique_keys)):
        members = order[bounds[k] : bounds[k + 1]]
        src_global, rec_global = pairs[members, 0], pairs[members, 1]
        stations = np.unique(np.concatenate([src_global, rec_global]))
        blocks.append(
            PairBlock(
                stations=tuple(int(s) for s in stations),
                src=np.searchsorted(stations, src_global),
                rec=np.searchsorted(stations, rec_global),
                pairs=members,
            )
        )
    return blocks


def block_size_for(
    n_stations: int, n_freq: int, n_out: int, budget_bytes: float, complex_bytes: int = 16, out_bytes: int = 8
) -> int:
    """Largest station-block size whose pair block fits ``budget_bytes``.

    A pair costs its 9 cross-spectra of ``n_freq`` bins plus its 9 outputs of ``n_out``
    values of ``out_bytes`` each (lags, or the full frequency grid for cross-spectrum
    output): what the block's final task holds at once.
    """
    per_pair = N_CHANNEL_PAIRS * (n_freq * complex_bytes + n_out * out_bytes)
    return max(1, min(n_stations, int(math.isqrt(int(budget_bytes // per_pair)))))


def _failure(station: str, window_start: float, component: str, reason: str) -> tuple:
    return (station, float(window_start), component, reason)


def prep_station_window(
    record: StationRecord, window: int, window_start: float, spec: ProcessingSpec, inventory=None
) -> StationWindow:
    """Grid, preprocess and Fourier-transform one station-window (all components).

    ``inventory`` (the station's obspy Inventory, or None) reaches steps through their
    :class:`~anxcor.steps.base.WindowContext`.
    """
    valid = np.zeros(len(COMPONENTS), dtype=bool)
    repairs = [(record.station, time, component, what) for time, component, what in record.notes]
    if spec.load_stage is None and record.error is not None:
        return StationWindow(window, None, valid, (_failure(record.station, window_start, "*", record.error),))
    if spec.load_stage is None and not record.pieces:
        return StationWindow(window, None, valid, (_failure(record.station, window_start, "*", "no data"),))
    failures = []
    data = np.zeros((len(COMPONENTS), spec.n_samples))
    first_step, channel_ids = 0, dict(record.channel_ids)
    if spec.load_stage is not None:
        folder, index = spec.load_stage
        path = stage_path(folder, record.station, window_start)
        if not os.path.exists(path):
            reason = f"no saved stage at {path}"
            return StationWindow(window, None, valid, (_failure(record.station, window_start, "*", reason),))
        stage_groups, channel_ids = load_stage(path)
        first_step = index + 1
    else:
        stage_groups = _gridded_groups(record, window_start, spec, failures, repairs)
    save_after = None if spec.save_stage is None else spec.save_stage[1]
    saved = []
    for rows, values, rate in stage_groups:
        context = WindowContext(
            station=record.station,
            starttime=window_start,
            components=tuple(COMPONENTS[r] for r in rows),
            channels=tuple(channel_ids.get(COMPONENTS[r], "") for r in rows),
            inventory=inventory,
        )
        final = replace(context, output_dtype=spec.correlator.real_dtype)  # the last step's (unless saved)
        try:
            if save_after is not None:
                values, rate = _run_steps(spec.steps[first_step : save_after + 1], values, rate, context)
                saved.append((rows, values, rate))
                values, rate = _run_steps(spec.steps[save_after + 1 :], values, rate, context, final)
            else:
                values, rate = _run_steps(spec.steps[first_step:], values, rate, context, final)
            _check_output(values, rate, spec)
        except DataError as exc:
            failures.extend(_failure(record.station, window_start, COMPONENTS[r], str(exc)) for r in rows)
            continue
        finite = np.isfinite(values).all(axis=-1)
        for local, row in enumerate(rows):
            if finite[local]:
                data[row] = values[local]
                valid[row] = True
            else:
                failures.append(_failure(record.station, window_start, COMPONENTS[row], "non-finite after preprocessing"))
    if saved:
        save_stage(stage_path(spec.save_stage[0], record.station, window_start), saved, channel_ids)
    if not valid.any():
        return StationWindow(window, None, valid, tuple(failures), repairs=tuple(repairs))
    channels = tuple((record.station, COMPONENTS[r], channel_ids.get(COMPONENTS[r], "")) for r in np.flatnonzero(valid))
    as_receiver, as_source = spec.correlator.spectra(data, spec.nfft, spec.sampling_rate)
    first, last = spec.band
    kept = np.array(as_receiver[..., first:last])  # a copy: never a view holding padding rows or cut bins
    source = None if as_source is as_receiver else np.array(as_source[..., first:last])
    return StationWindow(window, kept, valid, tuple(failures), source, tuple(repairs), channels)


def prep_station_span(
    spec: ProcessingSpec, db, station: str, span: ReadSpan, starttimes: tuple[float, ...], inventory=None
) -> tuple[StationWindow, ...]:
    """Read one station over a read span and prepare each of the span's windows.

    ``starttimes`` are the start times of ``span.windows``. Reading and preparing in one task
    keeps the raw samples (the largest data of a run) inside the task that reads them.
    """
    record = _read_or_stub(spec, db, station, span)
    return tuple(prep_station_window(record, w, t, spec, inventory) for w, t in zip(span.windows, starttimes, strict=True))


#: Tasks preparing the stations of one read span on a dask cluster (groups of consecutive
#: stations). One task per station made 128 prep tasks and ~1,600 dependencies at 128
#: stations; 16 groups cut the run's CPU by 0.4-0.6 s of ~8 s (4, 8 or 32 groups: the same
#: within the noise). The spans of a long run give the cluster many such tasks at once.
PREP_TASKS_PER_SPAN = 16


def prep_station_group(
    spec: ProcessingSpec, db, stations: tuple[str, ...], span: ReadSpan, starttimes: tuple[float, ...], *inventories
) -> tuple[tuple[StationWindow, ...], ...]:
    """:func:`prep_station_span` for several stations in one task (``inventories``: one per station)."""
    return tuple(
        prep_station_span(spec, db, station, span, starttimes, inventory)
        for station, inventory in zip(stations, inventories, strict=True)
    )


def prep_groups(n_stations: int, n_groups: int) -> list[range]:
    """Consecutive station indices in ``min(n_stations, n_groups)`` groups of near-equal size."""
    n_groups = max(1, min(n_stations, n_groups))
    bounds = np.linspace(0, n_stations, n_groups + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in pairwise(bounds)]


def _read_or_stub(spec: ProcessingSpec, db, station: str, span: ReadSpan) -> StationRecord:
    """Read a station over a span, or, when starting from a saved stage, read nothing."""
    if spec.load_stage is not None:
        return StationRecord(station)
    return read_station_span(db, station, span.start, span.end, READ_PAD_S)


def _gridded_groups(record: StationRecord, window_start: float, spec: ProcessingSpec, failures: list, repairs: list):
    """The station-window's components on the window grid, grouped by sampling rate."""
    groups: dict[tuple[float, int], list[tuple[int, np.ndarray]]] = {}
    for row, component in enumerate(COMPONENTS):
        if component not in record.pieces:
            failures.append(_failure(record.station, window_start, component, ABSENT_COMPONENT))
            continue
        samples, rate, reason = grid_component(
            record.pieces[component], window_start, spec.window_length, spec.gap_fill, spec.max_gap_fraction
        )
        if samples is None:
            failures.append(_failure(record.station, window_start, component, reason))
            continue
        if reason is not None:
            repairs.append(_failure(record.station, window_start, component, reason))
        groups.setdefault((rate, samples.size), []).append((row, samples))
    return [
        (tuple(row for row, _ in members), np.vstack([samples for _, samples in members]), rate)
        for (rate, _), members in groups.items()
    ]


def _run_steps(steps, data, rate, context, last_context=None):
    """Run ``steps`` in turn; the last one gets ``last_context`` when given (see ``WindowContext.output_dtype``)."""
    for index, step in enumerate(steps):
        current = last_context if last_context is not None and index == len(steps) - 1 else context
        data, rate = step.apply(data, rate, context=current)
    return data, rate


def _check_output(values: np.ndarray, rate: float, spec: ProcessingSpec) -> None:
    if abs(rate - spec.sampling_rate) > 1e-9 * spec.sampling_rate or values.shape[-1] != spec.n_samples:
        raise DataError(
            f"preprocessing gave {values.shape[-1]} samples at {rate} Hz, expected "
            f"{spec.n_samples} at {spec.sampling_rate} Hz; include a resample step"
        )


def correlate_block(spec: ProcessingSpec, block: PairBlock, *station_spans: tuple[StationWindow, ...]) -> BlockPartial:
    """Correlate all pairs of a block over the windows of one read span.

    ``station_spans`` holds, for each station of ``block.stations``, its prepared windows of
    the span (:func:`prep_station_span`), all in the same window order. For the linear stack the cross-spectra are summed
    over the span's windows in one batched matrix product per frequency
    (:func:`~anxcor.steps.correlate.window_summed_cross_spectra`) and returned as they are (the
    inverse FFT waits for :func:`finalize_block`); kept windows are inverse-transformed here.
    """
    station_windows = [sw for windows in station_spans for sw in windows]
    n_stations = len(block.stations)
    n_windows = len(station_windows) // n_stations
    n_pairs = len(block.pairs)
    first, last = spec.band
    n_freq = last - first
    complex_dtype = spec.correlator.complex_dtype
    failures = frozenset(f for sw in station_windows for f in sw.failures)
    repairs = frozenset(r for sw in station_windows for r in sw.repairs)
    channels = frozenset(c for sw in station_windows for c in sw.channels)
    window_ids = np.asarray([station_windows[w].window for w in range(n_windows)])
    shape = (n_stations, n_windows, len(COMPONENTS), n_freq)
    spectra = np.zeros(shape, dtype=complex_dtype)
    distinct_sources = any(sw.source_spectra is not None for sw in station_windows)
    source_spectra = np.zeros(shape, dtype=complex_dtype) if distinct_sources else spectra
    valid = np.zeros((n_stations, n_windows, len(COMPONENTS)), dtype=bool)
    for index, sw in enumerate(station_windows):
        if sw.spectra is not None:
            station, window = divmod(index, n_windows)
            spectra[station, window] = sw.spectra
            valid[station, window] = sw.valid
            if distinct_sources:
                source_spectra[station, window] = sw.spectra if sw.source_spectra is None else sw.source_spectra
    # (pairs, windows, 3, 3) -> (windows, pairs, 9): which channel pairs each window has
    counts = (valid[block.src][:, :, :, None] & valid[block.rec][:, :, None, :]).astype(np.int64)
    counts = counts.reshape(n_pairs, n_windows, N_CHANNEL_PAIRS).transpose(1, 0, 2)
    if not spec.keep_windows:  # summed as the matrix product gives them; pairs picked out at the end
        sources, _, receivers, _ = block.sides()
        products = window_summed_cross_spectra(source_spectra[sources], spectra[receivers])
        return BlockPartial(products, counts.sum(axis=0), np.empty(0, dtype=int), failures, repairs, channels)
    per_window = np.full((n_windows, n_pairs, N_CHANNEL_PAIRS, 2 * spec.max_lag + 1), np.nan, spec.correlator.real_dtype)
    for w in range(n_windows):
        if counts[w].any():
            cross = _pair_cross_spectra(source_spectra[:, w : w + 1], spectra[:, w : w + 1], block)
            per_window[w] = lags_from_cross_spectra(cross, spec.nfft, spec.max_lag, first)
            per_window[w][counts[w] == 0] = np.nan
    return BlockPartial(per_window, counts, window_ids, failures, repairs, channels)


def _pair_cross_spectra(source_spectra: np.ndarray, receiver_spectra: np.ndarray, block: PairBlock) -> np.ndarray:
    """Window-summed cross-spectra of the block's pairs: (stations, windows, 3, F) -> (pairs, 9, F)."""
    sources, source_of_pair, receivers, receiver_of_pair = block.sides()
    products = window_summed_cross_spectra(source_spectra[sources], receiver_spectra[receivers])
    by_pair = np.ascontiguousarray(products.transpose(1, 3, 2, 4, 0))  # (ns, nr, 3, 3, F)
    return by_pair[source_of_pair, receiver_of_pair].reshape(len(block.pairs), N_CHANNEL_PAIRS, -1)


def add_partials(*partials: BlockPartial) -> BlockPartial:
    """Combine partial results of one block: sum stacks, or concatenate kept windows."""
    failures = frozenset().union(*(p.failures for p in partials))
    repairs = frozenset().union(*(p.repairs for p in partials))
    channels = frozenset().union(*(p.channels for p in partials))
    if partials[0].windows.size or partials[0].data.ndim == 4:
        return BlockPartial(
            np.concatenate([p.data for p in partials]),
            np.concatenate([p.counts for p in partials]),
            np.concatenate([p.windows for p in partials]),
            failures,
            repairs,
            channels,
        )
    data = partials[0].data.copy()
    counts = partials[0].counts.copy()
    for p in partials[1:]:
        data += p.data
        counts += p.counts
    return BlockPartial(data, counts, partials[0].windows, failures, repairs, channels)


def finalize_block(
    spec: ProcessingSpec, groups: WindowGroups | None, partial: BlockPartial, block: PairBlock | None = None
) -> BlockPartial:
    """Turn a block's reduced partial into its result: the mean, kept windows, or stacks of groups.

    With ``groups`` None the partial holds cross-spectra summed over all windows (linear
    stack): divided here by the counts and inverse-transformed (or, for
    ``output='spectrum'``, put on the full frequency grid). Otherwise it holds every window's
    correlations; each group is stacked with ``spec.stack`` (its ``combine`` ignores windows
    without data) or, for ``stack=False``, the windows are put in time order.
    """
    if groups is None:
        return replace(partial, data=_mean_correlations(spec, partial, block))
    row_of = {int(w): row for row, w in enumerate(partial.windows)}
    if not groups.combine:
        order = [row_of[w] for (w,) in groups.groups]
        return replace(partial, data=partial.data[order], counts=partial.counts[order], windows=partial.windows[order])
    stacks, used = [], []
    for members in groups.groups:
        rows = [row_of[w] for w in members]
        stacked, count = spec.stack.combine(partial.data[rows], spec.sampling_rate)
        stacks.append(stacked.astype(spec.correlator.real_dtype, copy=False))
        used.append(np.minimum(count, partial.counts[rows].sum(axis=0)))
    data, counts = np.stack(stacks), np.stack(used).astype(np.int64)
    if groups.squeeze:
        data, counts = data[0], counts[0]
    return replace(partial, data=data, counts=counts, windows=np.empty(0, dtype=int))


#: Rows (pair x channel pair) inverse-transformed at a time: small enough for the temporaries
#: (``rows x nfft`` floats) to be reused from the heap rather than mapped afresh each time.
IRFFT_ROWS = 32


def _mean_correlations(spec: ProcessingSpec, partial: BlockPartial, block: PairBlock) -> np.ndarray:
    """Mean correlations (or mean cross-spectra) of a block from its summed cross-spectra.

    Rows (pair x channel pair) without data are NaN. Each chunk of rows is picked out of the
    summed matrix products (frequency-major) straight into one zero-padded buffer of the full
    ``nfft // 2 + 1`` bins, reused for every chunk, so the inverse FFT needs no padding copy;
    the lags are cut straight into the output.
    """
    products, counts = partial.data, partial.counts
    _, source_of_pair, _, receiver_of_pair = block.sides()
    first, last = spec.band
    n_full = spec.nfft // 2 + 1
    spectrum = spec.correlator.output == "spectrum"
    width = spec.output_width
    flat_counts = counts.reshape(-1)
    out = np.empty((*counts.shape, width), dtype=spec.output_dtype)
    rows_out = out.reshape(-1, width)
    rows_out[flat_counts == 0] = np.nan
    have = np.flatnonzero(flat_counts > 0)
    pair, pair_channel = np.divmod(have, N_CHANNEL_PAIRS)
    src_row, src_comp = source_of_pair[pair], pair_channel // 3  # channel pairs are source-major
    rec_row, rec_comp = receiver_of_pair[pair], pair_channel % 3
    weights = (1.0 / flat_counts[have]).astype(products.real.dtype)
    buffer = np.zeros((min(IRFFT_ROWS, have.size), n_full), dtype=products.dtype)
    max_lag, nfft = spec.max_lag, spec.nfft
    for start in range(0, have.size, IRFFT_ROWS):
        rows = have[start : start + IRFFT_ROWS]
        take = slice(start, start + rows.size)
        chunk = buffer[: rows.size]
        picked = products[:, src_row[take], src_comp[take], rec_row[take], rec_comp[take]]  # (bins, rows)
        np.multiply(picked.T, weights[take, None], out=chunk[:, first:last])
        if spectrum:
            rows_out[rows] = chunk
            continue
        circular = transform_rows(scipy.fft.irfft, chunk, n=nfft)
        rows_out[rows, :max_lag] = circular[:, nfft - max_lag :]
        rows_out[rows, max_lag:] = circular[:, : max_lag + 1]
    return out


@dataclass(frozen=True)
class RunPlan:
    """What to run for one dataset: stations, windows grouped into read spans, pair blocks."""

    stations: tuple[str, ...]
    starttimes: tuple[float, ...]
    spans: tuple[ReadSpan, ...]
    blocks: tuple[PairBlock, ...]
    inventories: tuple = ()  # per station: its obspy Inventory, or None (empty: none known)
    groups: WindowGroups | None = None  # None: linear mean over all windows
    cache_paths: tuple[tuple[str, ...], ...] = ()  # per span, per block: cache file (empty: no cache)

    def cache_path(self, span: int, block: int) -> str | None:
        """The cache file of one correlation task, or None without a cache."""
        return self.cache_paths[span][block] if self.cache_paths else None

    def inventory(self, station_index: int):
        """The inventory of one station, or None."""
        return self.inventories[station_index] if self.inventories else None


def run_serial(
    plan: RunPlan, spec: ProcessingSpec, db, progress=None, destination: ResultWriter | None = None
) -> Iterator[tuple[int, BlockPartial]]:
    """Run the plan in this process, one read span at a time (bounded memory).

    Yields ``(block index, finalised block)``, each block finalised during the last read span,
    right after its last correlation and only when the caller asks for it, so a caller placing
    them into the result holds one finalised block at a time, and a block's running sums are
    dropped as soon as it is done.
    With ``destination`` (linear stack: a writer into the result array over all pairs, see
    :mod:`anxcor.shared_result`) the blocks are written into it and yielded with ``data=None``.
    With cache files in the plan, tasks already on disk are loaded, and a span whose tasks
    are all cached is not read at all.
    """
    from .cache import load_partial, save_partial

    totals: list[BlockPartial | None] = [None] * len(plan.blocks)
    total_tasks = len(plan.spans) * len(plan.blocks)
    done = 0
    for s, span in enumerate(plan.spans):
        paths = [plan.cache_path(s, b) for b in range(len(plan.blocks))]
        cached = {b for b, path in enumerate(paths) if path is not None and os.path.exists(path)}
        needed = sorted({i for b, block in enumerate(plan.blocks) if b not in cached for i in block.stations})
        starts = tuple(plan.starttimes[w] for w in span.windows)
        prepped = {i: prep_station_span(spec, db, plan.stations[i], span, starts, plan.inventory(i)) for i in needed}
        for b, block in enumerate(plan.blocks):
            if b in cached:
                part = load_partial(paths[b])
            else:
                part = correlate_block(spec, block, *(prepped[i] for i in block.stations))
                if paths[b] is not None:
                    save_partial(paths[b], part)
            totals[b] = _accumulate(spec, totals[b], part)
            done += 1
            if progress is not None:
                progress(done, total_tasks)
            if s == len(plan.spans) - 1:  # the block is complete: finalise it now, drop its sums
                total, totals[b] = totals[b], None
                if isinstance(total, list):
                    total = add_partials(*total)
                yield b, _finalize_to(destination, spec, plan.groups, total, block)
        if cached:
            logger.info("read span %d: %d of %d pair blocks loaded from the cache", s, len(cached), len(plan.blocks))


def _accumulate(spec: ProcessingSpec, total, part: BlockPartial):
    """Add a span's partial to a block's running total, in span order (see :func:`build_graph`).

    Kept windows are collected in a list and concatenated once at the end.
    """
    if spec.keep_windows:
        return [part] if total is None else [*total, part]
    return part if total is None else add_partials(total, part)


def build_graph(
    plan: RunPlan, spec: ProcessingSpec, db, token: str, target: ResultTarget | None = None
) -> tuple[dict, list]:
    """The dask graph of the plan (deterministic keys) and the keys of the block results.

    With cache files, a correlation task whose file exists is loaded and its prep (read) inputs
    are dropped from the graph; the others compute and save. The stations of a read span are
    prepared in :data:`PREP_TASKS_PER_SPAN` tasks (:func:`prep_station_group`). With ``target`` (linear stack:
    the client's shared result, see :mod:`anxcor.shared_result`) the final tasks write their
    rows into it where they can reach it.
    """
    from .cache import cached_or

    db_key, spec_key = f"anxcor-database-{token}", f"anxcor-spec-{token}"
    graph: dict = {db_key: db, spec_key: spec}
    # small plain objects go into the tasks themselves (a graph key each would be a task each);
    # a station's inventory, which can be large and is used by every span, gets a key
    inventory_keys = []
    for i in range(len(plan.stations)):
        inventory = plan.inventory(i)
        inventory_keys.append(None if inventory is None else (f"anxcor-inventory-{token}", i))
        if inventory is not None:
            graph[inventory_keys[-1]] = inventory
    groups = prep_groups(len(plan.stations), PREP_TASKS_PER_SPAN)
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    place_of = {i: k for members in groups for k, i in enumerate(members)}
    corr_keys: list[list] = [[] for _ in plan.blocks]
    # Linear stacks without a cache: each span's correlation task adds its sums to the
    # previous span's total (the same additions in the same order as run_serial), so the
    # scheduler runs it where that total already is and only the small spectra move.
    carry = not spec.keep_windows and not plan.cache_paths
    final_keys = [(f"anxcor-final-{_run_name(token, target)}", b) for b in range(len(plan.blocks))]
    for s, span in enumerate(plan.spans):
        starts = tuple(plan.starttimes[w] for w in span.windows)
        for g, members in enumerate(groups):
            graph[(f"anxcor-prep-{token}", g, s)] = (
                prep_station_group, spec_key, db_key, tuple(plan.stations[i] for i in members), span, starts,
                *(inventory_keys[i] for i in members),
            )
        for b, block in enumerate(plan.blocks):
            key = (f"anxcor-corr-{token}", b, s)
            # each station's windows picked out of its group's output within the task (no task of its own)
            inputs = [(getitem, (f"anxcor-prep-{token}", group_of[i], s), place_of[i]) for i in block.stations]
            path = plan.cache_path(s, b)
            if carry and s == len(plan.spans) - 1:  # the last span's sums go straight into the result
                previous = corr_keys[b][-1] if corr_keys[b] else None
                graph[final_keys[b]] = (correlate_and_finalize, previous, spec_key, block, target, *inputs)
                continue
            if path is None and carry and s > 0:
                graph[key] = (correlate_and_add, corr_keys[b][-1], spec_key, block, *inputs)
            elif path is None:
                graph[key] = (correlate_block, spec_key, block, *inputs)
            elif os.path.exists(path):  # done by an earlier run: no inputs, so dask culls its reads
                graph[key] = (load_partial_task, path)
            else:  # compute and save (or load, if another run saved it meanwhile)
                graph[key] = (cached_or, path, correlate_block, spec_key, block, *inputs)
            corr_keys[b].append(key)
    if carry:
        return graph, final_keys
    for b, keys in enumerate(corr_keys):
        total = keys[0]
        if spec.keep_windows and len(keys) > 1:  # one concatenation, in span order
            total = (f"anxcor-sum-{token}", b, 0)
            graph[total] = (add_partials, *keys)
        elif len(keys) > 1:  # a chain in span order: the same additions as run_serial
            for k, key in enumerate(keys[1:], start=1):
                graph[(f"anxcor-sum-{token}", b, k)] = (add_partials, total, key)
                total = (f"anxcor-sum-{token}", b, k)
        graph[final_keys[b]] = (finalize_into, spec_key, plan.groups, total, plan.blocks[b], target)
    return graph, final_keys


def correlate_and_add(
    total: BlockPartial, spec: ProcessingSpec, block: PairBlock, *station_spans: tuple[StationWindow, ...]
) -> BlockPartial:
    """:func:`correlate_block` for one more read span, added to the block's running total."""
    return add_partials(total, correlate_block(spec, block, *station_spans))


def correlate_and_finalize(
    total: BlockPartial | None,
    spec: ProcessingSpec,
    block: PairBlock,
    target: ResultTarget | None,
    *station_spans: tuple[StationWindow, ...],
) -> BlockPartial:
    """The last read span of a linear stack: correlate, add to the running total (if any), finalise.

    One task instead of two, so the block's summed cross-spectra never leave the worker
    that made them. ``target``: see :func:`finalize_into`.
    """
    if total is None:
        part = correlate_block(spec, block, *station_spans)
    else:
        part = correlate_and_add(total, spec, block, *station_spans)
    return finalize_into(spec, None, part, block, target)


def finalize_into(
    spec: ProcessingSpec,
    groups: WindowGroups | None,
    partial: BlockPartial,
    block: PairBlock,
    target: ResultTarget | None,
) -> BlockPartial:
    """:func:`finalize_block` on a worker, writing a linear stack into the client's shared result.

    Where ``target`` (see :mod:`anxcor.shared_result`) is reachable from this process the
    block's rows go straight into the client's result array and the returned partial has
    ``data=None``; otherwise (or with ``groups``) the rows are returned.
    """
    writer = attach_result(target) if groups is None else None
    if writer is None:
        return finalize_block(spec, groups, partial, block)
    with writer:
        return _finalize_to(writer, spec, groups, partial, block)


def _finalize_to(
    writer: ResultWriter | None, spec: ProcessingSpec, groups: WindowGroups | None, partial: BlockPartial, block
) -> BlockPartial:
    """:func:`finalize_block`, the rows then written with ``writer`` (if any) instead of returned."""
    result = finalize_block(spec, groups, partial, block)
    if writer is None or groups is not None:
        return result
    writer.write_pairs(block.pairs, result.data)
    return replace(result, data=None)


def load_partial_task(path: str) -> BlockPartial:
    """A graph task reading a cached partial (see :mod:`anxcor.cache`)."""
    from .cache import load_partial

    return load_partial(path)


def run_dask(
    plan: RunPlan, spec: ProcessingSpec, db, client, token: str, progress=None, target: ResultTarget | None = None
) -> Iterator[tuple[int, BlockPartial]]:
    """Run the plan on a ``dask.distributed`` client; same task functions as :func:`run_serial`.

    The graph is submitted at once; the returned iterator yields ``(block index, finalised
    block)`` in batches as the blocks finish, in any order, so the caller can work meanwhile. Progress
    counts the correlation tasks (read span x pair block) and the block results as they
    finish; a correlation future is released at once, so no partial result is held longer
    than its reduction needs it. Finished blocks are fetched several at a time (see
    :func:`gather_batch`): about ``GATHER_MB`` of finalised blocks at once (one block when a
    block is larger), so a run whose blocks all fit yields them only once the last one
    has finished. With ``target`` (linear stack) workers on this machine write the blocks
    into the client's shared result and send only their counts and records (see
    :mod:`anxcor.shared_result`).
    """
    from distributed import as_completed

    from .workers import prepare_workers

    tune_allocator()  # this process receives the finished blocks
    prepare_workers(client)
    graph, final_keys = build_graph(plan, spec, db, token, target)
    finals = set(final_keys)
    corr_keys = [k for k in graph if isinstance(k, tuple) and k[0].startswith("anxcor-corr-") and k not in finals]
    position = {key: b for b, key in enumerate(final_keys)}
    graph_expression = _named_graph(graph, _run_name(token, target))
    futures = client.get(graph_expression, corr_keys + final_keys, sync=False)  # collected lazily
    batch = gather_batch(plan, spec)
    return _collect_blocks(as_completed(futures), position, len(futures), progress, batch)


#: Most MB of finalised blocks fetched from the workers in one call (see :func:`gather_batch`).
GATHER_MB = 128.0


def gather_batch(plan: RunPlan, spec: ProcessingSpec) -> int:
    """How many finished blocks the dask runner fetches in one call: ``GATHER_MB`` of rows, at least one.

    Fetching each block on its own cost a round trip through the scheduler per block: at
    128 stations (66 blocks, whose rows same-machine workers write themselves, so only counts
    and records travel) 0.79-0.96 s of the client's CPU per run, against 0.58-0.81 s fetching
    them 6 at a time. The budget assumes every block sends its rows (workers on other
    machines, or results without a shared result file).
    """
    groups = 1 if plan.groups is None or plan.groups.squeeze else len(plan.groups.groups)
    largest = max((block.pairs.size for block in plan.blocks), default=1)
    block_bytes = groups * largest * N_CHANNEL_PAIRS * spec.output_width * spec.output_dtype.itemsize
    return max(1, int(GATHER_MB * 1024**2 // max(block_bytes, 1)))


def _run_name(token: str, target: ResultTarget | None) -> str:
    """The run's token, with the shared result's nonce when there is one (see :func:`build_graph`)."""
    return token if target is None else f"{token}-{target.nonce}"


def _named_graph(graph: dict, name: str):
    """The graph as the expression ``client.get`` makes of it, named by the run's token.

    Given a plain dict, dask names it by tokenizing all of it (pickling every object in
    it): 0.13-0.15 s at 128 stations, before any task starts. The run's token already
    identifies the graph (:meth:`anxcor.core.Anxcor.process` makes it from the configuration,
    stations, times and the pickled database; the final keys add the run's nonce). Uses
    dask's own expression class; with a dask that has no such class, the plain dict.
    """
    try:
        from dask._expr import LLGExpr

        return LLGExpr(graph, _determ_token=name)
    except (ImportError, TypeError):  # another dask: let it name the graph itself
        return graph


def _collect_blocks(pending, position: dict, total: int, progress, batch: int = 1) -> Iterator[tuple[int, BlockPartial]]:
    """Yield finished block results from ``pending`` futures, fetched ``batch`` at a time.

    Other futures (correlation tasks, counted for progress) are released at once. A block
    that failed or was cancelled is fetched at once, so its error is raised as soon as it is
    known; futures not yet fetched are released whatever happens.
    """
    ready = []
    try:
        for done, future in enumerate(pending, start=1):
            failed = False
            if future.key in position:
                ready.append(future)
                failed = future.status != "finished"
            else:
                future.release()  # a released future reports "cancelled" from now on
            if progress is not None:
                progress(done, total)
            if ready and (len(ready) >= batch or failed):
                batch_of, ready = ready, []
                yield from _fetch(batch_of, position)
        if ready:
            batch_of, ready = ready, []
            yield from _fetch(batch_of, position)
    finally:
        for future in ready:
            future.release()


def _fetch(futures: list, position: dict) -> Iterator[tuple[int, BlockPartial]]:
    """Gather ``futures`` (finished blocks) in one call, release them, yield ``(block index, block)``."""
    keys = [future.key for future in futures]
    try:
        results = futures[0].client.gather(futures)
    finally:
        for future in futures:
            future.release()
    for key, block in zip(keys, results, strict=True):
        yield position[key], block
