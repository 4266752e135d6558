"""Where waveforms come from: the :class:`AnxcorDatabase` contract and ready adapters.

A database answers two questions: which stations it holds (``get_stations``) and what was
recorded at one station in a time span (``get_waveforms``). Optionally it knows where its
stations are (``get_inventory`` or ``get_coordinates``). Everything else (windowing, gaps,
sample grids) is anxcor's job, so adapters stay a few lines long.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from obspy import Inventory, Stream, UTCDateTime

from .errors import ConfigError, DatabaseError

__all__ = [
    "AnxcorDatabase",
    "InMemoryDatabase",
    "WaveBankDatabase",
    "SDSDatabase",
    "as_database",
    "coordinates_table",
]

logger = logging.getLogger(__name__)

COORDINATE_COLUMNS = ["network", "station", "latitude", "longitude", "elevation"]


class AnxcorDatabase(ABC):
    """Base class for every waveform source anxcor reads from.

    Subclass it and implement :meth:`get_stations` and :meth:`get_waveforms`. Optionally
    override :meth:`get_inventory` or :meth:`get_coordinates` so results carry
    inter-station distances and azimuths. The object must be picklable to run on a
    ``dask.distributed`` cluster.

    Examples
    --------
    >>> class MyArchive(AnxcorDatabase):
    ...     def __init__(self, stream):
    ...         super().__init__()
    ...         self.stream = stream
    ...     def get_stations(self):
    ...         return sorted({f"{tr.stats.network}.{tr.stats.station}" for tr in self.stream})
    ...     def get_waveforms(self, network=None, station=None, starttime=None, endtime=None, **kw):
    ...         return self.stream.select(network=network, station=station).slice(starttime, endtime)
    """

    def __init__(self) -> None:  # noqa: B027 - deliberately empty, so super().__init__() always works
        """Nothing to set up; subclasses call ``super().__init__()`` with no arguments."""

    @abstractmethod
    def get_stations(self) -> list[str]:
        """Return the stations held, as ``'NET.STA'`` strings."""

    @abstractmethod
    def get_waveforms(
        self,
        network: str | None = None,
        station: str | None = None,
        starttime: UTCDateTime | None = None,
        endtime: UTCDateTime | None = None,
        **kwargs: Any,
    ) -> Stream:
        """Return an obspy Stream of one station between two times (any channels, gaps).

        anxcor calls it with keywords ``network``, ``station``, ``starttime`` and
        ``endtime`` (:class:`obspy.UTCDateTime`), once per station and read span.
        """

    def get_inventory(self) -> Inventory | None:
        """Return an obspy Inventory with station coordinates (and responses), or None."""
        return None

    def get_coordinates(self) -> pd.DataFrame | None:
        """Return a DataFrame with columns network, station, latitude, longitude, elevation."""
        return None


class _AdapterWithCoordinates(AnxcorDatabase):
    """Base of the ready-made adapters: optional coordinates given at construction."""

    def __init__(self, coordinates: Inventory | pd.DataFrame | None = None):
        super().__init__()
        self.coordinates = None if coordinates is None else coordinates_table(coordinates)

    def get_coordinates(self) -> pd.DataFrame | None:
        """The coordinates given at construction, if any."""
        return self.coordinates


class InMemoryDatabase(_AdapterWithCoordinates):
    """A database over an obspy Stream held in memory.

    Parameters
    ----------
    stream
        All the waveforms, any stations and channels.
    coordinates
        Optional station coordinates: an obspy Inventory or a DataFrame with columns
        network, station, latitude, longitude, elevation (degrees, metres).
    """

    def __init__(self, stream: Stream, coordinates: Inventory | pd.DataFrame | None = None):
        super().__init__(coordinates)
        if not isinstance(stream, Stream):
            raise ConfigError(f"InMemoryDatabase expects an obspy Stream, got {type(stream).__name__}")
        self.stream = stream

    def get_stations(self) -> list[str]:
        """Stations present in the stream, sorted."""
        return sorted({f"{tr.stats.network}.{tr.stats.station}" for tr in self.stream})

    def get_waveforms(self, network=None, station=None, starttime=None, endtime=None, **kwargs):
        """Traces of one station overlapping [starttime, endtime], trimmed to it."""
        selected = self.stream.select(network=network, station=station)
        return selected.slice(starttime, endtime, nearest_sample=False)


class WaveBankDatabase(_AdapterWithCoordinates):
    """A database over an obsplus ``WaveBank`` (a directory of miniSEED files, indexed).

    The bank's index is brought up to date when the database is built and read once, on first
    use; each ``get_waveforms`` call then reads only the files the index lists for that station
    and span (obspy's reader with the bank's format), trimmed to the span, without querying
    the index file again (several times faster than ``WaveBank.get_waveforms``, the same
    samples). Files added to the bank afterwards are seen after :meth:`refresh`.

    Parameters
    ----------
    bank
        An ``obsplus.WaveBank`` or the path of a directory to index as one.
    coordinates
        Optional station coordinates (Inventory or DataFrame), see :class:`InMemoryDatabase`.
    """

    def __init__(self, bank: Any, coordinates: Inventory | pd.DataFrame | None = None):
        super().__init__(coordinates)
        from obsplus import WaveBank

        if isinstance(bank, (str, Path)):
            bank = WaveBank(bank)
        if not isinstance(bank, WaveBank):
            raise ConfigError(
                f"WaveBankDatabase expects an obsplus WaveBank or a directory, got {type(bank).__name__}"
            )
        self.bank = bank
        self._index: dict[str, np.ndarray] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Update the bank's index (new or changed files) and forget the one read before."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="obsplus")
            self.bank.update_index()
        self._index = None

    def _station_index(self) -> dict[str, np.ndarray]:
        """The bank's index as arrays: station ids, start/end (epoch s), absolute paths."""
        if self._index is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", module="obsplus")
                warnings.filterwarnings("ignore", message="Querying with a nested")
                index = self.bank.read_index()
            root = str(self.bank.bank_path)
            self._index = {
                "station": (index["network"].astype(str) + "." + index["station"].astype(str)).to_numpy(dtype=object),
                "start": index["starttime"].to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9,
                "end": index["endtime"].to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9,
                "path": np.asarray([str(Path(root, str(p).lstrip("/"))) for p in index["path"]], dtype=object),
            }
        return self._index

    def get_stations(self) -> list[str]:
        """Stations in the bank's index, sorted."""
        return sorted(set(self._station_index()["station"]))

    def get_waveforms(self, network=None, station=None, starttime=None, endtime=None, **kwargs):
        """Waveforms of one station from the bank, trimmed to ``[starttime, endtime]``."""
        wildcard = any(c in f"{network}{station}" for c in "*?[")
        if kwargs or wildcard or network is None or station is None or starttime is None or endtime is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", module="obsplus")
                warnings.filterwarnings("ignore", message="Querying with a nested")
                return self.bank.get_waveforms(
                    network=network, station=station, starttime=starttime, endtime=endtime, **kwargs
                )
        index = self._station_index()
        start, end = UTCDateTime(starttime), UTCDateTime(endtime)
        rows = (index["station"] == f"{network}.{station}") & (index["end"] >= float(start)) & (index["start"] <= float(end))
        stream = Stream()
        for path in dict.fromkeys(index["path"][rows]):  # unique, in index order
            stream += _read_waveform_file(path, self.bank.format, start, end)
        stream.traces = [tr for tr in stream if tr.stats.network == network and tr.stats.station == station]
        if all(start <= tr.stats.starttime and tr.stats.endtime <= end for tr in stream):
            return stream  # nothing to cut (obspy's trim would still take ~0.2 ms a trace)
        return stream.trim(start, end)


