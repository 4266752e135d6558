"""The ``anxcor`` xarray Dataset accessor: analyses and plots as methods of a result.

``import anxcor`` registers it, so on any result of :meth:`anxcor.core.Anxcor.process`::

    result.anxcor.plot_record_section(velocities=(2.0, 3.0))
    beam = result.anxcor.beamform(freqmin=0.1, freqmax=0.5)
    result.anxcor.plot_beam(0.1, 0.5)
    image = result.anxcor.ftan("XX.S000:XX.S001", periods=periods, velocities=velocities)
    result.anxcor.plot_dispersion("XX.S000:XX.S001", periods=periods, velocities=velocities)
    changes = substacks.anxcor.dvv()           # a result of process(stack=k)
    changes.anxcor.plot_dvv(pair="XX.S000:XX.S001")
    stream = result.anxcor.to_obspy()

Each method only delegates: to :mod:`anxcor.analysis` (imported when called), to
:mod:`anxcor.plot` or to :func:`anxcor.io.xarray_to_obspy`, and returns what they return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .errors import ConfigError
from .validation import result_variable

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from obspy import Stream

__all__ = ["AnxcorAccessor"]


@xr.register_dataset_accessor("anxcor")
class AnxcorAccessor:
    """Analyses and plots of an anxcor result, as ``result.anxcor.<method>``.

    Parameters
    ----------
    dataset
        The Dataset the accessor is reached from (xarray passes it).

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process`::

        import anxcor  # registers the accessor
        ax = result.anxcor.plot_record_section(velocities=(3.0,))
    """

    def __init__(self, dataset: xr.Dataset):
        self._dataset = dataset

    # --- plots of the result itself -------------------------------------------------------

    def plot_record_section(self, **kwargs: Any) -> Axes:
        """Record section of the stacked correlations: :func:`anxcor.plot.record_section`.

        Parameters
        ----------
        **kwargs
            ``variable``, ``channel``, ``velocities`` (km/s), ``ax``, as
            :func:`~anxcor.plot.record_section` takes them.

        Returns
        -------
        matplotlib.axes.Axes
            The Axes drawn into.
        """
        from .plot import record_section

        return record_section(self._dataset, **kwargs)

    def to_obspy(self, *, skip_empty: bool = False) -> Stream:
        """One obspy Trace per dataset x station pair x channel pair: :func:`anxcor.io.xarray_to_obspy`.

        Parameters
        ----------
        skip_empty
            Leave out the all-NaN traces.

        Returns
        -------
        obspy.Stream
            The traces, in the result's order.
        """
        from .io import xarray_to_obspy

        return xarray_to_obspy(self._dataset, skip_empty=skip_empty)

    # --- beamforming ------------------------------------------------------------------------

    def beamform(self, freqmin: float, freqmax: float, **kwargs: Any) -> xr.DataArray:
        """Beam power of the result between ``freqmin`` and ``freqmax`` Hz: :func:`anxcor.analysis.beamform`.

        Parameters
        ----------
        freqmin, freqmax
            Frequency band in Hz.
        **kwargs
            ``slowness``, ``azimuth``, ``method``, ``channel``, ``variable``,
            ``per_frequency``, ``loading``, as :func:`anxcor.analysis.beamform` takes them.

        Returns
        -------
        xarray.DataArray
            Beam power over ``slowness`` (s/km) and ``backazimuth`` (degrees).
        """
        from .analysis import beamform

        return beamform(self._dataset, freqmin=freqmin, freqmax=freqmax, **kwargs)

    def plot_beam(
        self,
        freqmin: float,
        freqmax: float,
        *,
        ax: Axes | None = None,
        frequency: float | None = None,
        normalize: bool = True,
        **kwargs: Any,
    ) -> Axes:
        """Beamform (:meth:`beamform`) and draw the beam power (:func:`anxcor.plot.beam_power`).

        Parameters
        ----------
        freqmin, freqmax
            Frequency band in Hz.
        ax
            A polar Axes to draw into; a new figure when None.
        frequency
            With a ``frequency`` dim in the beam: the frequency (Hz) to show; None averages.
        normalize
            Divide by the largest power.
        **kwargs
            Passed to :func:`anxcor.analysis.beamform`.

        Returns
        -------
        matplotlib.axes.Axes
            The polar Axes drawn into.
        """
        from .plot import beam_power

        beam = self.beamform(freqmin, freqmax, **kwargs)
        return beam_power(beam, ax=ax, frequency=frequency, normalize=normalize)

    # --- dispersion -------------------------------------------------------------------------

    def ftan(
        self,
        pair: str,
        channel: str = "Z:Z",
        *,
        variable: str | None = None,
        distance_km: float | None = None,
        **kwargs: Any,
    ) -> xr.DataArray:
        """FTAN image of one station pair's stacked correlation: :func:`anxcor.analysis.ftan`.

        Parameters
        ----------
        pair
            Station pair, e.g. ``'XX.S000:XX.S001'``.
        channel
            Channel pair, e.g. ``'Z:Z'``.
        variable
            Data variable (dataset name); default the first one.
        distance_km
            Inter-station distance in km; default the pair's ``distance`` coordinate.
        **kwargs
            ``periods`` (s), ``velocities`` (km/s), ``alpha``, ``symmetric``, as
            :func:`anxcor.analysis.ftan` takes them.

        Returns
        -------
        xarray.DataArray
            The FTAN image over ``period`` (s) and ``velocity`` (km/s).
        """
        from .analysis import ftan

        trace = self._pair_trace(pair, channel, variable)
        if distance_km is None:
            if "distance" not in trace.coords or not np.isfinite(float(trace["distance"])):
                raise ConfigError(
                    f"ftan needs the distance of {pair!r}: the result has no known 'distance' for it; "
                    "pass distance_km=... or station coordinates to add_dataset"
                )
            distance_km = float(trace["distance"])
        return ftan(trace, distance_km=distance_km, **kwargs)

    def plot_dispersion(
        self,
        pair: str,
        channel: str = "Z:Z",
        *,
        picks: bool = True,
        ax: Axes | None = None,
        normalize: bool = True,
        log_period: bool = False,
        **kwargs: Any,
    ) -> Axes:
        """FTAN image (:meth:`ftan`) with its picks (:func:`anxcor.analysis.pick_dispersion`), drawn.

        Parameters
        ----------
        pair
            Station pair, e.g. ``'XX.S000:XX.S001'``.
        channel
            Channel pair, e.g. ``'Z:Z'``.
        picks
            Pick the dispersion curve and draw it over the image.
        ax
            A matplotlib Axes to draw into; a new figure when None.
        normalize
            Normalise each period's column (see :func:`anxcor.plot.dispersion_image`).
        log_period
            Logarithmic period axis.
        **kwargs
            Passed to :meth:`ftan` (``variable``, ``distance_km``, ``periods``,
            ``velocities``, ...).

        Returns
        -------
        matplotlib.axes.Axes
            The Axes drawn into.
        """
        from .plot import dispersion_image

        image = self.ftan(pair, channel, **kwargs)
        curve = None
        if picks:
            from .analysis import pick_dispersion

            curve = pick_dispersion(image)
        return dispersion_image(image, curve, ax=ax, normalize=normalize, log_period=log_period)

    def _pair_trace(self, pair: str, channel: str, variable: str | None) -> xr.DataArray:
        """One stacked correlation over lag time, validated."""
        data, name = result_variable(self._dataset, variable, "result.anxcor")
        if "window" in data.dims:
            raise ConfigError(
                "ftan needs one stack per pair, but this result keeps a 'window' dim: "
                "select one with .isel(window=i) or average with .mean('window') first"
            )
        for dim, value in (("station_pair", pair), ("channel", channel)):
            if dim not in data.dims:
                raise ConfigError(f"{name!r} has no {dim!r} dim (dims {data.dims}); is this an anxcor result?")
            labels = [str(v) for v in data[dim].values]
            if value not in labels:
                shown = labels if len(labels) <= 10 else [*labels[:10], "..."]
                hint = ""
                if dim == "station_pair" and ":".join(str(value).split(":")[::-1]) in labels:
                    hint = " (pairs are sorted, source first: reverse the pair and its lags)"
                raise ConfigError(f"no {dim} {value!r} in {name!r}{hint}; it has {shown}")
        return data.sel(station_pair=pair, channel=channel)

    # --- dv/v -------------------------------------------------------------------------------

    def dvv(self, **kwargs: Any) -> xr.Dataset:
        """Relative velocity changes of substacks: :func:`anxcor.analysis.dvv`.

        Parameters
        ----------
        **kwargs
            ``reference``, ``method`` and the method's options, as
            :func:`anxcor.analysis.dvv` takes them.

        Returns
        -------
        xarray.Dataset
            ``dvv``, ``error``, ``dvv_network``, ``error_network`` over the substacks.
        """
        from .analysis import dvv

        return dvv(self._dataset, **kwargs)

    def plot_dvv(self, pair: str | None = None, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Draw a dv/v Dataset (what :meth:`dvv` returns): :func:`anxcor.plot.dvv_timeseries`.

        Parameters
        ----------
        pair
            A station pair to draw besides the network average.
        ax
            A matplotlib Axes to draw into; a new figure when None.
        **kwargs
            ``channel``, ``network``, as :func:`~anxcor.plot.dvv_timeseries` takes them.

        Returns
        -------
        matplotlib.axes.Axes
            The Axes drawn into.
        """
        from .plot import dvv_timeseries

        return dvv_timeseries(self._dataset, pair=pair, ax=ax, **kwargs)
