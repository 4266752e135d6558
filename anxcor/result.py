"""Turn block results into the labelled result Dataset (netCDF/zarr-safe).

Layout: one data variable per dataset name with dims ``(channel, station_pair, time)``
(plus ``window`` in front when windows are kept or sub-stacked); per-pair coordinates
``src``, ``rec`` and, with station coordinates, ``distance`` (km), ``azimuth`` and
``backazimuth`` (degrees); ``n_windows`` counts the windows in each stack.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr
from obspy import UTCDateTime
from obspy.geodetics import gps2dist_azimuth

from .execute import ABSENT_COMPONENT, CHANNEL_PAIRS, BlockPartial

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
    distance, azimuth, backazimuth = (np.full(len(pairs), np.nan) for _ in range(3))
    for k, (src, rec) in enumerate(pairs):
        if src in unknown or rec in unknown:
            continue
        if src == rec:
            distance[k], azimuth[k], backazimuth[k] = 0.0, 0.0, 180.0
            continue
        a, b = coordinates.loc[src], coordinates.loc[rec]
        meters, az, baz = gps2dist_azimuth(a.latitude, a.longitude, b.latitude, b.longitude)
        distance[k], azimuth[k], backazimuth[k] = meters / 1000.0, az, baz
    return {"distance": distance, "azimuth": azimuth, "backazimuth": backazimuth}


def _block_arrays(partials: list[BlockPartial], blocks, n_pairs: int, n_lags: int, n_groups: int | None):
    """Place finalised block results into arrays over all pairs.

    Each block's entry in ``partials`` is set to None once placed, so the blocks and the
    assembled arrays are not all in memory at once.
    """
    lead = () if n_groups is None else (n_groups,)
    dtype = np.result_type(*(part.data.dtype for part in partials)) if partials else np.float64
    data = np.full((*lead, n_pairs, len(CHANNEL_PAIRS), n_lags), np.nan, dtype=dtype)
    counts = np.zeros((*lead, n_pairs, len(CHANNEL_PAIRS)), dtype=np.int64)
    for index, block in enumerate(blocks):
        part, partials[index] = partials[index], None
        data[..., block.pairs, :, :] = part.data
        counts[..., block.pairs, :] = part.counts
    return data, counts


def assemble_variable(
    partials: list[BlockPartial],
    blocks,
    pairs: list[tuple[str, str]],
    lags: np.ndarray,
    axis_name: str = "time",
    group_starts: list[float] | None = None,
) -> tuple[xr.DataArray, xr.DataArray, list, list, dict]:
    """Build one dataset's DataArray, its counts, failures, repairs and the channels used.

    ``partials`` are finalised block results (:func:`anxcor.execute.finalize_block`), consumed
    (each entry set to None once placed, to bound memory);
    ``group_starts`` is None for one stack over all windows, else the start time of each
    kept window or window group (the ``window`` coordinate). ``lags`` is the last axis,
    named ``axis_name`` (``'time'``, or ``'frequency'`` for cross-spectra).
    """
    failures = sorted({f for part in partials for f in part.failures})
    repairs = sorted({r for part in partials for r in part.repairs})
    channels: dict[str, list[str]] = {}
    for station, _, seed_id in sorted({c for part in partials for c in part.channels}):
        channels.setdefault(station, []).append(seed_id)
    n_groups = None if group_starts is None else len(group_starts)
    data, counts = _block_arrays(partials, blocks, len(pairs), lags.size, n_groups)
    labels = [pair_label(s, r) for s, r in pairs]
    dims = ("channel", "station_pair", axis_name)
    coords = {"channel": list(CHANNEL_PAIRS), "station_pair": labels, axis_name: lags}
    if n_groups is None:
        data, counts = data.transpose(1, 0, 2), counts.T
    else:
        data, counts = data.transpose(0, 2, 1, 3), counts.transpose(0, 2, 1)
        dims = ("window", *dims)
        coords["window"] = np.asarray(group_starts, dtype=float)
    variable = xr.DataArray(data, dims=dims, coords=coords)
    n_windows = xr.DataArray(counts, dims=dims[:-1], coords={k: coords[k] for k in dims[:-1]})
    return variable, n_windows, failures, repairs, channels


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
