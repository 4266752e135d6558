"""CrossCorrelate's ``precision`` and ``band``: what single precision and band cropping cost.

- single vs double precision through a whole default run: within 1e-5 of each trace's peak;
- ``band='auto'`` after whitening leaves out only the whitened windows' leakage, a few 1e-4 of
  the zero-lag autocorrelations; without a step that declares a band it changes nothing;
- an explicit band keeps exactly the band=None cross-spectrum inside it and zero outside;
- serial and dask runs give bit-identical single-precision numbers over several read spans;
- bad ``precision`` / ``band`` values are ConfigErrors; the settings survive a config file.
"""

import numpy as np
import pytest
from distributed import Client, LocalCluster
from obspy import Stream, Trace, UTCDateTime

from anxcor.config import load_config, save_config
from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase, WaveBankDatabase
from anxcor.errors import ConfigError
from anxcor.steps import CrossCorrelate, Step

RATE = 10.0
WINDOW = 600.0
MAX_LAG = 30.0
T0 = UTCDateTime(2021, 1, 1)
STATIONS = ("A", "B", "C")


def _stream(stations=STATIONS, n_windows=3, seed=40):
    """Seeded white noise, ZNE, at RATE; B and C also record A's noise 1.5 and 3 s later."""
    rng = np.random.default_rng(seed)
    n = int(n_windows * WINDOW * RATE)
    common = rng.standard_normal((3, n + 100))
    stream = Stream()
    for k, station in enumerate(stations):
        shift = int(15 * k)
        for c, component in enumerate("ZNE"):
            data = common[c, 100 - shift : 100 - shift + n] + rng.standard_normal(n)
            header = dict(network="XX", station=station, channel=f"HH{component}", sampling_rate=RATE, starttime=T0)
            stream += Trace(data, header=header)
    return stream


def _anxcor(stream=None, whiten=True, **correlation):
    """Default preprocessing (at the data's rate), ``correlation`` passed to CrossCorrelate."""
    anx = Anxcor(window_length=WINDOW)
    anx.set_task_kwargs("resample", dict(target_rate=RATE))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=MAX_LAG, **correlation))
    if not whiten:
        anx.set_task("whiten", None)
    anx.add_dataset(InMemoryDatabase(_stream() if stream is None else stream), "x")
    return anx


def _times(n_windows=3):
    return [T0.timestamp + k * WINDOW for k in range(n_windows)]


@pytest.fixture(scope="module")
def runs():
    """The same data through the default pipeline with several correlation settings."""
    stream = _stream()
    settings = {
        "single": {},
        "double": dict(precision="double"),
        "double_none": dict(precision="double", band=None),
        "single_none": dict(band=None),
    }
    return {key: _anxcor(stream, **kwargs).process(_times()) for key, kwargs in settings.items()}


# ---------------------------------------------------------------------- precision


def test_single_precision_is_within_1e_5_of_double(runs):
    single, double = runs["single"]["x"], runs["double"]["x"]
    assert single.dtype == np.float32 and double.dtype == np.float64
    assert single.dims == double.dims
    assert (runs["single"]["n_windows"].values == runs["double"]["n_windows"].values).all()
    # measured: at most 3.2e-7 of a trace's peak (median 2.0e-7; 3 stations, 3 windows, whitened;
    # 2.7e-7 and 1.8e-7 with the whitening's inverse FFT in double precision)
    error = np.abs(single.values.astype(np.float64) - double.values).max(axis=-1)
    peak = np.abs(double.values).max(axis=-1)
    assert (peak > 0).all()
    worst = float((error / peak).max())
    assert worst <= 1e-5, f"single - double reaches {worst:.2e} of a trace's peak"


def test_single_precision_spectrum_is_complex64():
    single = _anxcor(output="spectrum").process(_times(1))
    double = _anxcor(output="spectrum", precision="double").process(_times(1))
    assert single["x"].dtype == np.complex64 and double["x"].dtype == np.complex128
    scale = np.abs(double["x"].values).max()
    np.testing.assert_allclose(single["x"].values, double["x"].values, rtol=0, atol=1e-5 * scale)


#: What each probe step was told, by probe name (module level: a step's parameters go into the result's attrs).
TOLD: dict[str, list[str]] = {}


class _Probe(Step):
    """Passes the data on and records the output precision each call is told (``context.output_dtype``)."""

    def __init__(self, label: str):
        self.label = label

    def apply(self, data, sampling_rate, context=None):
        TOLD.setdefault(self.label, []).append(np.dtype(context.output_dtype).name)
        return data, sampling_rate


