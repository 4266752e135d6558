"""Conversions of results: to obspy traces, and to files on disk (netCDF or zarr).

:func:`save_result` / :func:`load_result` store a result of :meth:`anxcor.core.Anxcor.process`
so that loading gives back an identical Dataset (values, dtypes, coords, attrs):

- the format follows the extension: ``.nc`` is one netCDF file (written with the ``netcdf4``
  or ``h5netcdf`` engine when one is installed, else with scipy as netCDF-3 64-bit offset),
  ``.zarr`` is a zarr directory store (the zarr package's default format, no consolidated
  metadata);
- complex variables (``output='spectrum'``) are stored as two float variables
  ``<name>__real`` and ``<name>__imag``, each with the attribute
  ``anxcor_complex = 'real part of <name>'`` / ``'imaginary part of <name>'``, and joined
  back on load;
- the global attribute ``anxcor_io`` (JSON: file format version, the order of the data
  variables and coordinates, and every variable's numpy dtype) lets :func:`load_result`
  undo what a format changes: netCDF-3 has no 64-bit integers (``n_windows`` counts are
  written as int32, and a count that does not fit makes the save fail), no booleans (int8)
  and no unicode arrays (character arrays), and netCDF attributes come back as numpy
  scalars; on load the dtypes are restored (int64, bool, ``<U9`` ...) and numeric attributes
  become plain Python numbers again. Strings go to zarr as variable-length UTF-8 (fixed
  width unicode has no stable zarr v3 spec);
- writes are atomic: the file (or store) is written under a hidden temporary name beside
  the target (``.<name>.tmp-<pid>-<random>``), flushed to disk, then renamed into place, so
  an error or crash mid-write never leaves something at ``path`` that looks complete (the
  temporary is removed on errors; a hard crash can leave a hidden ``.tmp-`` sibling behind).
  A zarr store is a directory, which cannot be renamed over an existing one: an existing
  store is first renamed aside (``.<name>.old-<pid>-<random>``), the new one renamed in,
  and the old one deleted. Between those two renames (two system calls) ``path`` is absent
  for an instant; a crash exactly there leaves the old result under its ``.old-`` name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
from pathlib import Path

import numpy as np
import xarray as xr
from obspy import Stream, Trace, UTCDateTime
from obspy.core.util import AttribDict

from .errors import ConfigError, DataError

__all__ = ["xarray_to_obspy", "save_result", "load_result", "check_result_path"]

logger = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------- result files

_FORMATS = {".nc": "netcdf", ".zarr": "zarr"}
_META = "anxcor_io"  # global attribute: JSON describing how the file was written
_META_FORMAT = "anxcor-result-file"
_META_VERSION = 1
_COMPLEX = "anxcor_complex"  # variable attribute marking the two halves of a complex variable
_PARTS = {"real": "real part of ", "imag": "imaginary part of "}


def save_result(result: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a result to a netCDF file (``.nc``) or a zarr directory store (``.zarr``).

    The write is atomic: everything goes to a hidden temporary sibling of ``path`` first,
    which is renamed into place only once complete; on an error the temporary is removed and
    an existing file at ``path`` is left as it was. An existing result at ``path`` is
    replaced. See the module docstring for the file layout.

    Parameters
    ----------
    result
        A Dataset returned by :meth:`anxcor.core.Anxcor.process` (stacked or not, several
        datasets, rotated by ``align_station_pairs``, or cross-spectra); it must carry the
        ``anxcor_version`` attribute.
    path
        The file name; its extension picks the format: ``.nc`` or ``.zarr``.

    Returns
    -------
    pathlib.Path
        ``path``, as a Path.

    Raises
    ------
    ConfigError
        Unknown extension, not a Dataset, no ``anxcor_version`` attribute, missing folder,
        zarr not installed, or ``path`` is something this function will not replace (a
        folder for ``.nc``, a folder that is not a zarr store for ``.zarr``).
    """
    if not isinstance(result, xr.Dataset):
        raise ConfigError(f"save_result expects the Dataset returned by process(), got {type(result).__name__}")
    if "anxcor_version" not in result.attrs:
        raise ConfigError(
            "save_result expects a result of Anxcor.process (attrs['anxcor_version'] is missing; "
            "copy the attrs of the original result onto a derived Dataset before saving it)"
        )
    path = check_result_path(path)
    kind = _format_of(path)
    encoded = _encode(result, kind)
    temporary = _sibling(path, "tmp")
    try:
        if kind == "netcdf":
            encoded.to_netcdf(temporary, engine=_netcdf_engine())
            _fsync_tree(temporary)
            os.replace(temporary, path)
        else:
            encoded.to_zarr(temporary, mode="w-", consolidated=False)
            _fsync_tree(temporary)
            _swap_in(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    _fsync_tree(path.parent, recurse=False)
    return path


def check_result_path(path: str | os.PathLike) -> Path:
    """Check that a result can be saved at ``path`` (before computing it); returns it as a Path.

    Raises
    ------
    ConfigError
        Unknown extension, missing folder, zarr not installed for ``.zarr``, or ``path`` is
        something :func:`save_result` will not replace.
    """
    path = Path(path).expanduser()
    kind = _format_of(path)
    if not path.parent.is_dir():
        raise ConfigError(f"cannot save to {path}: the folder {path.parent} does not exist")
    _check_replaceable(path, kind)
    if kind == "zarr" and importlib.util.find_spec("zarr") is None:
        raise ConfigError(f"saving {path.name} needs the zarr package (pip install zarr), or save to a '.nc' file")
    return path


def load_result(path: str | os.PathLike, *, lazy: bool = False) -> xr.Dataset:
    """Read a result written by :func:`save_result` fully into memory, and close the file.

    Complex variables are joined again and the dtypes and attribute types of the saved
    Dataset are restored, so ``load_result(save_result(ds, p))`` is identical to ``ds``. A
    result written by plain ``result.to_netcdf(path)`` loads too (as xarray reads it).

    Parameters
    ----------
    path
        A ``.nc`` file or ``.zarr`` store.
    lazy
        Leave the data variables on disk as dask arrays, read when used (for results larger
        than memory); the file stays open while the Dataset is used. Coordinates are read.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    ConfigError
        Unknown extension.
    DataError
        No such file, unreadable, or not an anxcor result (no ``anxcor_version`` attribute).
    """
    path = Path(path).expanduser()
    kind = _format_of(path)
    if not path.exists():
        raise DataError(f"no result at {path}: the file does not exist")
    if kind == "netcdf" and path.is_dir():
        raise DataError(f"cannot read {path} as netCDF: it is a folder")
    if kind == "zarr" and not path.is_dir():
        raise DataError(f"cannot read {path} as a zarr store: it is not a folder")
    chunks = {} if lazy else None  # {}: dask arrays in the store's own chunks
    try:
        if kind == "netcdf":
            opened = xr.open_dataset(path, decode_timedelta=False, chunks=chunks)
        else:
            opened = xr.open_dataset(path, engine="zarr", consolidated=False, chunks=chunks, decode_timedelta=False)
        if lazy:
            raw = opened
        else:
            with opened:
                raw = opened.load()
    except Exception as exc:
        raise DataError(f"cannot read {path} as a {kind} file: {type(exc).__name__}: {exc}") from exc
    if "anxcor_version" not in raw.attrs:
        raise DataError(f"{path} is not an anxcor result: it has no 'anxcor_version' attribute")
    return _decode(raw, path)


def _format_of(path: Path) -> str:
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"cannot tell the format of {str(path)!r} from its extension {path.suffix!r}: "
            "use '.nc' (netCDF file) or '.zarr' (zarr directory store)"
        )
    return kind


