"""Plots of results and of their analyses (matplotlib, the optional ``plot`` extra).

Every function draws into the matplotlib ``Axes`` given as ``ax`` (a new figure when None)
and returns it, so a figure can be composed from several of them and finished with the
usual matplotlib calls. matplotlib is imported only when a function is called.

- :func:`record_section`: stacked correlations against inter-station distance.
- :func:`beam_power`: polar map of beam power over slowness and backazimuth.
- :func:`dispersion_image`: an FTAN image over period and group velocity, with picks.
- :func:`dvv_timeseries`: dv/v over time with error bars, network average and one pair.

The same plots are methods of the ``anxcor`` Dataset accessor (:mod:`anxcor.accessor`),
e.g. ``result.anxcor.plot_record_section()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .errors import ConfigError, DataError
from .validation import result_variable

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["record_section", "beam_power", "dispersion_image", "dvv_timeseries"]

#: Colours and dash patterns of the guide lines, one pair per velocity (cycled).
_GUIDE_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:cyan")
_GUIDE_STYLES = ("--", "-.", ":")


def _pyplot():
    """matplotlib.pyplot, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("anxcor's plots need matplotlib: pip install 'anxcor[plot]'") from exc
    return plt


def _check_dims(array: xr.DataArray, needed: Sequence[str], optional: Sequence[str], what: str) -> None:
    """ConfigError unless ``array`` has every dim of ``needed`` (with coordinate values) and no others."""
    missing = [dim for dim in needed if dim not in array.dims]
    if missing:
        raise ConfigError(
            f"{what} needs dims {tuple(needed)}, got {tuple(array.dims)}: missing {tuple(missing)}"
        )
    extra = [dim for dim in array.dims if dim not in needed and dim not in optional]
    if extra:
        raise ConfigError(
            f"{what} draws dims {tuple(needed)}, got extra dims {tuple(extra)}: select or average them first, "
            f"e.g. .isel({extra[0]}=0) or .mean({extra[0]!r})"
        )
    for dim in needed:
        if dim not in array.coords:
            raise ConfigError(f"{what} needs coordinate values for dim {dim!r}; assign them with .assign_coords({dim}=...)")


def _single_variable(data: xr.DataArray | xr.Dataset, what: str) -> xr.DataArray:
    """The DataArray itself, or the only data variable of a Dataset."""
    if isinstance(data, xr.DataArray):
        return data
    if isinstance(data, xr.Dataset):
        if len(data.data_vars) == 1:
            return data[next(iter(data.data_vars))]
        raise ConfigError(
            f"{what} draws one DataArray, got a Dataset with variables {list(data.data_vars)}: pass one, e.g. ds[name]"
        )
    raise ConfigError(f"{what} needs an xarray DataArray, got {type(data).__name__}")


def _new_axes(ax, plt, **subplot_kw):
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=(8, 6), subplot_kw=subplot_kw or None)
    return ax


