"""Conversions of results: to obspy traces (and, later, files on disk)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from obspy import Stream, Trace, UTCDateTime
from obspy.core.util import AttribDict

from .errors import ConfigError

__all__ = ["xarray_to_obspy"]


def xarray_to_obspy(result: xr.Dataset, *, skip_empty: bool = False) -> Stream:
    """One obspy Trace per dataset x station pair x channel pair (autocorrelations included).

    Labels are deterministic: ``network = 'SRCNET:RECNET'``, ``station = 'SRC:REC'``,
    ``location`` = dataset name, ``channel`` = channel pair (``'Z:N'``: source Z, receiver
    N). ``starttime`` is ``UTCDateTime(0)`` plus the first lag, so ``tr.times('timestamp')``
    is the lag in seconds. ``stats.distance`` is in metres (for obspy's section plot) and
    ``stats.anxcor`` holds src, rec, dataset, channel, distance_km, azimuth, backazimuth,
    n_windows and the first lag. Traces come in the order of the result (dataset,
    station_pair, channel).

    Parameters
    ----------
    result
        A stacked Dataset returned by :meth:`anxcor.core.Anxcor.process`.
    skip_empty
        Leave out traces of pairs and channel pairs that no window contributed to (all
        NaN), which obspy's filters and plots cannot handle. Off by default, so the stream
        has exactly one trace per pair x channel pair.

    Returns
    -------
    obspy.Stream
    """
    if not isinstance(result, xr.Dataset):
        raise ConfigError(f"xarray_to_obspy expects the Dataset returned by process(), got {type(result).__name__}")
    if "time" not in result.dims:
        raise ConfigError("xarray_to_obspy needs correlations over lag time; this result has no 'time' dim (cross-spectra?)")
    if "window" in result.dims:
        raise ConfigError("xarray_to_obspy needs a stacked result; this one has a 'window' dim (stack=False or k)")
    lags = result["time"].values
    rate = float(result.attrs.get("sampling_rate", 1.0 / np.diff(lags[:2])[0]))
    geometry = {k: result[k].values for k in ("distance", "azimuth", "backazimuth") if k in result.coords}
    traces = []
    for name in result.data_vars:
        variable = result[name].transpose("station_pair", "channel", "time")
        counts_name = "n_windows" if "n_windows" in result.coords else f"n_windows_{name}"
        counts = result[counts_name].transpose("station_pair", "channel").values if counts_name in result.coords else None
        values = variable.values
        for p, label in enumerate(variable["station_pair"].values):
            src, rec = str(label).split(":")
            (src_net, src_sta), (rec_net, rec_sta) = src.split(".", 1), rec.split(".", 1)
            for c, channel in enumerate(variable["channel"].values):
                if skip_empty and not np.isfinite(values[p, c]).any():
                    continue
                meta = AttribDict(
                    src=src, rec=rec, dataset=name, channel=str(channel), lag_start=float(lags[0]),
                    n_windows=None if counts is None else int(counts[p, c]),
                    **{("distance_km" if k == "distance" else k): float(v[p]) for k, v in geometry.items()},
                )
                header = {
                    "network": f"{src_net}:{rec_net}",
                    "station": f"{src_sta}:{rec_sta}",
                    "location": name,
                    "channel": str(channel),
                    "sampling_rate": rate,
                    "starttime": UTCDateTime(0) + float(lags[0]),
                    "anxcor": meta,
                }
                if "distance" in geometry:
                    header["distance"] = float(geometry["distance"][p]) * 1000.0
                traces.append(Trace(np.array(values[p, c], dtype=np.float64), header=header))
    return Stream(traces)