def _netcdf_engine() -> str:
    """netcdf4 or h5netcdf (netCDF-4, HDF5) when installed, else scipy (netCDF-3)."""
    for module, engine in (("netCDF4", "netcdf4"), ("h5netcdf", "h5netcdf")):
        if importlib.util.find_spec(module) is not None:
            return engine
    return "scipy"


def _encode(result: xr.Dataset, kind: str) -> xr.Dataset:
    """A copy ready to write: complex split in two, strings variable-length for zarr, no encodings."""
    if _META in result.attrs:
        result = result.copy()
        del result.attrs[_META]
    meta = {
        "format": _META_FORMAT,
        "version": _META_VERSION,
        "data_vars": list(map(str, result.data_vars)),
        "coords": list(map(str, result.coords)),
        "dtypes": {str(name): var.dtype.str for name, var in result.variables.items()},
    }
    data_vars, coords = {}, {}
    for name, var in result.variables.items():
        target = data_vars if name in result.data_vars else coords
        if var.dtype.kind == "c":
            if name in result.indexes:
                raise ConfigError(f"cannot save the complex index coordinate {name!r}")
            for part, label in _PARTS.items():
                split = f"{name}__{part}"
                if split in result.variables:
                    raise ConfigError(f"cannot save the complex variable {name!r}: the result already has a {split!r}")
                values = var.real if part == "real" else var.imag
                target[split] = xr.Variable(var.dims, values.values, attrs={**var.attrs, _COMPLEX: label + str(name)})
            continue
        var = var.copy(deep=False)
        var.encoding = {}
        if kind == "zarr" and var.dtype.kind == "U":
            var = var.astype(object)
        target[name] = var
    return xr.Dataset(data_vars, coords, attrs={**result.attrs, _META: json.dumps(meta)})


