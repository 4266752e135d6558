"""Real data: one day of ambient noise on Piton de la Fournaise (La Reunion).

Network YA (UnderVolc), stations UV05, UV06 and UV10, vertical only (HHZ, 100 Hz, raw
counts), 2010-09-01, from MSNoise's test archive (``shared/data/piton``, see its
LICENSE-NOTE.txt). The instrument response comes from the StationXML beside the waveforms.

anxcor removes the response, correlates all pairs (autocorrelations included) over 30-min
windows and stacks them. Each ZZ cross-pair stack must show a clear arrival (SNR > 5) at a lag
consistent with the inter-station distance for any plausible surface-wave speed between 0.5
and 4 km/s: ``d / 4 <= |lag| <= d / 0.5`` s (d in km), causal or acausal side.

Why these settings (explored on this day; see the module constants):

- whitening 0.2-1 Hz (periods 1-5 s): the peaks then give apparent speeds of about 0.8-1.1 km/s
  on all three pairs, and they move by at most 0.1 s when the window length (1800 or 3600 s),
  the temporal normalisation (running-absolute-mean, clipping or none), the bandpass before it
  or the target rate (10 or 20 Hz) change; one-bit normalisation does move them (to 1.2-2.3 s).
  Extending the band down to 0.1-0.15 Hz lets the secondary microseism dominate: its
  wavelength (>10 km) is longer than the station spacing, the stacks turn into one broad
  wavelet around zero lag and every pair "peaks" on its flank at -2.0 to -2.1 s whatever its
  distance (4.0, 4.1 or 5.6 km). That would pass the checks below (the 0.5-4 km/s range is
  wide) but is not a travel time.
- 10 Hz target rate: enough for 1 Hz; 20 Hz gives the same lags within 0.05 s and costs more.
- max_tau_shift 60 s: the noise window of the SNR (|lag| >= 2 d / 0.5 s, i.e. from 16 or 23 s)
  then holds 37-44 s on each side.
- read_span 6 h: one get_waveforms call per station and 6 h (obspy reads only the miniSEED
  records asked for). Reading the whole day at once (read_span=86400) was slower on this
  machine (about 11.5 s against 8 s for the whole run); hourly reads took about 8.3 s.

The second part recomputes one pair with a plain obspy/numpy pipeline written here and checks
that anxcor gives the same stack.
"""

import json
from pathlib import Path

import numpy as np
import obspy
import pytest
import scipy.fft
import scipy.signal
from conftest import shared_path
from obspy import UTCDateTime

from anxcor.core import Anxcor, AnxcorDatabase
from anxcor.steps import RemoveResponse

DAY = UTCDateTime(2010, 9, 1)
STATIONS = ["YA.UV05", "YA.UV06", "YA.UV10"]
#: Inter-station distances in km (WGS84 geodesic, from the data's LICENSE-NOTE.txt).
DISTANCES_KM = {"YA.UV05:YA.UV06": 4.103, "YA.UV05:YA.UV10": 4.048, "YA.UV06:YA.UV10": 5.637}
SPEEDS_KM_S = (0.5, 4.0)

WINDOW_S = 1800.0
OVERLAP = 0.5
READ_SPAN_S = 6 * 3600.0
PRE_FILT = (0.02, 0.05, 8.0, 10.0)  # Hz; the sensor (Guralp CMG-40T) is flat in velocity above ~0.01 Hz
BANDPASS = (0.1, 2.0)  # Hz, before the temporal normalisation
RATE = 10.0  # Hz
RAM_WINDOW_S = 10.0
WHITEN = (0.2, 1.0)  # Hz
MAX_LAG_S = 60.0

MIN_SNR = 5.0
#: Largest difference between anxcor's and the plain pipeline's peak lags (s).
LAG_TOLERANCE_S = 0.2
#: Smallest correlation coefficient between anxcor's and the plain pipeline's stacks.
MIN_STACK_CC = 0.99
#: Largest RMS of (plain - anxcor) relative to the RMS of anxcor's stack.
MAX_RELATIVE_DIFFERENCE = 0.05