@pytest.mark.parametrize(
    ("precision", "save_last", "last_told"),
    [("single", False, "float32"), ("double", False, "float64"), ("single", True, "float64")],
)
def test_only_the_last_step_of_a_single_precision_run_may_work_in_float32(precision, save_last, last_told, tmp_path):
    TOLD.clear()
    anx = _anxcor(precision=precision)
    anx.add_process(_Probe("middle"), name="middle", before="whiten")
    anx.add_process(_Probe("last"), name="last")  # after whitening: the step the correlation casts
    if save_last:  # a saved stage keeps double precision, whatever a later run's precision is
        anx.save_at_process(tmp_path / "stage", "last")
    anx.process(_times(1))
    told = dict(TOLD)
    assert told == {"middle": ["float64"] * len(STATIONS), "last": [last_told] * len(STATIONS)}


# ---------------------------------------------------------------------- band


def test_auto_band_after_whitening_differs_from_all_frequencies_by_the_leakage_only(runs):
    auto, full = runs["double"], runs["double_none"]
    # Whiten's default band, 0.05-1 Hz with 20 % ramps: the correlation keeps 0.04-1.2 Hz
    assert _anxcor().get_task("whiten").output_band(RATE) == pytest.approx((0.04, 1.2))
    zero = full["x"].sel(time=0.0)
    worst = 0.0
    for pair in full["station_pair"].values:
        src, rec = pair.split(":")
        for channel in full["channel"].values:
            a, b = channel.split(":")
            scale = np.sqrt(float(zero.sel(station_pair=f"{src}:{src}", channel=f"{a}:{a}"))
                            * float(zero.sel(station_pair=f"{rec}:{rec}", channel=f"{b}:{b}")))
            difference = np.abs(auto["x"].sel(station_pair=pair, channel=channel).values
                                - full["x"].sel(station_pair=pair, channel=channel).values).max()
            worst = max(worst, difference / scale)
    # measured: 2.5e-4 to 6.5e-4 of sqrt(acf_src(0) acf_rec(0)) depending on the pair (max over channels)
    assert 0 < worst <= 2e-3, f"band='auto' - band=None reaches {worst:.2e} of the zero-lag autocorrelations"


def test_auto_band_without_a_declared_band_keeps_every_frequency():
    stream = _stream()
    auto = _anxcor(stream, whiten=False).process(_times())
    full = _anxcor(stream, whiten=False, band=None).process(_times())
    assert auto["x"].dtype == np.float32
    np.testing.assert_array_equal(auto["x"].values, full["x"].values)


@pytest.mark.parametrize("band", [(0.2, 0.6), (0.0, 0.33), (1.0, 5.0)])
def test_explicit_band_is_the_all_frequency_spectrum_cut_to_the_band(band):
    stream = _stream()
    fmin, fmax = band
    cut = _anxcor(stream, output="spectrum", precision="double", band=band).process(_times(2))
    full = _anxcor(stream, output="spectrum", precision="double", band=None).process(_times(2))
    frequencies = full["frequency"].values
    step = frequencies[1] - frequencies[0]
    np.testing.assert_array_equal(cut["frequency"].values, frequencies)
    ours, reference = cut["x"].values, full["x"].values
    inside = (frequencies >= fmin) & (frequencies <= fmax)
    outside = (frequencies < fmin - step) | (frequencies > fmax + step)
    scale = np.abs(reference).max()
    np.testing.assert_allclose(ours[..., inside], reference[..., inside], rtol=1e-9, atol=1e-9 * scale)
    assert (ours[..., outside] == 0).all()
    # the bins within one bin of an edge are either kept or left out, never anything else
    edges = ~inside & ~outside
    kept = np.isclose(ours[..., edges], reference[..., edges], rtol=1e-9, atol=1e-9 * scale)
    assert (kept | (ours[..., edges] == 0)).all()