def record_section(
    result: xr.Dataset,
    variable: str | None = None,
    channel: str = "Z:Z",
    velocities: Sequence[float] = (3.0,),
    ax: Axes | None = None,
) -> Axes:
    """Plot stacked correlations as wiggles against inter-station distance.

    Each cross pair's trace is normalised to its largest absolute value and drawn at its
    distance (km); the line's ``gid`` is the station pair. For each velocity ``v`` in
    ``velocities`` (km/s) two lines mark ``t = +-d / v``, in their own colour and dash
    pattern, named in a legend beside the axes (so close velocities never put two labels on
    top of each other). Autocorrelations and pairs of unknown distance are left out.

    Parameters
    ----------
    result
        A stacked result over lag time (dims ``channel``, ``station_pair``, ``time``) with a
        ``distance`` coordinate (station coordinates were known).
    variable
        Data variable (dataset name); default the first one.
    channel
        Channel pair to show, e.g. ``'Z:Z'``.
    velocities
        Guide-line velocities in km/s, each > 0.
    ax
        A matplotlib Axes to draw into; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn into.

    Raises
    ------
    ConfigError
        No ``distance`` coordinate, a ``window`` dim (not stacked), no ``time`` dim, an
        unknown variable or channel, or a velocity <= 0.
    DataError
        No cross pair with a known distance and data.

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process`::

        ax = record_section(result, channel="Z:Z", velocities=(2.0, 3.0))
        ax.set_xlim(-30, 30)
    """
    plt = _pyplot()
    name, crosses = _section_traces(result, variable, channel)
    velocities = tuple(float(v) for v in np.atleast_1d(velocities))
    if any(not np.isfinite(v) or v <= 0 for v in velocities):
        raise ConfigError(f"record_section velocities must be finite and > 0 km/s, got {velocities}")
    distance = crosses["distance"].values.astype(float)
    lags = crosses["time"].values
    ax = _new_axes(ax, plt)
    spacing = _trace_spacing(distance)
    for pair, values, offset in zip(
        crosses["station_pair"].values, crosses.transpose("station_pair", "time").values, distance, strict=True
    ):
        peak = np.nanmax(np.abs(values)) if np.isfinite(values).any() else np.nan
        if not np.isfinite(peak) or peak == 0:
            continue
        ax.plot(lags, offset + 1.5 * spacing * values / peak, color="black", linewidth=0.6, gid=str(pair))
    top = distance.max() * 1.05 + spacing
    handles = []
    for index, velocity in enumerate(velocities):
        style = dict(color=_GUIDE_COLORS[index % len(_GUIDE_COLORS)], linestyle=_GUIDE_STYLES[index % len(_GUIDE_STYLES)])
        (line,) = ax.plot([-top / velocity, 0, top / velocity], [top, 0, top], linewidth=1, gid=f"v={velocity:g}",
                          label=f"{velocity:g} km/s", **style)
        handles.append(line)
    if handles:
        ax.legend(handles=handles, title="t = \u00b1d / v", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0, frameon=False)
    ax.set_xlim(lags[0], lags[-1])
    ax.set_ylim(-spacing, top * 1.05)
    ax.set_xlabel("lag (s), positive = source -> receiver")
    ax.set_ylabel("inter-station distance (km)")
    ax.set_title(f"{name}: {channel} correlations")
    return ax


def _section_traces(result: xr.Dataset, variable: str | None, channel: str) -> tuple[str, xr.DataArray]:
    """The named variable's cross pairs of known distance at ``channel``, validated."""
    if not isinstance(result, xr.Dataset):
        raise ConfigError(f"record_section needs an anxcor result (xarray Dataset), got {type(result).__name__}")
    if "distance" not in result.coords:
        raise ConfigError(
            "record_section needs station coordinates (a 'distance' coordinate) in the result: "
            "pass an inventory or a coordinates table to add_dataset"
        )
    if "window" in result.dims:
        raise ConfigError(
            "record_section draws one stack per pair, but this result keeps a 'window' dim "
            "(process(stack=False) or stack=k): pick one with result.isel(window=0) or average with result.mean('window')"
        )
    if "time" not in result.dims:
        raise ConfigError(
            f"record_section needs correlations over lag time (a 'time' dim), got dims {tuple(result.dims)}; "
            "a result of output='spectrum' holds cross-spectra"
        )
    data, name = result_variable(result, variable, "record_section")
    if "channel" in data.dims:
        channels = [str(c) for c in data["channel"].values]
        if channel not in channels:
            raise ConfigError(f"record_section: no channel pair {channel!r} in the result; it has {channels}")
        data = data.sel(channel=channel)
    distance = data["distance"].values.astype(float)
    if "src" in data.coords and "rec" in data.coords:
        src, rec = data["src"].values, data["rec"].values
    else:  # the labels are 'SRC:REC'
        parts = [str(label).partition(":") for label in data["station_pair"].values]
        src, rec = np.array([p[0] for p in parts]), np.array([p[2] for p in parts])
    keep = (src != rec) & np.isfinite(distance)
    crosses = data.isel(station_pair=np.flatnonzero(keep))
    if crosses.sizes["station_pair"] == 0:
        raise DataError(f"record_section: {name!r} has no cross pair (src != rec) with a known distance to draw")
    if not np.isfinite(crosses.values).any():
        raise DataError(f"record_section: {name!r} holds no data (all NaN) at channel {channel!r}")
    return str(name), crosses


