"""Nine-component rotation (ZNE -> ZRT), symmetric lags and a 9-component normaliser.

These steps work on a *result*: the labelled Dataset of stacked (or windowed) correlations
with dims ``channel`` (``'Z:N'`` = source component : receiver component), ``station_pair``
and ``time`` (lag, s), and an optional leading ``window`` dim.

Rotation convention (that of Lin, Moschetti & Ritzwoller 2008, eq. 1, of NoisePy, and of
:func:`obspy.signal.rotate.rotate_ne_rt`):

* ``Z`` is vertical, up, and is not changed by the rotation.
* ``R`` (radial) is horizontal, along the great circle between the two stations, pointing
  *away from the source* (the first station of the pair) at *both* ends. At the source its
  direction is the pair's ``azimuth`` ``az``; at the receiver it is ``backazimuth + 180``.
* ``T`` (transverse) is ``R`` turned 90 degrees clockwise seen from above (direction
  ``az + 90`` at the source).

For a horizontal direction ``d`` (degrees clockwise from north)::

    R = cos(d) N + sin(d) E
    T = -sin(d) N + cos(d) E

So with ``az = 0`` (path to the north) R is north and T is east. The frame ``(R, T, Z)`` is
right-handed with Z pointing *down* (Aki & Richards' north-east-down frame turned about the
vertical); with Z up, as recorded, it is ``(T, R, Z)`` that is right-handed. Autocorrelations
(azimuth 0, backazimuth 180 in the result) get R = N and T = E at both ends, so their
rotation is a relabelling: ``R:R = N:N``, ``R:T = N:E``, ...

The rotated tensor of a pair is ``C_ZRT[a, b] = sum_{i, j} S[a, i] Q[b, j] C_ZNE[i, j]``
where ``S`` (source) and ``Q`` (receiver) are the 3 x 3 component rotations. Flattening the
channel pair ``(a, b)`` to ``3 a + b`` (the result's channel order) makes that one 9 x 9
matrix, the Kronecker product ``S (x) Q`` (:func:`rotation_matrix_9`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import ConfigError, DataError

__all__ = [
    "ZNE_CHANNELS",
    "ZRT_CHANNELS",
    "rotation_matrix_3",
    "rotation_matrix_9",
    "rotate_tensor",
    "align_station_pairs",
    "symmetric_part",
    "symmetric_lags",
    "normalize_common",
    "XArray9ComponentNormalizer",
]

logger = logging.getLogger(__name__)

#: Channel-pair labels of a ZNE result, in the result's order (source component first).
ZNE_CHANNELS: tuple[str, ...] = tuple(f"{a}:{b}" for a in "ZNE" for b in "ZNE")
#: Channel-pair labels after :func:`align_station_pairs`, same order (Z, R, T for Z, N, E).
ZRT_CHANNELS: tuple[str, ...] = tuple(f"{a}:{b}" for a in "ZRT" for b in "ZRT")

#: Which input components feed each output component (Z from Z; R and T from N and E).
_FEEDS_3 = np.array([[True, False, False], [False, True, True], [False, True, True]])
#: Which ZNE channel pairs feed each ZRT channel pair (rows: ZRT, columns: ZNE).
_FEEDS_9 = np.kron(_FEEDS_3, _FEEDS_3).astype(bool)

_ROTATION_NOTE = (
    "ZNE -> ZRT (Lin et al. 2008 / NoisePy / obspy rotate_ne_rt convention): Z up, unchanged; "
    "R horizontal along the path pointing away from the source at both ends (direction = azimuth "
    "at the source, backazimuth + 180 at the receiver); T = R turned 90 degrees clockwise seen from "
    "above; for a direction d clockwise from north R = cos(d) N + sin(d) E, T = -sin(d) N + cos(d) E; "
    "n_windows of a rotated channel pair = minimum over the ZNE channel pairs that feed it"
)
_SYMMETRIC_NOTE = "symmetric: (c(t) + c(-t)) / 2 for t >= 0 (causal and time-reversed acausal parts averaged)"
_ROTATED_LABELS = set(ZRT_CHANNELS) - set(ZNE_CHANNELS)


# ---------------------------------------------------------------------------------- kernels
def rotation_matrix_3(direction_deg) -> np.ndarray:
    """Rotation of one station's components from (Z, N, E) to (Z, R, T).

    Parameters
    ----------
    direction_deg : float or array_like
        Direction of R, degrees clockwise from north (any shape).

    Returns
    -------
    numpy.ndarray
        Shape ``(..., 3, 3)``; row ``a`` holds the weights of Z, N, E in output component
        ``a`` (Z, R, T): ``R = cos(d) N + sin(d) E``, ``T = -sin(d) N + cos(d) E``.

    Examples
    --------
    >>> rotation_matrix_3(90.0).round(12)      # R = E, T = -N
    array([[ 1.,  0.,  0.],
           [ 0.,  0.,  1.],
           [ 0., -1.,  0.]])
    """
    d = np.deg2rad(np.asarray(direction_deg, dtype=np.float64))
    cos, sin = np.cos(d), np.sin(d)
    zero, one = np.zeros_like(d), np.ones_like(d)
    rows = [
        np.stack([one, zero, zero], axis=-1),
        np.stack([zero, cos, sin], axis=-1),
        np.stack([zero, -sin, cos], axis=-1),
    ]
    return np.stack(rows, axis=-2)


def rotation_matrix_9(azimuth_deg, backazimuth_deg) -> np.ndarray:
    """The 9 x 9 matrix rotating a pair's ZNE correlation tensor to ZRT.

    Parameters
    ----------
    azimuth_deg : float or array_like
        Azimuth at the source towards the receiver, degrees clockwise from north.
    backazimuth_deg : float or array_like
        Backazimuth at the receiver towards the source, degrees clockwise from north; it
        broadcasts against ``azimuth_deg``.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., 9, 9)``. Row ``3 a + b`` gives the weights of the ZNE channel pairs
        (in :data:`ZNE_CHANNELS` order) in the ZRT channel pair ``3 a + b``
        (:data:`ZRT_CHANNELS` order): the Kronecker product of the source rotation
        (R towards ``azimuth``) and the receiver rotation (R towards ``backazimuth + 180``).
        It is orthogonal; ``rotation_matrix_9(-az, -baz)`` is its inverse.

    Examples
    --------
    >>> m = rotation_matrix_9(30.0, 210.0)
    >>> m.shape, bool(np.allclose(m @ m.T, np.eye(9)))
    ((9, 9), True)
    """
    az = np.asarray(azimuth_deg, dtype=np.float64)
    baz = np.asarray(backazimuth_deg, dtype=np.float64)
    az, baz = np.broadcast_arrays(az, baz)
    source = rotation_matrix_3(az)
    receiver = rotation_matrix_3(baz + 180.0)
    kron = np.einsum("...ac,...bd->...abcd", source, receiver)
    return kron.reshape((*az.shape, 9, 9))


def rotate_tensor(data, matrix: np.ndarray):
    """Apply 9 x 9 channel rotations to correlations, channel axis last.

    Parameters
    ----------
    data : numpy.ndarray or dask array
        Correlations shaped ``(..., 9)``, channels last in :data:`ZNE_CHANNELS` order (any
        unit; the rotation keeps it).
    matrix : numpy.ndarray
        Rotations shaped ``(..., 9, 9)`` (e.g. from :func:`rotation_matrix_9`), broadcasting
        against the leading dims of ``data``.

    Returns
    -------
    numpy.ndarray or dask array
        ``matrix @ data`` shaped like the broadcast of both, channels last. An output channel
        is NaN wherever one of the input channels that feed it (Z from Z, R and T from N and E,
        at each end) is NaN, whatever the weight; a NaN matrix gives NaN.
    """
    nan_in = np.isnan(data)
    filled = np.where(nan_in, 0.0, data)
    if np.issubdtype(np.asarray(matrix).dtype, np.floating) and np.issubdtype(filled.dtype, np.floating):
        matrix = np.asarray(matrix, dtype=np.result_type(filled.dtype, np.float32))
    rotated = (matrix @ filled[..., None])[..., 0]
    fed_by_nan = (nan_in.astype(np.float32) @ _FEEDS_9.T.astype(np.float32)) > 0
    return np.where(fed_by_nan, np.nan, rotated)


def symmetric_part(data, axis: int = -1):
    """Average of the causal part and the time-reversed acausal part of correlations.

    Parameters
    ----------
    data : numpy.ndarray or dask array
        Correlations with ``2 n + 1`` lags along ``axis``, centred on lag 0 (lags
        ``-n dt ... n dt``).
    axis : int
        The lag axis.

    Returns
    -------
    numpy.ndarray or dask array
        ``(c(t) + c(-t)) / 2`` for the ``n + 1`` lags ``t = 0, dt, ..., n dt`` along ``axis``
        (lag 0 is ``c(0)`` itself).

    Examples
    --------
    >>> symmetric_part(np.array([1.0, 2.0, 3.0, 4.0, 7.0]))
    array([3., 3., 4.])
    """
    size = data.shape[axis]
    if size % 2 != 1:
        raise DataError(f"symmetric_part needs an odd number of lags centred on 0, got {size}")
    centre = size // 2
    moved = np.moveaxis(data, axis, -1)
    causal = moved[..., centre:]
    acausal = moved[..., centre::-1]
    return np.moveaxis(0.5 * (causal + acausal), -1, axis)


def normalize_common(data, reference: int | None = None):
    """Divide the channels of each pair by one common factor.

    Parameters
    ----------
    data : numpy.ndarray or dask array
        Correlations shaped ``(..., channels, time)``.
    reference : int or None
        None: the factor is the largest absolute value over all channels and lags. An int:
        the largest absolute value of that channel (index along the channel axis).

    Returns
    -------
    numpy.ndarray or dask array
        ``data`` divided by the factor of its leading index; NaNs are ignored when the factor
        is taken, and a factor of 0 or NaN (all-zero or all-NaN data) is replaced by 1, so
        such data come back unchanged.

    Examples
    --------
    >>> normalize_common(np.array([[[1.0, -4.0], [2.0, 0.5]]]))
    array([[[ 0.25 , -1.   ],
            [ 0.5  ,  0.125]]])
    """
    magnitude = np.where(np.isnan(data), 0.0, np.abs(data))
    if reference is not None:
        magnitude = magnitude[..., reference : reference + 1, :]
    factor = magnitude.max(axis=(-2, -1), keepdims=True)
    factor = np.where((factor > 0) & np.isfinite(factor), factor, 1.0)
    return data / factor


# ------------------------------------------------------------------------ xarray wrappers
def _check_result(result) -> None:
    if not isinstance(result, xr.Dataset):
        raise ConfigError(f"expected an anxcor result (xarray.Dataset), got {type(result).__name__}")
    if "channel" not in result.dims or "station_pair" not in result.dims:
        raise DataError(
            f"expected a result with dims 'channel' and 'station_pair', got dims {tuple(result.dims)}"
        )


def _count_coords(result: xr.Dataset) -> list[str]:
    return [
        name
        for name in result.coords
        if (name == "n_windows" or str(name).startswith("n_windows_")) and "channel" in result[name].dims
    ]


def _append_history(attrs: dict, entry: dict) -> None:
    history = attrs.get("history")
    if history is None:
        attrs["history"] = json.dumps([entry])
        return
    try:
        steps = json.loads(history)
    except (TypeError, ValueError):
        logger.warning("attrs['history'] is not JSON; the %s step is not recorded there", entry["task"])
        return
    if isinstance(steps, list):
        steps.append(entry)
        attrs["history"] = json.dumps(steps)


def align_station_pairs(result: xr.Dataset) -> xr.Dataset:
    """Rotate every pair's 9-component correlation tensor from ZNE to ZRT.

    Parameters
    ----------
    result : xarray.Dataset
        An anxcor result with the 9 channel pairs ``'Z:Z' ... 'E:E'`` (any order) and the
        per-pair coordinates ``azimuth`` and ``backazimuth`` (degrees), which the result
        carries when the station coordinates are known. With or without a ``window`` dim.

    Returns
    -------
    xarray.Dataset
        The same Dataset with every data variable that has a ``channel`` dim rotated (lags
        and amplitudes unchanged in unit) and the channel labels
        ``'Z:Z', 'Z:R', 'Z:T', 'R:Z', 'R:R', 'R:T', 'T:Z', 'T:R', 'T:T'`` (source component
        first). Coordinates and attrs are kept; ``n_windows`` (or ``n_windows_<name>``) of a
        rotated channel pair is the minimum count over the ZNE channel pairs that feed it
        (e.g. ``'R:T'`` over N:N, N:E, E:N, E:E), and an output is NaN where one of those is
        NaN. ``attrs['rotation']`` describes the convention (see the module docstring: R
        along the path away from the source at both ends, T = R turned 90 degrees
        clockwise, as in Lin et al. 2008). Pairs whose azimuth is unknown (NaN) keep Z:Z (it
        needs no rotation); their other channel pairs are NaN with a count of 0, and a warning
        is logged. Other coordinates along ``channel``
        cannot be rotated and are dropped (with a warning).

    Raises
    ------
    DataError
        No ``azimuth``/``backazimuth`` coordinates (station coordinates unknown), or a
        ZNE channel pair is missing.
    ConfigError
        ``result`` is not a Dataset, or it is already rotated.

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process` on a dataset named ``syn``::

        rotated = align_station_pairs(result)
        rotated.syn.sel(channel="R:R", station_pair="XX.S000:XX.S001")
    """
    _check_result(result)
    labels = [str(c) for c in result["channel"].values]
    if "rotation" in result.attrs or _ROTATED_LABELS & set(labels):
        raise ConfigError(
            "align_station_pairs: this result is already rotated to ZRT "
            f"(channels {labels}); rotate the original ZNE result instead"
        )
    missing = [c for c in ZNE_CHANNELS if c not in labels]
    if missing:
        raise DataError(
            f"align_station_pairs needs the 9 ZNE channel pairs {list(ZNE_CHANNELS)}, "
            f"got {labels} (missing {missing}); rotation needs both horizontals at both stations"
        )
    absent = [name for name in ("azimuth", "backazimuth") if name not in result.coords]
    if absent:
        raise DataError(
            f"align_station_pairs needs the per-pair coordinates 'azimuth' and 'backazimuth' (missing "
            f"{absent}): the station coordinates are needed. Give the database a get_inventory() or "
            "get_coordinates(), or pass add_dataset(..., inventory=<Inventory or coordinates table>)"
        )

    ordered = result.sel(channel=list(ZNE_CHANNELS))
    azimuth = np.asarray(ordered["azimuth"].transpose("station_pair").values, dtype=np.float64)
    backazimuth = np.asarray(ordered["backazimuth"].transpose("station_pair").values, dtype=np.float64)
    unknown = ~(np.isfinite(azimuth) & np.isfinite(backazimuth))
    if unknown.any():
        pairs = ordered["station_pair"].values[unknown]
        logger.warning(
            "align_station_pairs: %d pair(s) without azimuth/backazimuth keep only Z:Z, the rest is NaN: %s",
            int(unknown.sum()), [str(p) for p in pairs[:10]],
        )
    matrix = rotation_matrix_9(azimuth, backazimuth)  # (pairs, 9, 9), NaN for unknown pairs

    counts = _count_coords(ordered)
    other = [
        name for name in ordered.coords
        if name != "channel" and name not in counts and "channel" in ordered[name].dims
    ]
    if other:
        logger.warning("align_station_pairs drops coordinates along 'channel' it cannot rotate: %s", other)
    ordered = ordered.drop_vars(other)

    rotated = ordered.copy()
    for name, variable in ordered.data_vars.items():
        if "channel" not in variable.dims or "station_pair" not in variable.dims:
            continue
        values = xr.apply_ufunc(
            rotate_tensor,
            variable,
            kwargs={"matrix": matrix},
            input_core_dims=[["station_pair", "channel"]],
            output_core_dims=[["station_pair", "channel"]],
            dask="allowed",
            keep_attrs=True,
        )
        rotated[name] = values.transpose(*variable.dims)

    for name in counts:
        count = ordered[name]
        pieces = []
        for row in range(9):
            feeders = [ZNE_CHANNELS[k] for k in np.flatnonzero(_FEEDS_9[row])]
            pieces.append(count.sel(channel=feeders).min("channel"))
        combined = xr.concat(pieces, dim="channel", coords="minimal", compat="override", join="override")
        combined = combined.assign_coords(channel=list(ZNE_CHANNELS)).transpose(*count.dims)
        if unknown.any():
            keep = xr.DataArray(~unknown[None, :] | (np.arange(9) == 0)[:, None], dims=("channel", "station_pair"))
            combined = combined.where(keep.assign_coords(channel=list(ZNE_CHANNELS)), 0)
        rotated = rotated.assign_coords({name: combined.astype(count.dtype)})
        rotated[name].attrs.update(count.attrs)

    channel_attrs = dict(result["channel"].attrs)
    rotated = rotated.assign_coords(channel=list(ZRT_CHANNELS))
    rotated["channel"].attrs.update(channel_attrs)
    rotated["channel"].attrs["components"] = "Z up; R along the path away from the source; T = R turned 90 deg clockwise"
    rotated.attrs = dict(result.attrs)
    rotated.attrs["rotation"] = _ROTATION_NOTE
    _append_history(rotated.attrs, {"task": "align_station_pairs", "step": f"{__name__}.align_station_pairs", "params": {}})
    return rotated


def symmetric_lags(result: xr.Dataset) -> xr.Dataset:
    """Fold each correlation onto positive lags: the mean of its causal and acausal parts.

    Parameters
    ----------
    result : xarray.Dataset
        An anxcor result whose ``time`` (lag, s) is symmetric about 0 and includes 0.

    Returns
    -------
    xarray.Dataset
        The result on the lags ``time >= 0`` only, each variable with a ``time`` dim
        replaced by ``(c(t) + c(-t)) / 2`` (lag 0 unchanged). Other coordinates and attrs are
        kept; ``attrs['lags']`` records the folding.

    Raises
    ------
    DataError
        No ``time`` dim, or lags not symmetric about 0.
    ConfigError
        ``result`` is not a Dataset, or it is already folded.

    Notes
    -----
    With the sign convention of anxcor (positive lag = energy travelling from source to
    receiver), the causal part holds waves going from the source to the receiver and the
    time-reversed acausal part waves going the other way; averaging them raises the
    signal-to-noise ratio when the noise sources are unevenly distributed, and it is the
    usual input to dispersion measurements. This assumes the two parts carry the same
    waveform, which holds for the diagonal channel pairs and, in a ZRT frame, for Rayleigh
    waves on Z:R and R:Z. It does not hold for a wavefield whose radial motion is in phase with
    the vertical (like :mod:`anxcor.datasets`): there the parts of Z:R and R:Z have opposite
    signs and cancel.

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process`::

        folded = symmetric_lags(result)
        float(folded.time.min())  # 0.0
    """
    if not isinstance(result, xr.Dataset):
        raise ConfigError(f"expected an anxcor result (xarray.Dataset), got {type(result).__name__}")
    if "lags" in result.attrs:
        raise ConfigError(f"symmetric_lags: this result is already folded ({result.attrs['lags']})")
    if "time" not in result.dims:
        raise DataError(f"symmetric_lags needs a 'time' (lag) dim, got dims {tuple(result.dims)}")
    lags = np.asarray(result["time"].values, dtype=np.float64)
    step = np.min(np.abs(np.diff(lags))) if lags.size > 1 else 1.0
    symmetric = (
        lags.size % 2 == 1
        and np.all(np.diff(lags) > 0)
        and np.allclose(lags, -lags[::-1], rtol=0.0, atol=1e-6 * step)
        and abs(lags[lags.size // 2]) <= 1e-6 * step
    )
    if not symmetric:
        raise DataError(
            "symmetric_lags needs increasing lags symmetric about 0 and including 0, got "
            f"{lags.size} lags from {lags[0] if lags.size else None} to {lags[-1] if lags.size else None} s"
        )
    folded = result.isel(time=slice(lags.size // 2, None))
    folded = folded.assign_coords(time=np.abs(folded["time"].values))
    folded["time"].attrs.update(result["time"].attrs)
    for name, variable in result.data_vars.items():
        if "time" not in variable.dims:
            continue
        values = xr.apply_ufunc(
            symmetric_part,
            variable,
            input_core_dims=[["time"]],
            output_core_dims=[["time"]],
            exclude_dims={"time"},
            dask="allowed",
            keep_attrs=True,
        )
        folded[name] = values.assign_coords(time=folded["time"]).transpose(*variable.dims)
    folded.attrs["lags"] = _SYMMETRIC_NOTE
    _append_history(folded.attrs, {"task": "symmetric_lags", "step": f"{__name__}.symmetric_lags", "params": {}})
    return folded


@dataclass(frozen=True, kw_only=True)
class XArray9ComponentNormalizer:
    """Scale all channel pairs of each station pair by one common factor.

    Dividing every channel pair of a pair (and of a window, when the result keeps windows)
    by the same number brings pairs at different distances and amplitudes to a common scale
    while keeping the relative amplitudes of the components (e.g. R:R against T:T, or Z:R
    against Z:Z), which per-channel normalisation would destroy.

    Parameters
    ----------
    reference : str or None
        None (default): the factor is the largest absolute value over all channel pairs and
        lags of the pair. A channel label (``'Z:Z'``, ``'R:R'``, ``'N:E'`` ...): the largest
        absolute value of that channel pair, which then peaks at +/-1.

    Notes
    -----
    Works on every data variable that has ``channel`` and ``time`` dims, one factor per
    variable, station pair (and window). NaN samples are ignored; all-zero or all-NaN pairs
    are left unchanged. The result is dimensionless; ``attrs['normalization']`` records it.

    Examples
    --------
    With ``result`` from :meth:`anxcor.core.Anxcor.process`::

        normalized = XArray9ComponentNormalizer(reference="Z:Z")(result)
    """

    reference: str | None = None

    def __post_init__(self):
        if self.reference is None:
            return
        valid = sorted(set(ZNE_CHANNELS) | set(ZRT_CHANNELS))
        if not isinstance(self.reference, str) or self.reference not in valid:
            raise ConfigError(
                f"XArray9ComponentNormalizer reference must be None or a channel pair label "
                f"such as 'Z:Z' (one of {valid}), got {self.reference!r}"
            )

    def get_params(self) -> dict:
        """The constructor arguments."""
        return {"reference": self.reference}

    def __call__(self, result: xr.Dataset) -> xr.Dataset:
        """Return ``result`` with each pair's channel pairs divided by their common factor."""
        _check_result(result)
        if "time" not in result.dims:
            raise DataError(f"XArray9ComponentNormalizer needs a 'time' dim, got dims {tuple(result.dims)}")
        labels = [str(c) for c in result["channel"].values]
        index = None
        if self.reference is not None:
            if self.reference not in labels:
                raise DataError(
                    f"XArray9ComponentNormalizer reference {self.reference!r} is not a channel of "
                    f"this result, which has {labels}"
                )
            index = labels.index(self.reference)
        out = result.copy()
        for name, variable in result.data_vars.items():
            if "channel" not in variable.dims or "time" not in variable.dims:
                continue
            values = xr.apply_ufunc(
                normalize_common,
                variable,
                kwargs={"reference": index},
                input_core_dims=[["channel", "time"]],
                output_core_dims=[["channel", "time"]],
                dask="allowed",
                keep_attrs=True,
            )
            out[name] = values.transpose(*variable.dims)
        what = "all channel pairs" if self.reference is None else f"channel pair {self.reference}"
        out.attrs["normalization"] = (
            f"each station pair divided by the largest absolute value of {what} (one factor for all "
            "channel pairs, relative amplitudes kept)"
        )
        entry = {"task": "normalize", "step": f"{__name__}.{type(self).__qualname__}", "params": self.get_params()}
        _append_history(out.attrs, entry)
        return out
