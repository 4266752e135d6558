"""Turn block results into the labelled result Dataset (netCDF/zarr-safe).

Layout: one data variable per dataset name with dims ``(channel, station_pair, time)``
(plus ``window`` in front when windows are kept or sub-stacked); per-pair coordinates
``src``, ``rec`` and, with station coordinates, ``distance`` (km), ``azimuth`` and
``backazimuth`` (degrees); ``n_windows`` counts the windows in each stack.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import xarray as xr
from obspy import UTCDateTime

from .allocator import empty_result
from .execute import ABSENT_COMPONENT, CHANNEL_PAIRS, BlockPartial
from .geodesy import inverse

__all__ = ["pair_label", "pair_geometry", "assemble_variable", "failure_records", "repair_records"]

logger = logging.getLogger(__name__)

SIGN_CONVENTION = (
    "corr(t) = sum_tau src(tau) * rec(tau + t); positive lag = energy travelling from src to rec"
)


def pair_label(source: str, receiver: str) -> str:
    """The ``station_pair`` label ``'NET.SRC:NET.REC'``."""
    return f"{source}:{receiver}"


def pair_geometry(pairs: list[tuple[str, str]], coordinates: pd.DataFrame | None) -> dict[str, np.ndarray] | None:
    """Distance (km), azimuth and backazimuth (degrees) for each pair, or None without coordinates.

    Azimuth is measured at the source towards the receiver, backazimuth at the receiver
    towards the source, both clockwise from north (WGS84). Autocorrelations get distance 0,
    azimuth 0 and backazimuth 180; pairs with a station of unknown position get NaN (and a
    warning is logged).
    """
    if coordinates is None:
        return None
    unknown = sorted({s for pair in pairs for s in pair} - set(coordinates.index))
    if unknown:
        logger.warning("no coordinates for %d station(s) %s: their pairs get NaN distance/azimuth", len(unknown), unknown[:10])
    position = {
        station: (float(lat), float(lon))
        for station, lat, lon in zip(coordinates.index, coordinates["latitude"], coordinates["longitude"], strict=True)
    }
    nowhere = (np.nan, np.nan)  # stations without coordinates: NaN geometry
    src = np.array([position.get(s, nowhere) for s, _ in pairs], dtype=float).reshape(-1, 2)
    rec = np.array([position.get(r, nowhere) for _, r in pairs], dtype=float).reshape(-1, 2)
    distance, azimuth, backazimuth = inverse(src[:, 0], src[:, 1], rec[:, 0], rec[:, 1])
    distance = distance / 1000.0
    auto = np.array([s == r for s, r in pairs], dtype=bool) & np.isfinite(distance)  # NaN: position unknown
    distance[auto], azimuth[auto], backazimuth[auto] = 0.0, 0.0, 180.0
    return {"distance": distance, "azimuth": azimuth, "backazimuth": backazimuth}


def assemble_variable(
    block_results: Iterable[tuple[int, BlockPartial]],
    blocks,
    pairs: list[tuple[str, str]],
    lags: np.ndarray,
    axis_name: str = "time",
    group_starts: list[float] | None = None,
    data: np.ndarray | None = None,
    allocate=empty_result,
) -> tuple[xr.DataArray, xr.DataArray, list, list, dict]:
    """Build one dataset's DataArray, its counts, failures, repairs and the channels used.

    ``block_results`` yields ``(block index, finalised block)`` in any order
    (:func:`anxcor.execute.run_serial`, :func:`anxcor.execute.run_dask`); each block is placed
    into the result array as it comes and then dropped, so only the result and one block are
    in memory at once. ``group_starts`` is None for one stack over all windows, else the start
    time of each kept window or window group (the ``window`` coordinate). ``lags`` is the last
    axis, named ``axis_name`` (``'time'``, or ``'frequency'`` for cross-spectra). ``data``:
    the result array to fill, when the caller allocated it (blocks the serial runner or a
    same-machine dask worker already wrote into it come with ``data`` None, see
    :mod:`anxcor.shared_result`). ``allocate(shape, dtype)`` makes the
    result array otherwise (:func:`~anxcor.allocator.empty_result`, or a file-backed
    :func:`~anxcor.allocator.spill_array` for ``process(store=...)``).
    """
    failures, repairs, used = set(), set(), set()
    lead = () if group_starts is None else (len(group_starts),)
    counts = np.zeros((*lead, len(pairs), len(CHANNEL_PAIRS)), dtype=np.int64)
    covered = np.zeros(len(pairs), dtype=bool)
    for index, part in block_results:
        if data is None:  # not filled: every pair is written once, by its block
            data = allocate((*lead, len(pairs), len(CHANNEL_PAIRS), lags.size), part.data.dtype)
        pairs_of_block = blocks[index].pairs
        if part.data is not None:
            data[..., pairs_of_block, :, :] = part.data
        counts[..., pairs_of_block, :] = part.counts
        covered[pairs_of_block] = True
        failures |= part.failures
        repairs |= part.repairs
        used |= part.channels
    if data is None:  # no pair at all
        data = np.empty((*lead, len(pairs), len(CHANNEL_PAIRS), lags.size))
    data[..., ~covered, :, :] = np.nan
    channels: dict[str, list[str]] = {}
    for station, _, seed_id in sorted(used):
        channels.setdefault(station, []).append(seed_id)
    labels = [pair_label(s, r) for s, r in pairs]
    dims = ("channel", "station_pair", axis_name)
    coords = {"channel": list(CHANNEL_PAIRS), "station_pair": labels, axis_name: lags}
    if group_starts is None:
        data, counts = data.transpose(1, 0, 2), counts.T
    else:
        data, counts = data.transpose(0, 2, 1, 3), counts.transpose(0, 2, 1)
        dims = ("window", *dims)
        coords["window"] = np.asarray(group_starts, dtype=float)
    variable = xr.DataArray(data, dims=dims, coords=coords)
    n_windows = xr.DataArray(counts, dims=dims[:-1], coords={k: coords[k] for k in dims[:-1]})
    return variable, n_windows, sorted(failures), sorted(repairs), channels


def repair_records(dataset: str, repairs: list[tuple]) -> list[dict]:
    """Repairs as JSON-ready dicts: dataset, station, time (ISO), component, what was done."""
    return [
        {"dataset": dataset, "station": station, "time": str(UTCDateTime(time)), "component": component, "what": what}
        for station, time, component, what in repairs
    ]


def failure_records(dataset: str, failures: list[tuple], n_windows: int | None = None) -> list[dict]:
    """Failures as JSON-ready dicts: dataset, station, window start (ISO), component, reason.

    A component absent from the data in all ``n_windows`` windows (a vertical-only station,
    say) becomes one record for the run, at its first window, instead of one per window.
    """
    absent: dict[tuple[str, str], list[float]] = {}
    for station, start, component, reason in failures:
        if reason == ABSENT_COMPONENT:
            absent.setdefault((station, component), []).append(start)
    whole_run = {key for key, starts in absent.items() if n_windows is not None and len(starts) == n_windows}
    records = []
    for station, start, component, reason in failures:
        if (station, component) in whole_run:
            if start != min(absent[(station, component)]):
                continue
            reason = f"{ABSENT_COMPONENT} in all {n_windows} windows"
        records.append(
            {
                "dataset": dataset,
                "station": station,
                "window_start": str(UTCDateTime(start)),
                "component": component,
                "reason": reason,
            }
        )
    return records