def _decode(raw: xr.Dataset, path: Path) -> xr.Dataset:
    """Undo _encode (and what the format did): join complex pairs, restore dtypes, order, attrs."""
    attrs = {key: _plain(value) for key, value in raw.attrs.items()}
    meta = attrs.pop(_META, None)
    try:
        meta = json.loads(meta) if isinstance(meta, str) else None
    except json.JSONDecodeError:
        meta = None
    if meta is not None and (meta.get("format") != _META_FORMAT or not isinstance(meta.get("version"), int)):
        meta = None
    if meta is not None and meta["version"] > _META_VERSION:
        raise DataError(f"{path} was written by a newer anxcor (file format version {meta['version']}); upgrade anxcor to read it")
    variables, complex_parts = {}, {}
    for name, var in raw.variables.items():
        var = xr.Variable(var.dims, var.data, attrs={k: _plain(v) for k, v in var.attrs.items()})
        label = var.attrs.get(_COMPLEX)
        part = next((p for p, prefix in _PARTS.items() if isinstance(label, str) and label.startswith(prefix)), None)
        if part is not None:
            complex_parts.setdefault(label[len(_PARTS[part]) :], {})[part] = (name, var)
            continue
        variables[name] = var
    order = {}  # original name -> the name its first half had in the file (for the order fallback)
    for name, parts in complex_parts.items():
        if set(parts) != {"real", "imag"}:
            raise DataError(f"{path}: complex variable {name!r} has only its {next(iter(parts))} part")
        (real_name, real), (_, imag) = parts["real"], parts["imag"]
        attrs_ = {k: v for k, v in real.attrs.items() if k != _COMPLEX}
        variables[name] = xr.Variable(real.dims, real.data + 1j * imag.data, attrs=attrs_)
        order[name] = real_name
    if meta is not None:
        for name, dtype in meta.get("dtypes", {}).items():
            if name in variables and variables[name].dtype.str != dtype:
                variables[name] = variables[name].astype(np.dtype(dtype))
        data_names, coord_names = meta["data_vars"], meta["coords"]
    else:
        rank = {name: i for i, name in enumerate(raw.variables)}

        def key(name):
            return rank[order.get(name, name)]

        data_names = sorted((n for n in variables if order.get(n, n) in raw.data_vars), key=key)
        coord_names = sorted((n for n in variables if order.get(n, n) in raw.coords), key=key)
    missing = [n for n in (*data_names, *coord_names) if n not in variables]
    if missing:
        raise DataError(f"{path} is incomplete: variables {missing} are missing")
    return xr.Dataset(
        {n: variables[n] for n in data_names}, coords={n: variables[n] for n in coord_names}, attrs=attrs
    )


def _plain(value):
    """numpy scalars (netCDF attributes) as plain Python numbers; everything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / marker).exists() for marker in ("zarr.json", ".zgroup", ".zattrs"))


def _check_replaceable(path: Path, kind: str) -> None:
    if not os.path.lexists(path):
        return
    if kind == "netcdf" and path.is_dir():
        raise ConfigError(f"cannot save to {path}: it is a folder")
    if kind == "zarr" and path.is_dir() and not _is_zarr_store(path):
        raise ConfigError(f"cannot save to {path}: it is a folder that is not a zarr store, and would be deleted")


def _swap_in(new: Path, target: Path) -> None:
    """Rename the finished store ``new`` to ``target``, replacing (then deleting) what was there."""
    if not os.path.lexists(target):
        os.replace(new, target)
        return
    old = _sibling(target, "old")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    _remove(old)
    if os.path.lexists(old):
        logger.warning("could not delete the replaced result %s; delete it by hand", old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_tree(path: Path, *, recurse: bool = True) -> None:
    """Flush a file, or a folder's files and the folder entries, to disk (best effort)."""
    paths = [path]
    if recurse and path.is_dir():
        paths = [Path(root) / name for root, dirs, files in os.walk(path) for name in (*files, *dirs)] + [path]
    for item in paths:
        try:
            fd = os.open(item, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