def _trace_spacing(distance: np.ndarray) -> float:
    """Typical gap between traces (km): sets the wiggle height and the margins."""
    if len(distance) > 1 and np.ptp(distance) > 0:
        return float(np.ptp(distance) / len(distance))
    return float(0.1 * distance.max()) if distance.max() > 0 else 1.0


def beam_power(
    beam: xr.DataArray,
    ax: Axes | None = None,
    *,
    frequency: float | None = None,
    normalize: bool = True,
    cmap: str = "viridis",
    colorbar: bool = True,
) -> Axes:
    """Plot beam power over slowness and backazimuth on polar axes, with its maximum marked.

    The angle is the backazimuth (the direction the waves come **from**), zero at north,
    clockwise; the radius is the slowness (s/km). A star marks the largest power (the line's
    ``gid`` is ``'maximum'``) and the title gives its backazimuth, slowness and velocity.

    Parameters
    ----------
    beam
        Beam power with dims ``slowness`` (s/km) and ``backazimuth`` (degrees clockwise from
        north), each with coordinate values (at least two), optionally ``frequency`` (Hz); a
        Dataset with one data variable is accepted too.
    ax
        A polar matplotlib Axes (``plt.subplots(subplot_kw={'projection': 'polar'})``) to draw
        into; a new figure when None.
    frequency
        With a ``frequency`` dim: the frequency (Hz) to show, the nearest one is taken; None
        averages over frequency.
    normalize
        Divide by the largest power, so the colours run up to 1.
    cmap
        matplotlib colour map.
    colorbar
        Add a colour bar.

    Returns
    -------
    matplotlib.axes.Axes
        The polar Axes drawn into.

    Raises
    ------
    ConfigError
        Missing dims or coordinates, other dims, a ``frequency`` without a frequency dim, or
        an Axes that is not polar.
    DataError
        All power values NaN.

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process`::

        beam = anxcor.analysis.beamform(result, freqmin=0.1, freqmax=0.5)
        ax = beam_power(beam)
    """
    plt = _pyplot()
    beam = _single_variable(beam, "beam_power")
    _check_dims(beam, ("slowness", "backazimuth"), ("frequency",), "beam_power")
    if "frequency" in beam.dims:
        if frequency is None:
            beam = beam.mean("frequency")
        elif "frequency" not in beam.coords:
            raise ConfigError("beam_power needs coordinate values for 'frequency' to select frequency=...")
        else:
            beam = beam.sel(frequency=frequency, method="nearest")
    elif frequency is not None:
        raise ConfigError(f"beam_power got frequency={frequency} but the beam has no 'frequency' dim: {tuple(beam.dims)}")
    if beam.sizes["slowness"] < 2 or beam.sizes["backazimuth"] < 2:
        raise ConfigError(f"beam_power needs at least 2 slownesses and 2 backazimuths, got {dict(beam.sizes)}")
    beam = beam.assign_coords(backazimuth=beam["backazimuth"] % 360.0).sortby("backazimuth").sortby("slowness")
    power = beam.transpose("slowness", "backazimuth").values.astype(float)
    if not np.isfinite(power).any():
        raise DataError("beam_power: every beam-power value is NaN")
    if ax is not None and getattr(ax, "name", None) != "polar":
        raise ConfigError(
            "beam_power draws on polar axes: make them with plt.subplots(subplot_kw={'projection': 'polar'})"
        )
    ax = _new_axes(ax, plt, projection="polar")
    largest = np.nanmax(power)
    if normalize and largest != 0:
        power = power / largest
    slowness = beam["slowness"].values.astype(float)
    backazimuth = beam["backazimuth"].values.astype(float)
    mesh = ax.pcolormesh(np.radians(backazimuth), slowness, power, shading="nearest", cmap=cmap)
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    ax.set_ylim(0, slowness.max())
    row, column = np.unravel_index(np.nanargmax(power), power.shape)
    best_s, best_baz = slowness[row], backazimuth[column]
    ax.plot(np.radians(best_baz), best_s, marker="*", markersize=14, color="red", markeredgecolor="white",
            linestyle="none", gid="maximum")
    speed = f", {1 / best_s:.2f} km/s" if best_s > 0 else ""
    ax.set_title(f"beam power: max at backazimuth {best_baz:g}\u00b0, slowness {best_s:.3g} s/km{speed}", pad=20)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, pad=0.1, shrink=0.8,
                           label="relative beam power" if normalize else (beam.name or "beam power"))
    return ax


