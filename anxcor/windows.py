"""Windows in time: start times, read spans, and one station's data on a window's sample grid.

A station is read once per *read span* (a run of consecutive windows) and every window is
then cut from that record in memory. Cutting puts each component on the window's own sample
grid (``window_start + k / sampling_rate``), which absorbs sub-sample start offsets,
slightly-off ``delta`` values and off-by-one trace lengths. A component that does not cover
the window (a gap, missing data), holds NaN/inf, or is constant is *not* zero-filled: it is
marked missing with a reason that ends up in the result's failures record.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from obspy import Stream, UTCDateTime

from .errors import ConfigError
from .validation import is_number, require_positive

__all__ = [
    "COMPONENTS",
    "component_of",
    "get_starttimes",
    "ReadSpan",
    "plan_read_spans",
    "StationRecord",
    "read_station_span",
    "grid_component",
    "GAP_FILLS",
]

logger = logging.getLogger(__name__)

#: Component order used everywhere (rows of station arrays, channel labels).
COMPONENTS: tuple[str, ...] = ("Z", "N", "E")
_COMPONENT_ALIASES = {"Z": "Z", "N": "N", "E": "E", "1": "N", "2": "E"}
#: Gaps and edge shortfalls up to this many samples are bridged by interpolation.
EDGE_TOLERANCE_SAMPLES = 1.5
#: Time differences within this fraction of a sample are rounding, not offsets.
SAMPLE_TOLERANCE = 1e-3


def component_of(channel: str) -> str | None:
    """Return the anxcor component ('Z', 'N' or 'E') of a SEED channel code, or None.

    The last letter decides: Z/N/E as they are, 1 -> N and 2 -> E.
    """
    return _COMPONENT_ALIASES.get(channel[-1:].upper()) if channel else None


def _as_timestamp(value, name: str) -> float:
    """A UTC timestamp from a number, UTCDateTime, ISO string, datetime, pandas or numpy time."""
    if isinstance(value, UTCDateTime):
        return float(value.timestamp)
    if is_number(value):
        stamp = float(value)
    else:
        try:
            stamp = float(UTCDateTime(str(value) if hasattr(value, "dtype") else value).timestamp)
        except Exception:  # obspy raises TypeError/ValueError/Exception for unparsable input
            raise ConfigError(
                f"{name} must be a UTC timestamp in seconds, an obspy UTCDateTime or an ISO time "
                f"string such as '2021-01-01T00:00:00', got {value!r}"
            ) from None
    if not math.isfinite(stamp):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return stamp


def get_starttimes(t0, t1, window_length: float, overlap: float) -> list[float]:
    """Start times of the windows that lie fully inside ``[t0, t1]``.

    Parameters
    ----------
    t0, t1
        Start and end of the period, UTC timestamps in seconds (or ``UTCDateTime``).
    window_length
        Window length in seconds.
    overlap
        Fraction of a window shared with the next one, ``0 <= overlap < 1``; windows start
        every ``window_length * (1 - overlap)`` seconds.

    Returns
    -------
    list of float
        Window start times (UTC timestamps), ascending.

    Examples
    --------
    >>> get_starttimes(0.0, 3600.0, 900.0, 0.25)
    [0.0, 675.0, 1350.0, 2025.0, 2700.0]
    """
    t0 = _as_timestamp(t0, "t0")
    t1 = _as_timestamp(t1, "t1")
    window_length = require_positive("window_length (s)", window_length, "get_starttimes")
    if not is_number(overlap):
        raise ConfigError(f"overlap must be a number with 0 <= overlap < 1, got {overlap!r}")
    overlap = float(overlap)
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(
            f"overlap must satisfy 0 <= overlap < 1 (a fraction of the window), got {overlap}"
        )
    if t1 <= t0:
        raise ConfigError(f"t1 must be after t0, got t0={t0} and t1={t1}")
    if t1 - t0 < window_length:
        raise ConfigError(
            f"no window of {window_length} s fits between t0 and t1 ({t1 - t0} s apart); "
            "choose a longer period or a shorter window_length"
        )
    step = window_length * (1.0 - overlap)
    count = int(math.floor((t1 - t0 - window_length) / step + 1e-9)) + 1
    return [t0 + k * step for k in range(count)]


@dataclass(frozen=True)
class ReadSpan:
    """A run of windows read with one ``get_waveforms`` call per station.

    Attributes
    ----------
    start, end
        UTC timestamps (s) covering every window of the span.
    windows
        Indices (into the start-time list) of the windows in this span.
    """

    start: float
    end: float
    windows: tuple[int, ...]


def plan_read_spans(
    starttimes: list[float], window_length: float, read_span: float
) -> list[ReadSpan]:
    """Group windows into read spans of at most ``max(read_span, window_length)`` seconds.

    Windows are taken in time order; a new span starts whenever the next window would end
    more than ``read_span`` seconds after the span's start.
    """
    order = sorted(range(len(starttimes)), key=lambda i: starttimes[i])
    limit = max(read_span, window_length)
    spans: list[ReadSpan] = []
    current: list[int] = []
    for index in order:
        start = starttimes[index]
        if current and start + window_length - starttimes[current[0]] > limit + 1e-9:
            spans.append(_span_of(current, starttimes, window_length))
            current = []
        current.append(index)
    if current:
        spans.append(_span_of(current, starttimes, window_length))
    return spans


def _span_of(indices: list[int], starttimes: list[float], window_length: float) -> ReadSpan:
    return ReadSpan(
        start=starttimes[indices[0]],
        end=max(starttimes[i] for i in indices) + window_length,
        windows=tuple(indices),
    )


@dataclass
class StationRecord:
    """One station's data over a read span, reduced to plain arrays (cheap to pickle).

    Attributes
    ----------
    station
        ``'NET.STA'``.
    pieces
        Component -> list of ``(starttime, delta, samples)`` pieces, in time order.
    error
        Why nothing could be read (the database raised or returned junk), else None.
    notes
        Repairs and choices worth recording, as ``(time, component, what)`` tuples (time: UTC
        timestamp of the affected data): merged overlapping or duplicated traces, ignored
        extra channels.
    channel_ids
        Component -> SEED id of the trace it was read from.
    """

    station: str
    pieces: dict[str, list[tuple[float, float, np.ndarray]]] = field(default_factory=dict)
    error: str | None = None
    notes: list[tuple[float, str, str]] = field(default_factory=list)
    channel_ids: dict[str, str] = field(default_factory=dict)


def read_station_span(db, station: str, start: float, end: float, pad: float) -> StationRecord:
    """Read one station between ``start - pad`` and ``end + pad`` through ``db``.

    Exceptions raised by the database are caught and recorded on the returned record: a
    broken file or station must not stop the other stations.
    """
    network, _, code = station.partition(".")
    try:
        stream = db.get_waveforms(
            network=network,
            station=code,
            starttime=UTCDateTime(start - pad),
            endtime=UTCDateTime(end + pad),
        )
    except Exception as exc:
        return StationRecord(station, error=f"get_waveforms raised {type(exc).__name__}: {exc}")
    if not isinstance(stream, Stream):
        return StationRecord(
            station, error=f"get_waveforms returned {type(stream).__name__}, expected an obspy Stream"
        )
    return _record_from_stream(station, stream)


def _record_from_stream(station: str, stream: Stream) -> StationRecord:
    record = StationRecord(station)
    chosen_ids = record.channel_ids
    for trace in sorted(stream, key=lambda tr: (tr.id, tr.stats.starttime)):
        component = component_of(trace.stats.channel)
        if component is None or trace.stats.npts == 0:
            continue
        chosen = chosen_ids.setdefault(component, trace.id)
        if trace.id != chosen:
            note = (float(trace.stats.starttime.timestamp), component, f"ignored {trace.id}: component {component} read from {chosen}")
            record.notes.append(note)
            continue
        record.pieces.setdefault(component, []).append(
            (
                float(trace.stats.starttime.timestamp),
                float(trace.stats.delta),
                np.asarray(trace.data, dtype=np.float64),
            )
        )
    for component, pieces in record.pieces.items():
        pieces.sort(key=lambda piece: piece[0])
        record.pieces[component] = _merge_overlaps(pieces, component, record.notes)
    for time, component, what in record.notes:
        logger.info("%s %s at %s: %s", station, component, UTCDateTime(time), what)
    return record


def _merge_overlaps(pieces, component: str, notes: list) -> list[tuple[float, float, np.ndarray]]:
    """Drop the samples of a later piece that fall where an earlier one already has data."""
    merged = [pieces[0]]
    for start, delta, data in pieces[1:]:
        previous_start, previous_delta, previous = merged[-1]
        covered_until = previous_start + (previous.size - 1) * previous_delta
        # epoch seconds carry ~2e-7 s of rounding: compare in samples with a 1e-3 sample tolerance
        overlap = int(np.floor((covered_until - start) / delta + SAMPLE_TOLERANCE)) + 1 if start <= covered_until + 0.5 * delta else 0
        if overlap >= data.size:
            notes.append((start, component, f"dropped a duplicated trace of {data.size} samples"))
            continue
        if overlap > 0:
            notes.append((start, component, f"merged overlapping traces: dropped {overlap} overlapping samples"))
            start, data = start + overlap * delta, data[overlap:]
        merged.append((start, delta, data))
    return merged


GAP_FILLS = (None, "interpolate", "mean")


def grid_component(
    pieces: list[tuple[float, float, np.ndarray]],
    window_start: float,
    window_length: float,
    fill: str | None = None,
    max_fill_fraction: float = 0.05,
) -> tuple[np.ndarray | None, float, str | None]:
    """Put one component's pieces on the grid of one window.

    Parameters
    ----------
    pieces
        ``(starttime, delta, samples)`` tuples in time order (a :class:`StationRecord` entry).
    window_start, window_length
        The window, UTC timestamp and seconds.
    fill
        What to do with gaps: None (the component-window is missing), ``'interpolate'``
        (straight lines across gaps, edge values held) or ``'mean'`` (the mean of the data),
        for gaps totalling at most ``max_fill_fraction`` of the window.
    max_fill_fraction
        Largest fraction of the window that ``fill`` may make up.

    Returns
    -------
    samples, sampling_rate, reason
        ``samples`` has ``round(window_length * sampling_rate)`` values on the grid
        ``window_start + k / sampling_rate``; it is None (with ``reason`` saying why) when
        the data do not cover the window, are not finite, or are constant. When a gap was
        filled, ``samples`` is returned and ``reason`` says what was filled.
    """
    if not pieces:
        return None, float("nan"), "no data"
    delta = max(pieces, key=lambda piece: piece[2].size)[1]
    rate = 1.0 / delta
    n_samples = int(round(window_length * rate))
    repair = None
    samples = _fast_slice(pieces, window_start, delta, n_samples)
    if samples is None:
        samples, covered, has_data = _interpolate(pieces, window_start, delta, n_samples)
        if samples is None:
            return None, rate, "no data in window"
        if not covered.all():
            missing = int(np.count_nonzero(~has_data))
            if missing == n_samples:
                return None, rate, "no data in window"
            if fill is None or missing > max_fill_fraction * n_samples:
                return None, rate, f"gap: {missing} of {n_samples} samples missing"
            if fill == "mean":
                samples[~has_data] = samples[has_data].mean()
            repair = f"filled a gap of {missing} of {n_samples} samples ({fill})"
    if not np.isfinite(samples).all():
        return None, rate, "non-finite samples (NaN or inf)"
    if np.ptp(samples) == 0.0:
        return None, rate, "constant trace (dead channel or all zeros)"
    return samples, rate, repair


def _fast_slice(pieces, window_start, delta, n_samples):
    """The window straight out of one piece when it lies on the same sample grid."""
    for start, piece_delta, data in pieces:
        if abs(piece_delta - delta) > 1e-9 * delta:
            continue
        offset = (window_start - start) / delta
        first = int(round(offset))
        if abs(offset - first) < SAMPLE_TOLERANCE and first >= 0 and first + n_samples <= data.size:
            return data[first : first + n_samples].copy()
    return None


def _interpolate(pieces, window_start, delta, n_samples):
    """Linear interpolation onto the grid; which grid samples count as covered; which have data.

    Positions are computed in samples relative to the window start, and a piece whose start
    lies within ``SAMPLE_TOLERANCE`` of a grid sample (same delta) is snapped onto it, so
    on-grid data split into several pieces come out exactly as recorded (absolute epoch
    seconds would blend neighbouring samples through their last-bit rounding). Gaps and edge
    shortfalls up to ``EDGE_TOLERANCE_SAMPLES`` count as covered; "have data" is exact
    (within half a sample of a recorded one).
    """
    grid = np.arange(n_samples, dtype=np.float64)
    covered = np.zeros(n_samples, dtype=bool)
    strict = np.zeros(n_samples, dtype=bool)
    positions, values = [], []
    for start, piece_delta, data in pieces:
        first = (start - window_start) / delta
        step = piece_delta / delta
        if abs(step - 1.0) < 1e-9 and abs(first - round(first)) < SAMPLE_TOLERANCE:
            first, step = float(round(first)), 1.0
        piece_positions = first + step * np.arange(data.size)
        positions.append(piece_positions)
        values.append(data)
        for mask, samples in ((covered, EDGE_TOLERANCE_SAMPLES * step), (strict, 0.5 * step)):
            mask |= (grid >= piece_positions[0] - samples) & (grid <= piece_positions[-1] + samples)
    if not covered.any():
        return None, covered, strict
    return np.interp(grid, np.concatenate(positions), np.concatenate(values)), covered, strict
