"""Plots of results (matplotlib, the optional ``plot`` extra)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import ConfigError

__all__ = ["record_section"]


def record_section(
    result: xr.Dataset,
    variable: str | None = None,
    channel: str = "Z:Z",
    velocities: tuple[float, ...] = (3.0,),
    ax=None,
):
    """Plot stacked correlations as wiggles against inter-station distance.

    Each pair's trace is normalised to its largest absolute value and drawn at its distance
    (km); dashed lines mark ``t = +-distance / v`` for each velocity in ``velocities`` (km/s).
    Autocorrelations are left out.

    Parameters
    ----------
    result
        A stacked result with a ``distance`` coordinate (station coordinates were known).
    variable
        Data variable (dataset name); default the first one.
    channel
        Channel pair to show, e.g. ``'Z:Z'``.
    velocities
        Guide-line velocities in km/s.
    ax
        A matplotlib Axes to draw into; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if "distance" not in result.coords:
        raise ConfigError("record_section needs station coordinates (a 'distance' coordinate) in the result")
    name = variable if variable is not None else next(iter(result.data_vars))
    data = result[name].sel(channel=channel)
    crosses = data.where(data["src"] != data["rec"], drop=True)
    distance = crosses["distance"].values
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6))
    lags = crosses["time"].values
    spacing = (np.ptp(distance) / max(len(distance), 1)) if len(distance) > 1 else 1.0
    for values, offset in zip(crosses.transpose("station_pair", "time").values, distance, strict=True):
        peak = np.nanmax(np.abs(values))
        if not np.isfinite(peak) or peak == 0:
            continue
        ax.plot(lags, offset + 1.5 * spacing * values / peak, color="black", linewidth=0.6)
    top = distance.max() * 1.05 + spacing if len(distance) else 1.0
    for velocity in velocities:
        for sign in (-1, 1):
            ax.plot([0, sign * top / velocity], [0, top], "--", color="tab:red", linewidth=1)
        ax.text(top / velocity, top, f" {velocity:g} km/s", color="tab:red", va="bottom", ha="center")
    ax.set_xlim(lags[0], lags[-1])
    ax.set_ylim(-spacing, top * 1.05)
    ax.set_xlabel("lag (s), positive = source -> receiver")
    ax.set_ylabel("inter-station distance (km)")
    ax.set_title(f"{name}: {channel} correlations")
    return ax