def test_explicit_band_correlation_is_the_inverse_fft_of_the_cut_spectrum():
    stream = _stream()
    band = (0.2, 0.6)
    anx = _anxcor(stream, precision="double", band=band)
    lags = anx.process(_times(2))["x"]
    spectrum = _anxcor(stream, output="spectrum", precision="double", band=None).process(_times(2))["x"]
    correlator = anx.get_task("crosscorrelate")
    nfft = correlator.nfft(int(WINDOW * RATE), RATE)
    first, last = correlator.band_bins(nfft, RATE)
    kept = np.zeros_like(spectrum.values)
    kept[..., first:last] = spectrum.values[..., first:last]
    circular = np.fft.irfft(kept, nfft, axis=-1)
    max_lag = int(MAX_LAG * RATE)
    expected = np.concatenate([circular[..., nfft - max_lag :], circular[..., : max_lag + 1]], axis=-1)
    np.testing.assert_allclose(lags.values, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


# ---------------------------------------------------------------------- serial vs dask


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as dask_client:
        yield dask_client


def test_dask_gives_the_serial_single_precision_numbers_bit_for_bit(small_archive, client):
    def run(**options):
        anx = Anxcor(window_length=WINDOW, read_span=WINDOW)  # one read span per window
        anx.set_task_kwargs("resample", dict(target_rate=small_archive.rate))
        anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=MAX_LAG))
        anx.add_dataset(WaveBankDatabase(small_archive.waveform_dir, coordinates=small_archive.stations), "syn")
        times = anx.get_starttimes(small_archive.starttime, small_archive.endtime, 0.5)[:5]
        plan = anx._plan(anx._stations("syn"), anx._pairs(anx._stations("syn")), times, anx._spec(False))
        assert len(plan.spans) >= 3
        return anx.process(times, **options)

    serial = run()
    distributed = run(dask_client=client)
    assert serial["syn"].dtype == distributed["syn"].dtype == np.float32
    assert np.isfinite(serial["syn"].values).all() and np.abs(serial["syn"].values).max() > 0
    assert np.array_equal(serial["syn"].values, distributed["syn"].values)
    assert np.array_equal(serial["n_windows"].values, distributed["n_windows"].values)


# ---------------------------------------------------------------------- validation and config


@pytest.mark.parametrize("precision", ["x", "float32", None, 32])
def test_bad_precision_is_a_config_error(precision):
    with pytest.raises(ConfigError, match="precision"):
        CrossCorrelate(precision=precision)


@pytest.mark.parametrize(
    "band", [(2.0, 1.0), (1.0, 1.0), "foo", (0.0, np.inf), (-0.1, 1.0), (0.1,), (0.1, 0.5, 1.0), ("a", 1.0), (np.nan, 1.0), 0.5]
)
def test_bad_band_is_a_config_error(band):
    with pytest.raises(ConfigError, match="band"):
        CrossCorrelate(band=band)


def test_band_beyond_nyquist_of_the_data_is_a_config_error():
    correlator = CrossCorrelate(max_tau_shift=10.0, band=(20.0, 30.0))
    with pytest.raises(ConfigError, match="band"):
        correlator.band_bins(correlator.nfft(1000, RATE), RATE)


def test_band_list_becomes_a_tuple_of_floats():
    assert CrossCorrelate(band=[0, 1]).band == (0.0, 1.0)
    assert CrossCorrelate(band=[0, 1]) == CrossCorrelate(band=(0.0, 1.0))


@pytest.mark.parametrize(
    "settings", [dict(band=(0.1, 0.5), precision="double"), dict(band=None), dict(band="auto", precision="single")]
)
def test_precision_and_band_survive_a_config_file(settings, tmp_path):
    anx = Anxcor(window_length=WINDOW)
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=MAX_LAG, **settings))
    path = save_config(anx, tmp_path / "run.json")
    loaded = load_config(path).get_task("crosscorrelate")
    assert loaded == anx.get_task("crosscorrelate")
    assert loaded.get_params() == anx.get_task("crosscorrelate").get_params()
    assert type(loaded.band) is type(anx.get_task("crosscorrelate").band)


@pytest.mark.parametrize("method", ["pws", "robust"])
def test_non_linear_stacks_keep_the_single_precision_dtype(method):
    anx = _anxcor()
    anx.set_task_kwargs("stack", dict(method=method))
    assert anx.process(_times())["x"].dtype == np.float32
    assert anx.process(_times(), stack=2)["x"].dtype == np.float32


def test_spectrum_output_blocks_are_sized_for_the_full_frequency_grid():
    anx = _anxcor(output="spectrum", precision="double")
    reference = anx.process(_times())
    anx.pair_block_mb = 0.7  # blocks sized for lags would hold 2 stations (4 pairs, 1.8 MB of spectra)
    spec = anx._spec(False)
    stations = [f"XX.{s}" for s in STATIONS]
    plan = anx._plan(stations, anx._pairs(stations), _times(), spec)
    largest = max(len(block.pairs) for block in plan.blocks)
    assert largest * 9 * (spec.nfft // 2 + 1) * 16 <= anx.pair_block_mb * 1e6
    np.testing.assert_allclose(anx.process(_times())["x"].values, reference["x"].values, rtol=1e-12, atol=0)