class PitonArchive(AnxcorDatabase):
    """MSNoise's day-file archive: ``ROOT/YEAR/STA/CHAN.TYPE/NET.STA.LOC.CHAN.TYPE.YEAR.DAY``.

    Holds only the root path (so it pickles for dask); files are opened in get_waveforms.
    """

    def __init__(self, root):
        super().__init__()
        self.root = Path(root)

    def get_stations(self):
        # YEAR/STA/CHAN.TYPE/ folders; the network code comes from the file names inside
        files = self.root.glob("[0-9][0-9][0-9][0-9]/*/*.*/*")
        return sorted({".".join(path.name.split(".")[:2]) for path in files if path.name.count(".") == 6})

    def get_waveforms(self, network=None, station=None, starttime=None, endtime=None, **kwargs):
        stream = obspy.Stream()
        day = UTCDateTime(starttime.date)
        while day <= endtime:
            pattern = f"{day.year}/{station}/*.*/{network}.{station}.*.*.*.{day.year}.{day.julday:03d}"
            for path in sorted(self.root.glob(pattern)):
                stream += obspy.read(str(path), starttime=starttime, endtime=endtime)
            day += 86400
        return stream


def allowed_lags(distance_km):
    """The |lag| range (s) of an arrival travelling between SPEEDS_KM_S."""
    return distance_km / SPEEDS_KM_S[1], distance_km / SPEEDS_KM_S[0]


def peak_and_snr(lags, trace, distance_km):
    """Lag of the envelope's peak within the allowed range, and its SNR.

    SNR = peak of |hilbert(trace)| within d/4 <= |lag| <= d/0.5 divided by the RMS of the
    trace at |lag| >= 2 d/0.5 (well after the slowest allowed arrival, both sides).
    """
    low, high = allowed_lags(distance_km)
    envelope = np.abs(scipy.signal.hilbert(trace))
    allowed = (np.abs(lags) >= low) & (np.abs(lags) <= high)
    noise = np.abs(lags) >= 2 * high
    assert noise.sum() >= 100, "the noise window needs a longer max_tau_shift"
    index = int(np.argmax(np.where(allowed, envelope, -np.inf)))
    return float(lags[index]), float(envelope[index] / np.sqrt(np.mean(trace[noise] ** 2)))


@pytest.fixture(scope="module")
def piton_root():
    return shared_path("data", "piton")


@pytest.fixture(scope="module")
def inventory(piton_root):
    return obspy.read_inventory(str(piton_root / "station" / "YA.UV05_UV06_UV10.stationxml.xml"))


@pytest.fixture(scope="module")
def windows():
    return Anxcor(window_length=WINDOW_S).get_starttimes(DAY, DAY + 86400, OVERLAP)


@pytest.fixture(scope="module")
def result(piton_root, inventory, windows):
    anx = Anxcor(window_length=WINDOW_S, read_span=READ_SPAN_S)
    anx.add_process(RemoveResponse(output="VEL", pre_filt=PRE_FILT), before="detrend")
    anx.set_task_kwargs("bandpass", dict(freqmin=BANDPASS[0], freqmax=BANDPASS[1]))
    anx.set_task_kwargs("resample", dict(target_rate=RATE))
    anx.set_task_kwargs("temporal_norm", dict(method="ram", window_s=RAM_WINDOW_S))
    anx.set_task_kwargs("whiten", dict(freqmin=WHITEN[0], freqmax=WHITEN[1]))
    # double precision: test_autocorrelations_peak_at_zero_lag checks the symmetry at rounding
    # level (float64: 1.6e-16 of the peak; float32, the default, 4.2e-8, and single - double is
    # 1.5-2.5e-7 of each pair's peak here; tests/test_precision_band.py covers single precision)
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=MAX_LAG_S, precision="double"))
    anx.add_dataset(PitonArchive(piton_root), "piton", inventory=inventory)
    return anx.process(windows)


def test_archive_lists_the_three_stations(piton_root):
    archive = PitonArchive(piton_root)
    assert archive.get_stations() == STATIONS
    stream = archive.get_waveforms("YA", "UV06", DAY + 3600, DAY + 7200)
    assert [tr.id for tr in stream] == ["YA.UV06.00.HHZ"]
    assert stream[0].stats.sampling_rate == 100.0 and abs(stream[0].stats.endtime - (DAY + 7200)) < 0.01