def _read_waveform_file(path: str, file_format: str | None, starttime: UTCDateTime, endtime: UTCDateTime) -> Stream:
    """One file's traces in a span (the given format first, then obspy's detection).

    miniSEED goes straight to obspy's miniSEED reader, which skips the records outside the
    span and the plugin look-up of ``obspy.read`` (about 3x faster on hour-long files).
    """
    import obspy

    try:
        if str(file_format).lower() == "mseed":
            from obspy.io.mseed.core import _read_mseed

            return _read_mseed(path, starttime=starttime, endtime=endtime)
        return obspy.read(path, format=file_format, starttime=starttime, endtime=endtime)
    except Exception:  # not in that format: let obspy detect it (raises if unreadable)
        return obspy.read(path, starttime=starttime, endtime=endtime)


class SDSDatabase(_AdapterWithCoordinates):
    """A database over a SeisComP Data Structure (SDS) archive directory.

    Parameters
    ----------
    root
        The SDS root (``YEAR/NET/STA/CHAN.D/NET.STA.LOC.CHAN.D.YEAR.DOY`` below it).
    coordinates
        Optional station coordinates (Inventory or DataFrame), see :class:`InMemoryDatabase`.
    """

    def __init__(self, root: str | Path, coordinates: Inventory | pd.DataFrame | None = None):
        super().__init__(coordinates)
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"SDSDatabase expects an existing SDS root directory, got {str(root)!r}")
        self.root = root

    def _client(self):
        from obspy.clients.filesystem.sds import Client

        return Client(str(self.root))

    def get_stations(self) -> list[str]:
        """Stations found in the archive's directory tree, sorted."""
        return sorted({f"{net}.{sta}" for net, sta, _, _ in self._client().get_all_nslc()})

    def get_waveforms(self, network=None, station=None, starttime=None, endtime=None, **kwargs):
        """Waveforms of one station from the archive (all locations and channels)."""
        stream = self._client().get_waveforms(network, station, "*", "*", starttime, endtime)
        return stream.trim(starttime, endtime)


