"""Synthetic ambient-noise archives for tests, examples and benchmarks.

:func:`synthetic_archive` writes miniSEED waveforms of a diffuse field of plane surface waves
recorded by a random array, plus a station table. Because the wavefield is known, the
cross-correlation of two stations has a known answer: for an isotropic field it peaks at
``+/- distance / velocity``; for a field travelling towards one azimuth it peaks at the
projection of the inter-station vector on the propagation direction, divided by the velocity.
That makes the archive a physical check of a correlation pipeline that needs no reference code.

The field of each hour is independent. Every plane wave has a random complex spectrum shaped
by a microseism-like Gaussian band centred on 0.25 Hz (width 0.15 Hz); each station sees it
delayed by ``(x * ux + y * uy) / v`` seconds, applied exactly as a phase shift in the
frequency domain on an FFT twice the segment length, so delays do not wrap around.

Two physical details matter when checking a pipeline against these archives. The isotropic
correlation is that of a 2-D field: its envelope peaks at ``distance / velocity``, but the
waveform carries a pi/4 phase lead, so its highest sample comes about 1/8 period early
(0.3-0.5 s in this band). And the azimuth ``spread`` of a directional field smears the arrival
of a pair over about ``+/- |cross-track offset| * sin(spread) / velocity``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from obspy import Stream, Trace, UTCDateTime, read
from obspy.geodetics import gps2dist_azimuth

from anxcor.errors import ConfigError

__all__ = ["SyntheticArchive", "synthetic_archive"]

logger = logging.getLogger(__name__)

#: Centre and width of the Gaussian source band, Hz.
_BAND_CENTRE_HZ = 0.25
_BAND_WIDTH_HZ = 0.15
#: Highest frequency synthesised, Hz; the band is below 1e-8 of its peak above it.
_F_MAX_HZ = 1.2
#: Lowest sampling rate whose Nyquist frequency holds the synthesised band, Hz.
_MIN_RATE_HZ = 2.5
#: Frequency bins per block. The phase of bin ``j * _BLOCK + m`` is the product of the phase
#: of the block start and of the offset ``m``, which needs far fewer complex exponentials.
#: It also fixes the order of the random draws, so it must stay constant for determinism.
_BLOCK = 128
#: Reference point of the array and the flat-earth conversion, degrees and km per degree.
_LAT0_DEG = 40.0
_LON0_DEG = -111.0
_KM_PER_DEG = 111.19
_ELEVATION_M = 1500.0
_ALLOWED_COMPONENTS = "ZNE12"
_LAYOUTS = ("hourly", "sds")
_SECONDS_PER_HOUR = 3600.0
_NS_PER_DAY = 86_400 * 10**9
#: Default start of the records (copied by synthetic_archive, never modified).
_DEFAULT_START = UTCDateTime(2021, 1, 1)
#: Parameters of the last complete write, so an identical call can reuse the files.
_MARKER = "archive.json"
_STATION_COLUMNS = ["network", "station", "latitude", "longitude", "elevation", "x_km", "y_km"]


@dataclass(frozen=True, eq=False)
class SyntheticArchive:
    """A synthetic archive written by :func:`synthetic_archive`.

    Attributes
    ----------
    path : pathlib.Path
        Root directory of the archive; ``path / "stations.csv"`` holds the station table.
    waveform_dir : pathlib.Path
        Directory holding the miniSEED files (``path / "waveforms"`` for the ``"hourly"``
        layout, ``path / "sds"`` for the ``"sds"`` layout).
    stations : pandas.DataFrame
        One row per station with columns ``network``, ``station``, ``latitude`` and
        ``longitude`` (degrees), ``elevation`` (m), ``x_km`` and ``y_km`` (km east and north
        of the array reference point).
    starttime : float
        Start of the records, UTC POSIX timestamp in s.
    endtime : float
        ``starttime + hours * 3600``, UTC POSIX timestamp in s.
    rate : float
        Sampling rate, Hz.
    velocity : float
        Phase velocity of the plane waves before any velocity change, km/s.
    components : str
        Component letters, one channel ``HH<letter>`` each.
    layout : str
        ``"hourly"`` or ``"sds"``.

    Notes
    -----
    Instances compare by identity (a DataFrame field has no single truth value).
    """

    path: Path
    waveform_dir: Path
    stations: pd.DataFrame
    starttime: float
    endtime: float
    rate: float
    velocity: float
    components: str
    layout: str

    def read_stream(self) -> Stream:
        """Read every miniSEED file of the archive.

        Returns
        -------
        obspy.Stream
            One trace per channel (contiguous files merged), sorted by id and time.
        """
        pattern = "*.mseed" if self.layout == "hourly" else "*"
        files = sorted(p for p in self.waveform_dir.rglob(pattern) if p.is_file())
        stream = Stream()
        for file in files:
            stream += read(str(file), format="MSEED")
        stream.merge()
        stream.sort()
        return stream

    def expected_lag(self, src: str, rec: str) -> float:
        """Travel time of a surface wave between two stations.

        Parameters
        ----------
        src, rec : str
            Station ids ``"NET.STA"`` (a full ``"NET.STA.LOC.CHA"`` id is also accepted).

        Returns
        -------
        float
            Geodesic distance between the written coordinates divided by ``velocity``, s.
            This is where the correlation of an isotropic field peaks (at +/- this lag).
        """
        lat1, lon1 = self._coordinates(src)
        lat2, lon2 = self._coordinates(rec)
        distance_m = gps2dist_azimuth(lat1, lon1, lat2, lon2)[0]
        return distance_m / 1000.0 / self.velocity

    def _coordinates(self, seed_id: str) -> tuple[float, float]:
        parts = seed_id.split(".") if isinstance(seed_id, str) else []
        if len(parts) not in (2, 4):
            raise ConfigError(
                f"station id: expected 'NET.STA' or 'NET.STA.LOC.CHA', got {seed_id!r}"
            )
        table = self.stations
        row = table[(table["network"] == parts[0]) & (table["station"] == parts[1])]
        if row.empty:
            known = ", ".join(f"{n}.{s}" for n, s in zip(table["network"], table["station"], strict=True))
            raise ConfigError(f"station id: expected one of {known}, got {seed_id!r}")
        return float(row["latitude"].iloc[0]), float(row["longitude"].iloc[0])


def synthetic_archive(
    path: str | Path,
    *,
    stations: int = 16,
    hours: float = 2.0,
    rate: float = 20.0,
    seed: int = 0,
    components: str = "ZNE",
    velocity: float = 3.0,
    aperture_km: float = 60.0,
    waves_per_hour: int = 400,
    network: str = "XX",
    azimuth: float | None = None,
    spread: float = 20.0,
    dvv: float = 0.0,
    change_hour: float | None = None,
    noise_level: float = 0.05,
    layout: str = "hourly",
    starttime: UTCDateTime | str | float = _DEFAULT_START,
) -> SyntheticArchive:
    """Write a synthetic ambient-noise archive of a diffuse plane-wave field.

    Stations ``S000``, ``S001``, ... lie uniformly at random in a square of side
    ``aperture_km`` centred on 40 N, 111 W. Each hour, ``waves_per_hour`` plane waves with
    random spectra in a 0.1-0.5 Hz band cross the array at ``velocity``; the vertical
    component records each wave with weight 1, the horizontals with the north and east parts
    of its propagation direction (radial motion), and white noise is added per trace.

    Parameters
    ----------
    path : str or pathlib.Path
        Root directory of the archive, created if missing. Files already there with the
        names this function writes are overwritten.
    stations : int
        Number of stations, 1 to 10000.
    hours : float
        Duration, h. May be fractional: the last segment is then shorter.
    rate : float
        Sampling rate, Hz; at least 2.5 Hz and a whole number of samples per hour.
    seed : int
        Seed of the random generator (``numpy.random.default_rng``); same arguments and seed
        give byte-identical files.
    components : str
        Component letters from ``"ZNE12"``, no repeats; ``"1"`` is weighted like ``"N"`` and
        ``"2"`` like ``"E"``. Channels are ``HH<letter>``.
    velocity : float
        Phase velocity of the plane waves, km/s.
    aperture_km : float
        Side of the square the stations are drawn in, km.
    waves_per_hour : int
        Number of plane waves per hour segment.
    network : str
        Network code, 1 or 2 letters or digits.
    azimuth : float or None
        Mean propagation direction, degrees clockwise from north (towards which the waves
        travel). ``None`` draws directions uniformly over the circle (isotropic field).
    spread : float
        Half-width of the uniform azimuth range around ``azimuth``, degrees. Ignored when
        ``azimuth`` is None.
    dvv : float
        Relative velocity change (``0.01`` is +1 %), applied from ``change_hour`` on.
    change_hour : float or None
        Hour segments with index ``h >= change_hour`` use ``velocity * (1 + dvv)``. ``None``
        keeps the velocity constant.
    noise_level : float
        Standard deviation of the added white noise relative to that of the signal.
    layout : {"hourly", "sds"}
        ``"hourly"``: one file per station, channel and hour in ``path / "waveforms"`` named
        ``NET.STA..HHC__YYYYMMDDTHH.mseed``. ``"sds"``: a SeisComP Data Structure archive in
        ``path / "sds"`` (``YEAR/NET/STA/HHC.D/NET.STA..HHC.D.YEAR.DOY``, one file per
        channel and day).
    starttime : obspy.UTCDateTime, str or float
        Time of the first sample (anything :class:`~obspy.UTCDateTime` accepts), default
        2021-01-01T00:00:00.

    Returns
    -------
    SyntheticArchive
        Where the archive lies and how it was made; the station table is also written to
        ``path / "stations.csv"``.

    Raises
    ------
    ConfigError
        If an argument is invalid.

    Notes
    -----
    Delays are applied in the frequency domain on an FFT of twice the segment length; a
    segment shorter than the time a wave takes to cross the array lets the field wrap around
    (a warning is logged). Only the bins up to 1.2 Hz are synthesised. Working memory is
    about 5 kB per station and plane wave (phase factors) plus about 150 kB per station and
    component (spectra) and 16 bytes per sample of one station-hour and component.
    """
    root, t0 = _validate(
        path=path,
        stations=stations,
        hours=hours,
        rate=rate,
        seed=seed,
        components=components,
        velocity=velocity,
        aperture_km=aperture_km,
        waves_per_hour=waves_per_hour,
        network=network,
        azimuth=azimuth,
        spread=spread,
        dvv=dvv,
        change_hour=change_hour,
        noise_level=noise_level,
        layout=layout,
        starttime=starttime,
    )
    rate = float(rate)
    velocity = float(velocity)
    waveform_dir = root / ("waveforms" if layout == "hourly" else "sds")
    marker = root / _MARKER
    recipe = {
        "format": 1, "stations": stations, "hours": float(hours), "rate": rate, "seed": seed,
        "components": components, "velocity": velocity, "aperture_km": float(aperture_km),
        "waves_per_hour": waves_per_hour, "network": network, "azimuth": azimuth, "spread": float(spread),
        "dvv": float(dvv), "change_hour": change_hour, "noise_level": float(noise_level), "layout": layout,
        "starttime": str(t0),
    }
    if marker.is_file() and json.loads(marker.read_text()) == recipe and (root / "stations.csv").is_file():
        logger.info("reusing the synthetic archive in %s (same parameters)", root)
        return _archive(root, waveform_dir, pd.read_csv(root / "stations.csv", dtype={"network": str, "station": str}),
                        t0, hours, rate, velocity, components, layout)
    marker.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)

    table, x_km, y_km = _station_table(rng, stations, float(aperture_km), network)
    root.mkdir(parents=True, exist_ok=True)
    waveform_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(root / "stations.csv", index=False)

    samples_per_hour = round(_SECONDS_PER_HOUR * rate)
    total = round(float(hours) * _SECONDS_PER_HOUR * rate)
    weights = _component_weights(components)
    writer = _Writer(waveform_dir, layout, network, list(table["station"]), components, rate)

    span_km = float(np.hypot(np.ptp(x_km), np.ptp(y_km)))
    for h, first in enumerate(range(0, total, samples_per_hour)):
        nsamp = min(samples_per_hour, total - first)
        speed = velocity
        if change_hour is not None and h >= change_hour:
            speed = velocity * (1.0 + float(dvv))
        if span_km / speed > nsamp / rate:
            logger.warning(
                "segment %d lasts %.1f s, less than the %.1f s a wave may take to cross the "
                "array: the plane waves wrap around",
                h, nsamp / rate, span_km / speed,
            )
        azimuths = _draw_azimuths(rng, waves_per_hour, azimuth, float(spread))
        spectra = _station_spectra(rng, x_km, y_km, azimuths, weights, speed, nsamp, rate)
        segment_start = t0 + _SECONDS_PER_HOUR * h
        for s in range(stations):
            records = np.fft.irfft(spectra[s], 2 * nsamp, axis=-1)[:, :nsamp]
            for c in range(len(components)):
                signal = records[c]
                noise = rng.standard_normal(nsamp) * (float(noise_level) * signal.std())
                writer.write(s, c, segment_start, (signal + noise).astype(np.float32))

    logger.info(
        "wrote %d stations x %d components x %g h at %g Hz (%s layout, %d files) to %s",
        stations, len(components), float(hours), rate, layout, len(writer.files), waveform_dir,
    )
    stale = sum(1 for p in waveform_dir.rglob("*") if p.is_file() and _is_waveform_file(p)) - len(writer.files)
    if stale > 0:
        logger.warning(
            "%s holds %d waveform files not written by this call; read_stream will read them too",
            waveform_dir, stale,
        )
    marker.write_text(json.dumps(recipe))  # written last: a half-written archive is never reused
    return _archive(root, waveform_dir, table, t0, hours, rate, velocity, components, layout)


def _archive(root, waveform_dir, table, t0, hours, rate, velocity, components, layout) -> SyntheticArchive:
    return SyntheticArchive(
        path=root,
        waveform_dir=waveform_dir,
        stations=table,
        starttime=float(t0.timestamp),
        endtime=float((t0 + float(hours) * _SECONDS_PER_HOUR).timestamp),
        rate=rate,
        velocity=velocity,
        components=components,
        layout=layout,
    )


def _is_waveform_file(path: Path) -> bool:
    """miniSEED files the archive's layouts produce (not indexes such as obsplus' .index.h5)."""
    return not path.name.startswith(".") and path.suffix != ".h5"


def _station_table(
    rng: np.random.Generator, count: int, aperture_km: float, network: str
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Draw station positions and build the station table.

    Returns the table and the x (east) and y (north) coordinates in km, rounded as written
    in the table so that the synthesis uses exactly the written geometry.
    """
    xy = np.round(rng.uniform(-aperture_km / 2, aperture_km / 2, size=(count, 2)), 4)
    x_km, y_km = xy[:, 0], xy[:, 1]
    latitude = np.round(_LAT0_DEG + y_km / _KM_PER_DEG, 6)
    longitude = np.round(
        _LON0_DEG + x_km / (_KM_PER_DEG * math.cos(math.radians(_LAT0_DEG))), 6
    )
    table = pd.DataFrame(
        {
            "network": [network] * count,
            "station": [f"S{i:03d}" for i in range(count)],
            "latitude": latitude,
            "longitude": longitude,
            "elevation": np.full(count, _ELEVATION_M),
            "x_km": x_km,
            "y_km": y_km,
        },
        columns=_STATION_COLUMNS,
    )
    return table, x_km, y_km