def dispersion_image(
    image: xr.DataArray,
    picks: xr.Dataset | None = None,
    ax: Axes | None = None,
    *,
    normalize: bool = True,
    log_period: bool = False,
    cmap: str = "viridis",
    colorbar: bool = True,
) -> Axes:
    """Plot an FTAN image over period and group velocity, with dispersion picks.

    Good picks (``quality`` True) are drawn as filled black circles (line ``gid``
    ``'picks_good'``), poor ones as hollow circles (``'picks_poor'``); periods without a pick
    (NaN velocity) are left out.

    Parameters
    ----------
    image
        FTAN amplitude with dims ``period`` (s) and ``velocity`` (group velocity, km/s), each
        with coordinate values (at least two); a Dataset with one data variable is accepted too.
    picks
        Dispersion picks over ``period``: variables ``group_velocity`` (km/s) and ``quality``
        (bool), as :func:`anxcor.analysis.pick_dispersion` returns (its ``amplitude`` is not
        drawn). None draws the image only.
    ax
        A matplotlib Axes to draw into; a new figure when None.
    normalize
        Divide each period's column by its largest absolute value (the usual FTAN display:
        every period gets the full colour range).
    log_period
        Logarithmic period axis.
    cmap
        matplotlib colour map.
    colorbar
        Add a colour bar.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn into.

    Raises
    ------
    ConfigError
        Missing dims, coordinates or pick variables, or other dims.
    DataError
        All image values NaN.

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process`::

        image = anxcor.analysis.ftan(trace, 4.1, periods, velocities)
        ax = dispersion_image(image, anxcor.analysis.pick_dispersion(image))
    """
    plt = _pyplot()
    image = _single_variable(image, "dispersion_image")
    _check_dims(image, ("period", "velocity"), (), "dispersion_image")
    if image.sizes["period"] < 2 or image.sizes["velocity"] < 2:
        raise ConfigError(f"dispersion_image needs at least 2 periods and 2 velocities, got {dict(image.sizes)}")
    image = image.sortby("period").sortby("velocity")
    values = np.abs(image.transpose("velocity", "period").values.astype(float))
    if not np.isfinite(values).any():
        raise DataError("dispersion_image: every image value is NaN")
    if normalize:
        columns = np.nanmax(np.where(np.isfinite(values), values, np.nan), axis=0, keepdims=True)
        values = np.divide(values, columns, out=np.full_like(values, np.nan), where=columns > 0)
    if picks is not None:
        good, poor = _pick_points(picks)
    ax = _new_axes(ax, plt)
    mesh = ax.pcolormesh(image["period"].values, image["velocity"].values, values, shading="nearest", cmap=cmap)
    if picks is not None:
        ax.plot(*good, "o", markerfacecolor="black", markeredgecolor="white", linestyle="none", gid="picks_good",
                label="good pick")
        ax.plot(*poor, "o", markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.5, linestyle="none",
                gid="picks_poor", label="poor pick")
        ax.legend(loc="upper right", fontsize="small")
    if log_period:
        ax.set_xscale("log")
    ax.set_xlabel("period (s)")
    ax.set_ylabel("group velocity (km/s)")
    ax.set_title(_scalar_label(image, "FTAN"))
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="amplitude (normalised per period)" if normalize else "amplitude")
    return ax