def test_every_window_went_into_every_pair(result, windows):
    assert len(windows) == 95  # 30-min windows every 15 min, lying fully inside the day
    # HHZ only: the one record per station and horizontal component says so, nothing else failed
    failures = json.loads(result.attrs["failures"])
    assert sorted((f["station"], f["component"]) for f in failures) == [(f"YA.{s}", c) for s in ("UV05", "UV06", "UV10") for c in "EN"]
    assert {f["reason"] for f in failures} == {"component absent from the data in all 95 windows"}
    pairs = [f"{a}:{b}" for i, a in enumerate(STATIONS) for b in STATIONS[i:]]
    assert list(result["station_pair"].values) == pairs  # autocorrelations included
    assert (result["n_windows"].sel(channel="Z:Z").values == len(windows)).all()
    assert (result["n_windows"].drop_sel(channel="Z:Z").values == 0).all()  # HHZ only
    assert result.attrs["sampling_rate"] == RATE
    assert np.isfinite(result["piton"].sel(channel="Z:Z").values).all()


def test_distances_come_from_the_inventory(result):
    for pair, distance in DISTANCES_KM.items():
        assert float(result["distance"].sel(station_pair=pair)) == pytest.approx(distance, abs=0.002)


def test_autocorrelations_peak_at_zero_lag(result):
    lags = result["time"].values
    for station in STATIONS:
        trace = result["piton"].sel(channel="Z:Z", station_pair=f"{station}:{station}").values
        assert lags[np.argmax(trace)] == 0.0
        assert np.allclose(trace, trace[::-1], rtol=1e-6, atol=1e-9 * trace.max())  # symmetric


@pytest.mark.parametrize("pair", sorted(DISTANCES_KM))
def test_cross_pairs_have_a_clear_surface_wave_arrival(result, pair):
    # measured (anxcor, this configuration): lag -4.1 s (1.00 km/s, SNR 30) for UV05:UV06,
    # -5.3 s (0.76 km/s, SNR 21) for UV05:UV10, +5.3 s (1.06 km/s, SNR 20) for UV06:UV10
    distance = float(result["distance"].sel(station_pair=pair))
    lags = result["time"].values
    lag, snr = peak_and_snr(lags, result["piton"].sel(channel="Z:Z", station_pair=pair).values, distance)
    low, high = allowed_lags(distance)
    print(f"{pair}: d={distance:.3f} km, peak lag {lag:+.2f} s, {distance / abs(lag):.2f} km/s, SNR {snr:.1f}")
    assert low <= abs(lag) <= high
    assert snr > MIN_SNR


# ---------------------------------------------------------------------- independent check


def plain_day(root, station, inventory):
    """One station's day with obspy alone: counts -> m/s, band-passed, at RATE Hz.

    The response is removed from the whole day (obspy's Trace.remove_response), after a
    zero-phase 8 Hz low-pass and decimation to 20 Hz: evalresp on the 100 Hz day costs
    ~25 s per station (8.4 million frequencies), at 20 Hz ~5 s; the same PRE_FILT
    (8-10 Hz corners, below the 10 Hz Nyquist) follows.
    """
    trace = obspy.read(str(root / "2010" / station / "HHZ.D" / f"YA.{station}.00.HHZ.D.2010.244"))[0]
    assert trace.stats.starttime == DAY and trace.stats.npts == 8_640_000
    trace.data = trace.data.astype(np.float64)
    trace.detrend("linear")
    trace.filter("lowpass", freq=8.0, corners=6, zerophase=True)
    trace.decimate(5, no_filter=True)
    # the default 5% taper would damp the first and last 36 min of the day: 0.2% (~3 min)
    trace.remove_response(inventory=inventory, output="VEL", pre_filt=PRE_FILT, taper_fraction=0.002)
    trace.filter("bandpass", freqmin=BANDPASS[0], freqmax=BANDPASS[1], corners=4, zerophase=True)
    trace.resample(RATE)
    assert trace.stats.starttime == DAY and trace.stats.npts == int(86400 * RATE)
    return trace.data