def _component_weights(components: str) -> np.ndarray:
    """Weights of each component as a (components, 3) matrix applied to ``[1, uy, ux]``.

    Z records every wave with weight 1; N (and 1) with the north part ``uy`` of the
    propagation direction, E (and 2) with its east part ``ux``: radial motion.
    """
    rows = {"Z": (1.0, 0.0, 0.0), "N": (0.0, 1.0, 0.0), "1": (0.0, 1.0, 0.0),
            "E": (0.0, 0.0, 1.0), "2": (0.0, 0.0, 1.0)}
    return np.array([rows[c] for c in components])


def _draw_azimuths(
    rng: np.random.Generator, count: int, azimuth: float | None, spread: float
) -> np.ndarray:
    """Propagation azimuths of one segment's plane waves, radians clockwise from north."""
    if azimuth is None:
        return rng.uniform(0.0, 2.0 * np.pi, count)
    return np.deg2rad(float(azimuth) + rng.uniform(-spread, spread, count))


def _phasor(arg: np.ndarray) -> np.ndarray:
    """Return ``exp(1j * arg)`` (cos and sin are cheaper than a complex exponential)."""
    out = np.empty(arg.shape, dtype=np.complex128)
    np.cos(arg, out=out.real)
    np.sin(arg, out=out.imag)
    return out