def _pick_points(picks: xr.Dataset) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(period, velocity) of the good and of the poor picks, NaN velocities left out."""
    if not isinstance(picks, xr.Dataset):
        raise ConfigError(f"dispersion_image picks must be an xarray Dataset, got {type(picks).__name__}")
    missing = [name for name in ("group_velocity", "quality") if name not in picks.data_vars]
    if missing:
        raise ConfigError(
            f"dispersion_image picks need variables 'group_velocity' and 'quality', missing {missing}; "
            f"they have {list(picks.data_vars)}"
        )
    for name in ("group_velocity", "quality"):
        if picks[name].dims != ("period",):
            raise ConfigError(f"dispersion_image picks[{name!r}] must have dims ('period',), got {picks[name].dims}")
    if "period" not in picks.coords:
        raise ConfigError("dispersion_image picks need coordinate values for 'period'")
    period = picks["period"].values.astype(float)
    velocity = picks["group_velocity"].values.astype(float)
    quality = picks["quality"].values.astype(bool)
    found = np.isfinite(velocity)
    good, poor = found & quality, found & ~quality
    return (period[good], velocity[good]), (period[poor], velocity[poor])


def _scalar_label(array: xr.DataArray, prefix: str) -> str:
    """A title from the scalar coordinates left by selection (station pair, channel, distance)."""
    parts = [prefix]
    for name in ("station_pair", "channel"):
        if name in array.coords and array[name].ndim == 0:
            parts.append(str(array[name].values))
    if "distance" in array.coords and array["distance"].ndim == 0:
        parts.append(f"{float(array['distance']):.2f} km")
    return " ".join(parts)


def dvv_timeseries(
    result: xr.Dataset,
    pair: str | None = None,
    ax: Axes | None = None,
    *,
    channel: str | None = None,
    network: bool = True,
) -> Axes:
    """Plot dv/v against time, in percent, with error bars: the network average and one pair.

    The time dim is the one of ``dvv_network``: ``window`` for substacks
    (``process(stack=k)``), whose coordinate (UTC start of each substack, seconds since
    1970) is drawn as dates; any other coordinate is drawn as it is. dv/v and its errors are
    relative changes, multiplied by 100, unless the variable's ``units`` attribute is
    ``'%'`` or ``'percent'``. The error bars reach ``+-error``. Each drawn series is an
    errorbar container in ``ax.containers`` labelled ``'network'`` or with the pair.

    Parameters
    ----------
    result
        dv/v as :func:`anxcor.analysis.dvv` returns: variables ``dvv`` and ``error`` with
        dims (time dim, ``station_pair``, ``channel``), ``dvv_network`` and ``error_network``
        over the time dim only.
    pair
        A station pair to draw as well, e.g. ``'XX.S000:XX.S001'``; None for none.
    ax
        A matplotlib Axes to draw into; a new figure when None.
    channel
        The pair's channel pair (e.g. ``'Z:Z'``); may be left out when there is only one.
    network
        Draw the network average.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn into.

    Raises
    ------
    ConfigError
        Missing variables or coordinates, an unknown pair or channel, nothing to draw.
    DataError
        Negative errors.

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process`::

        result = anx.process(times, stack=24)
        ax = dvv_timeseries(anxcor.analysis.dvv(result), pair="XX.S000:XX.S001")
    """
    plt = _pyplot()
    if not isinstance(result, xr.Dataset):
        raise ConfigError(f"dvv_timeseries needs an xarray Dataset of dv/v, got {type(result).__name__}")
    if not network and pair is None:
        raise ConfigError("dvv_timeseries has nothing to draw: network=False and no pair")
    needed = ["dvv_network", "error_network"] + (["dvv", "error"] if pair is not None else [])
    missing = [name for name in needed if name not in result.data_vars]
    if missing:
        raise ConfigError(f"dvv_timeseries needs variables {needed}, missing {missing}; the Dataset has {list(result.data_vars)}")
    if result["dvv_network"].ndim != 1:
        raise ConfigError(f"dvv_timeseries: 'dvv_network' must have one (time) dim, got {result['dvv_network'].dims}")
    time_dim = result["dvv_network"].dims[0]
    if time_dim not in result.coords:
        raise ConfigError(f"dvv_timeseries needs coordinate values for the time dim {time_dim!r}")
    x = _time_axis(result[time_dim])
    series = []
    if network:
        series.append(("network", result["dvv_network"], result["error_network"]))
    if pair is not None:
        series.append((pair, *_pair_series(result, time_dim, pair, channel)))
    ax = _new_axes(ax, plt)
    for label, dvv, error in series:
        values, errors = _percent(dvv), _percent(error)
        if np.any(errors < 0):
            raise DataError(f"dvv_timeseries: {label} has negative errors; errors are standard deviations (>= 0)")
        ax.errorbar(x, values, yerr=errors, fmt="o-", capsize=3, markersize=4, label=label)
    ax.axhline(0.0, color="gray", linewidth=0.6)
    ax.set_xlabel("time (UTC)" if np.issubdtype(x.dtype, np.datetime64) else time_dim)
    ax.set_ylabel("dv/v (%)")
    ax.legend(loc="best", fontsize="small")
    if np.issubdtype(x.dtype, np.datetime64):
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return ax


def _time_axis(coordinate: xr.DataArray) -> np.ndarray:
    """The x values: a numeric ``window`` coordinate (UTC seconds) as datetime64, others as they are."""
    values = coordinate.values
    if coordinate.name == "window" and np.issubdtype(values.dtype, np.number):
        return (np.asarray(values, dtype=float) * 1e6).round().astype("datetime64[us]")
    return values


def _pair_series(result: xr.Dataset, time_dim: str, pair: str, channel: str | None) -> tuple[xr.DataArray, xr.DataArray]:
    """dv/v and error of one pair (and channel) over the time dim."""
    dvv, error = result["dvv"], result["error"]
    if "station_pair" not in dvv.dims or "station_pair" not in dvv.coords:
        raise ConfigError(f"dvv_timeseries: 'dvv' needs a labelled 'station_pair' dim to pick {pair!r}, got {dvv.dims}")
    pairs = [str(p) for p in dvv["station_pair"].values]
    if pair not in pairs:
        shown = pairs if len(pairs) <= 10 else [*pairs[:10], "..."]
        raise ConfigError(f"dvv_timeseries: no station pair {pair!r}; the Dataset has {shown}")
    selection = {"station_pair": pair}
    if "channel" in dvv.dims:
        channels = [str(c) for c in dvv["channel"].values]
        if channel is None:
            if len(channels) != 1:
                raise ConfigError(f"dvv_timeseries: choose a channel pair with channel=..., one of {channels}")
            channel = channels[0]
        if channel not in channels:
            raise ConfigError(f"dvv_timeseries: no channel pair {channel!r}; the Dataset has {channels}")
        selection["channel"] = channel
    dvv, error = dvv.sel(selection), error.sel(selection)
    if dvv.dims != (time_dim,) or error.dims != (time_dim,):
        raise ConfigError(
            f"dvv_timeseries: 'dvv' and 'error' must have dims ({time_dim!r}, 'station_pair', 'channel'), "
            f"got {result['dvv'].dims} and {result['error'].dims}"
        )
    return dvv, error


def _percent(values: xr.DataArray) -> np.ndarray:
    """Values in percent: times 100 unless the ``units`` attribute already says percent."""
    data = values.values.astype(float)
    return data if str(values.attrs.get("units", "")).strip() in ("%", "percent") else 100.0 * data