def plain_window_spectrum(x, nfft):
    """detrend, 5% Hann taper each end, running-absolute-mean, whitening; then a padded FFT."""
    n = x.size
    x = scipy.signal.detrend(x, type="linear") * scipy.signal.windows.tukey(n, 0.1)
    width = 2 * int(round(0.5 * RAM_WINDOW_S * RATE)) + 1
    x = x / np.convolve(np.abs(np.pad(x, width // 2, mode="edge")), np.ones(width) / width, mode="valid")
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1.0 / RATE)
    fmin, fmax = WHITEN
    weights = ((f >= fmin) & (f <= fmax)).astype(float)
    low, high = 0.8 * fmin, 1.2 * fmax  # cosine ramps over 20% of each corner
    ramp = (f >= low) & (f < fmin)
    weights[ramp] = 0.5 * (1 - np.cos(np.pi * (f[ramp] - low) / (fmin - low)))
    ramp = (f > fmax) & (f <= high)
    weights[ramp] = 0.5 * (1 + np.cos(np.pi * (f[ramp] - fmax) / (high - fmax)))
    x = np.fft.irfft(spectrum * weights / np.maximum(np.abs(spectrum), 1e-30), n)
    return np.fft.rfft(x, nfft)


def plain_stack(src, rec, starts):
    """Mean over windows of corr(t) = sum s(tau) r(tau + t), |t| <= MAX_LAG_S."""
    n = int(round(WINDOW_S * RATE))
    max_lag = int(round(MAX_LAG_S * RATE))
    nfft = scipy.fft.next_fast_len(n + max_lag)
    total = np.zeros(2 * max_lag + 1)
    for start in starts:
        i = int(round((start - DAY.timestamp) * RATE))
        s, r = plain_window_spectrum(src[i : i + n], nfft), plain_window_spectrum(rec[i : i + n], nfft)
        c = np.fft.irfft(np.conj(s) * r, nfft)
        total += np.concatenate([c[-max_lag:], c[: max_lag + 1]])
    return np.arange(-max_lag, max_lag + 1) / RATE, total / len(starts)


def test_plain_obspy_numpy_pipeline_gives_the_same_stack(result, piton_root, inventory, windows):
    # measured: both peak at -4.1 s with SNR 30.3; correlation coefficient of the two stacks
    # 0.99995, RMS of their difference 1% of the stack's RMS (the response is removed from
    # whole days at 20 Hz here, from each window at 100 Hz in anxcor; edges and tapers differ)
    pair, distance = "YA.UV05:YA.UV06", DISTANCES_KM["YA.UV05:YA.UV06"]
    starts = DAY.timestamp + np.arange(0.0, 86400.0 - WINDOW_S + 1.0, WINDOW_S * (1 - OVERLAP))
    assert np.array_equal(starts, windows)
    src, rec = (plain_day(piton_root, code.split(".")[1], inventory) for code in pair.split(":"))
    lags, plain = plain_stack(src, rec, starts)
    ours = result["piton"].sel(channel="Z:Z", station_pair=pair).values
    assert np.allclose(lags, result["time"].values)
    plain_lag, plain_snr = peak_and_snr(lags, plain, distance)
    our_lag, our_snr = peak_and_snr(lags, ours, distance)
    cc = float(np.corrcoef(plain, ours)[0, 1])
    difference = float(np.sqrt(np.mean((plain - ours) ** 2) / np.mean(ours**2)))
    print(f"{pair}: anxcor {our_lag:+.2f} s SNR {our_snr:.1f}; plain {plain_lag:+.2f} s SNR {plain_snr:.1f}; ", end="")
    print(f"cc {cc:.6f}, relative RMS difference {difference:.4f}")
    assert abs(plain_lag - our_lag) <= LAG_TOLERANCE_S
    assert plain_snr > MIN_SNR
    assert cc > MIN_STACK_CC
    assert difference < MAX_RELATIVE_DIFFERENCE