def _station_spectra(
    rng: np.random.Generator,
    x_km: np.ndarray,
    y_km: np.ndarray,
    azimuths: np.ndarray,
    weights: np.ndarray,
    velocity: float,
    nsamp: int,
    rate: float,
) -> np.ndarray:
    """Spectra of every station and component for one segment.

    Parameters
    ----------
    x_km, y_km : numpy.ndarray
        Station coordinates east and north, km.
    azimuths : numpy.ndarray
        Propagation azimuth of each plane wave, radians clockwise from north.
    weights : numpy.ndarray
        (components, 3) matrix applied to ``[1, uy, ux]`` of each wave.
    velocity : float
        Phase velocity, km/s.
    nsamp : int
        Segment length, samples; the FFT length is ``2 * nsamp``.
    rate : float
        Sampling rate, Hz.

    Returns
    -------
    numpy.ndarray
        Complex array (stations, components, bins) holding the bins ``f <= 1.2 Hz`` of the
        real FFT of length ``2 * nsamp``; the bins above are zero.
    """
    nfft = 2 * nsamp
    df = rate / nfft
    nbins = min(nfft // 2 + 1, math.floor(_F_MAX_HZ / df + 1e-9) + 1)
    freqs = np.arange(nbins) * df
    band = np.exp(-0.5 * ((freqs - _BAND_CENTRE_HZ) / _BAND_WIDTH_HZ) ** 2)

    ux, uy = np.sin(azimuths), np.cos(azimuths)
    # real weight of each wave in each component: (components, waves)
    wave_weights = np.einsum("cb,bw->cw", weights, np.stack([np.ones_like(ux), uy, ux]))
    # delay of each wave at each station, s: (stations, waves)
    delays = (np.outer(x_km, ux) + np.outer(y_km, uy)) / velocity
    # exp(-2 pi i f delay) at f = (j * _BLOCK + m) * df, factorised as the phase of the block
    # start j * _BLOCK times that of the offset m: two small tables instead of one per bin
    nblocks = -(-nbins // _BLOCK)
    step = -2.0 * np.pi * df * delays
    offset_phase = _phasor(step[:, :, None] * np.arange(min(_BLOCK, nbins)))  # (sta, wave, m)
    block_phase = _phasor((_BLOCK * np.arange(nblocks))[:, None, None] * step)  # (j, sta, wave)

    nwaves = azimuths.size
    out = np.empty((x_km.size, weights.shape[0], nbins), dtype=np.complex128)
    for j in range(nblocks):
        lo, hi = j * _BLOCK, min(nbins, (j + 1) * _BLOCK)
        width = hi - lo
        spec = rng.standard_normal((nwaves, width)) + 1j * rng.standard_normal((nwaves, width))
        spec *= band[lo:hi]
        shifted = spec[None, :, :] * offset_phase[:, :, :width]  # (sta, wave, bin)
        shifted *= block_phase[j][:, :, None]
        # sum over waves with real weights, on the float view (real, imag interleaved): a
        # BLAS-free contraction, as fast as a one-thread BLAS call and immune to
        # oversubscribed BLAS threads (they made it ten times slower on busy cores)
        summed = np.einsum("swk,cw->sck", shifted.view(np.float64), wave_weights)
        out[:, :, lo:hi] = summed.view(np.complex128)
    return out


class _Writer:
    """Write one segment of one channel at a time in the chosen layout."""

    def __init__(
        self,
        waveform_dir: Path,
        layout: str,
        network: str,
        stations: list[str],
        components: str,
        rate: float,
    ) -> None:
        self.waveform_dir = waveform_dir
        self.layout = layout
        self.network = network
        self.stations = stations
        self.components = components
        self.rate = rate
        self.files: set[Path] = set()

    def write(self, station: int, component: int, start: UTCDateTime, data: np.ndarray) -> None:
        """Write ``data`` (float32) starting at ``start`` for one station and component."""
        sta = self.stations[station]
        cha = f"HH{self.components[component]}"
        if self.layout == "hourly":
            name = f"{self.network}.{sta}..{cha}__{start.strftime('%Y%m%dT%H')}.mseed"
            file = self.waveform_dir / name
            self._trace(sta, cha, start, data).write(
                str(file), format="MSEED", encoding="FLOAT32"
            )
            self.files.add(file)
            return
        # SDS: split at midnight (a sample at 00:00:00 belongs to the new day) and append
        # each piece to its day file, truncating a file the first time this call writes it.
        first = 0
        while first < data.size:
            t = start + first / self.rate
            midnight_ns = (t.ns // _NS_PER_DAY + 1) * _NS_PER_DAY
            last = math.ceil((midnight_ns - start.ns) * self.rate / 1e9 - 1e-6)
            last = min(max(last, first + 1), data.size)
            folder = self.waveform_dir / f"{t.year}" / self.network / sta / f"{cha}.D"
            file = folder / f"{self.network}.{sta}..{cha}.D.{t.year}.{t.julday:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            self._trace(sta, cha, t, data[first:last]).write(
                buffer, format="MSEED", encoding="FLOAT32"
            )
            with open(file, "ab" if file in self.files else "wb") as handle:
                handle.write(buffer.getvalue())
            self.files.add(file)
            first = last

    def _trace(self, sta: str, cha: str, start: UTCDateTime, data: np.ndarray) -> Trace:
        header = {
            "network": self.network,
            "station": sta,
            "location": "",
            "channel": cha,
            "sampling_rate": self.rate,
            "starttime": start,
        }
        return Trace(data=np.ascontiguousarray(data), header=header)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _validate(**args: object) -> tuple[Path, UTCDateTime]:
    """Check the arguments of :func:`synthetic_archive`; return the root path and start time."""

    def need(ok: bool, name: str, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{name}: expected {expected}, got {args[name]!r}")

    path = args["path"]
    need(isinstance(path, (str, Path)) and str(path) != "", "path", "a str or pathlib.Path")
    stations = args["stations"]
    need(_is_int(stations) and 1 <= stations <= 10_000, "stations", "an int from 1 to 10000")
    hours = args["hours"]
    need(_is_real(hours) and hours > 0, "hours", "a finite number > 0")
    rate = args["rate"]
    need(
        _is_real(rate) and rate >= _MIN_RATE_HZ,
        "rate",
        f"a finite number >= {_MIN_RATE_HZ} Hz (the band reaches {_F_MAX_HZ} Hz)",
    )
    per_hour = float(rate) * _SECONDS_PER_HOUR
    need(
        abs(per_hour - round(per_hour)) < 1e-6,
        "rate",
        "a whole number of samples per hour (rate * 3600 an integer)",
    )
    need(
        round(float(hours) * per_hour) >= 2,
        "hours",
        f"at least 2 samples at {float(rate):g} Hz",
    )
    seed = args["seed"]
    need(_is_int(seed) and seed >= 0, "seed", "an int >= 0")
    components = args["components"]
    need(
        isinstance(components, str)
        and len(components) > 0
        and set(components) <= set(_ALLOWED_COMPONENTS)
        and len(set(components)) == len(components),
        "components",
        f"a non-empty str of distinct letters from {_ALLOWED_COMPONENTS!r}",
    )
    velocity = args["velocity"]
    need(_is_real(velocity) and velocity > 0, "velocity", "a finite number > 0 km/s")
    aperture = args["aperture_km"]
    need(_is_real(aperture) and aperture > 0, "aperture_km", "a finite number > 0 km")
    waves = args["waves_per_hour"]
    need(_is_int(waves) and waves >= 1, "waves_per_hour", "an int >= 1")
    network = args["network"]
    need(
        isinstance(network, str) and 1 <= len(network) <= 2 and network.isalnum()
        and network.isascii(),
        "network",
        "1 or 2 ASCII letters or digits",
    )
    azimuth = args["azimuth"]
    need(azimuth is None or _is_real(azimuth), "azimuth", "None or a finite number of degrees")
    spread = args["spread"]
    need(_is_real(spread) and spread >= 0, "spread", "a finite number >= 0 degrees")
    dvv = args["dvv"]
    need(_is_real(dvv) and dvv > -1, "dvv", "a finite number > -1")
    change_hour = args["change_hour"]
    need(change_hour is None or _is_real(change_hour), "change_hour", "None or a finite number")
    noise = args["noise_level"]
    need(_is_real(noise) and noise >= 0, "noise_level", "a finite number >= 0")
    need(args["layout"] in _LAYOUTS, "layout", f"one of {_LAYOUTS}")
    try:
        start = UTCDateTime(args["starttime"])
    except Exception as exc:  # UTCDateTime raises TypeError, ValueError and others
        raise ConfigError(
            f"starttime: expected a time obspy.UTCDateTime accepts, got {args['starttime']!r}"
        ) from exc
    return Path(path), start