def as_database(obj: Any) -> AnxcorDatabase:
    """Return ``obj`` as an :class:`AnxcorDatabase`, wrapping a WaveBank or a Stream.

    Raises
    ------
    DatabaseError
        When ``obj`` is none of AnxcorDatabase, ``obsplus.WaveBank`` or ``obspy.Stream``.
    """
    if isinstance(obj, AnxcorDatabase):
        return obj
    if isinstance(obj, Stream):
        return InMemoryDatabase(obj)
    if type(obj).__name__ == "WaveBank":
        return WaveBankDatabase(obj)
    raise DatabaseError(
        "add_dataset expects an AnxcorDatabase subclass instance (or an obsplus WaveBank / "
        f"obspy Stream, which anxcor wraps), got {type(obj).__name__}. Subclass "
        "anxcor.core.AnxcorDatabase and implement get_stations() and get_waveforms()."
    )


def coordinates_table(source: Inventory | pd.DataFrame) -> pd.DataFrame:
    """Station coordinates as a DataFrame indexed by ``'NET.STA'``.

    Parameters
    ----------
    source
        An obspy Inventory, or a DataFrame with columns network, station, latitude,
        longitude and (optionally) elevation, in degrees and metres.

    Returns
    -------
    pandas.DataFrame
        Columns latitude, longitude, elevation; index ``'NET.STA'``.
    """
    if isinstance(source, Inventory):
        rows = [
            (net.code, sta.code, sta.latitude, sta.longitude, sta.elevation)
            for net in source
            for sta in net
        ]
        frame = pd.DataFrame(rows, columns=COORDINATE_COLUMNS)
    elif isinstance(source, pd.DataFrame) and source.index.name == "seed_id":
        return source  # already in this form
    elif isinstance(source, pd.DataFrame):
        missing = [c for c in COORDINATE_COLUMNS[:4] if c not in source.columns]
        if missing:
            raise ConfigError(
                f"station coordinates need columns {COORDINATE_COLUMNS}, missing {missing}"
            )
        frame = source.copy()
        if "elevation" not in frame.columns:
            frame["elevation"] = 0.0
    else:
        raise ConfigError(
            f"station coordinates must be an obspy Inventory or a DataFrame, got {type(source).__name__}"
        )
    frame = frame.assign(seed_id=frame["network"].astype(str) + "." + frame["station"].astype(str))
    frame = frame.drop_duplicates("seed_id").set_index("seed_id")
    table = frame[["latitude", "longitude", "elevation"]].astype(float)
    if not np.isfinite(table[["latitude", "longitude"]].to_numpy()).all():
        raise ConfigError("station coordinates contain NaN or infinite latitude/longitude")
    return table


def database_coordinates(db: AnxcorDatabase, inventory: Inventory | None = None) -> pd.DataFrame | None:
    """Coordinates a database offers (inventory first, then table), or None.

    Pass ``inventory`` when ``db.get_inventory()`` was already called, to read it once.
    """
    inventory = inventory if inventory is not None else db.get_inventory()
    if inventory is not None:
        return coordinates_table(inventory)
    table = db.get_coordinates()
    return None if table is None else coordinates_table(table)
