"""The correlation kernel against plain scipy.signal.correlate, alone and inside a whole run."""

import numpy as np
import pytest
import scipy.signal
from obspy import Stream, Trace, UTCDateTime

from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase
from anxcor.errors import ConfigError
from anxcor.steps import CrossCorrelate

RATE = 10.0
#: The tests below that compare with a float64 reference or with another computation to 1e-9
#: (or with a full linear correlation after whitening) correlate in double precision over all
#: frequencies; tests/test_precision_band.py covers the defaults (single precision, band='auto').
EXACT = dict(precision="double", band=None)


def reference_correlation(source, receiver, max_lag, method="fft"):
    """corr(t) = sum_tau s(tau) r(tau + t) for t = -max_lag..max_lag samples, by scipy."""
    full = scipy.signal.correlate(receiver, source, mode="full", method=method)
    zero = source.size - 1
    return full[zero - max_lag : zero + max_lag + 1]


@pytest.mark.parametrize("n_samples", [1000, 1001])
def test_kernel_matches_scipy_correlate(n_samples):
    rng = np.random.default_rng(10)
    source, receiver = rng.standard_normal((2, n_samples))
    correlator = CrossCorrelate(max_tau_shift=12.3)
    ours = correlator.correlate(source, receiver, RATE)
    expected = reference_correlation(source, receiver, 123, method="direct")
    assert ours.shape == expected.shape == (247,)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_allclose(correlator.lags(RATE), np.arange(-123, 124) / RATE)


def test_kernel_sign_convention_positive_lag_is_source_to_receiver():
    rng = np.random.default_rng(11)
    signal = rng.standard_normal(2000)
    delay = 37  # samples: the receiver records the wave 3.7 s after the source
    source, receiver = signal[100:1100], signal[100 - delay : 1100 - delay]
    corr = CrossCorrelate(max_tau_shift=10.0).correlate(source, receiver, RATE)
    assert CrossCorrelate(max_tau_shift=10.0).lags(RATE)[np.argmax(corr)] == pytest.approx(3.7)


def test_max_tau_shift_validation():
    with pytest.raises(ConfigError, match="max_tau_shift"):
        CrossCorrelate(max_tau_shift=-1.0)
    with pytest.raises(ConfigError, match="method"):
        CrossCorrelate(method="nope")


def _two_station_stream(n_seconds, rng):
    start = UTCDateTime(2021, 1, 1)
    stream = Stream()
    for station in ("A", "B"):
        for component in "ZNE":
            stream += Trace(
                rng.standard_normal(int(n_seconds * RATE)),
                header=dict(network="XX", station=station, channel=f"HH{component}", sampling_rate=RATE, starttime=start),
            )
    return stream, start.timestamp


def _raw_pipeline(stream, **correlation):
    """An Anxcor over ``stream`` (dataset 'raw') with no preprocessing but the (no-op) resample."""
    anx = Anxcor(window_length=600.0)
    for task in ("detrend", "taper", "bandpass", "temporal_norm", "whiten"):
        anx.set_task(task, None)
    anx.set_task_kwargs("resample", dict(target_rate=RATE))  # no-op at the native rate
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=30.0, **correlation))
    anx.add_dataset(InMemoryDatabase(stream), "raw")
    return anx


def test_pipeline_without_preprocessing_equals_scipy_for_one_window_all_channels():
    stream, t0 = _two_station_stream(700, np.random.default_rng(12))
    anx = _raw_pipeline(stream)
    result = anx.process([t0 + 50.0])
    window = slice(500, 500 + 6000)
    for src, rec in [("A", "B"), ("B", "B")]:
        for cs in "ZNE":
            for cr in "ZNE":
                s = stream.select(station=src, component=cs)[0].data[window]
                r = stream.select(station=rec, component=cr)[0].data[window]
                expected = reference_correlation(s, r, 300)
                ours = result["raw"].sel(station_pair=f"XX.{src}:XX.{rec}", channel=f"{cs}:{cr}").values
                np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_pipeline_with_default_preprocessing_equals_steps_then_scipy():
    stream, t0 = _two_station_stream(700, np.random.default_rng(13))
    anx = Anxcor(window_length=600.0)
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=30.0, **EXACT))
    anx.add_dataset(InMemoryDatabase(stream), "pre")
    result = anx.process([t0])
    rate = anx.get_task("resample").target_rate
    prepared = {}
    for station in ("A", "B"):
        data = np.vstack([stream.select(station=station, component=c)[0].data[:6000] for c in "ZNE"])
        sampling_rate = RATE
        for task in ("detrend", "taper", "bandpass", "resample", "temporal_norm", "whiten"):
            data, sampling_rate = anx.get_task(task).apply(data, sampling_rate)
        assert sampling_rate == rate
        prepared[station] = data
    max_lag = int(30.0 * rate)
    expected = reference_correlation(prepared["A"][0], prepared["B"][1], max_lag)
    ours = result["pre"].sel(station_pair="XX.A:XX.B", channel="Z:N").values
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def numpy_method_reference(source, receiver, max_lag, nfft, method, water_level=0.01):
    """Coherency / deconvolution written out with numpy.fft, for one pair, on an nfft grid."""
    s, r = np.fft.rfft(source, nfft), np.fft.rfft(receiver, nfft)
    if method == "coherency":
        cross = np.conj(s / np.abs(s)) * (r / np.abs(r))
    else:
        power = np.abs(s) ** 2
        cross = np.conj(s) * r / (power + water_level * power.mean())
    circular = np.fft.irfft(cross, nfft)
    return np.concatenate([circular[nfft - max_lag :], circular[: max_lag + 1]])


@pytest.mark.parametrize("method", ["coherency", "deconvolution"])
def test_normalised_methods_match_numpy(method):
    rng = np.random.default_rng(14)
    source, receiver = rng.standard_normal((2, 1500))
    correlator = CrossCorrelate(max_tau_shift=20.0, method=method, **EXACT)
    ours = correlator.correlate(source, receiver, RATE)
    # the spectral normalisation depends on the frequency grid, so use the same FFT length
    expected = numpy_method_reference(source, receiver, 200, correlator.nfft(1500, RATE), method)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_deconvolution_of_a_delayed_copy_is_a_spike_at_the_delay():
    rng = np.random.default_rng(15)
    signal = rng.standard_normal(3000)
    delay = 42  # samples
    source, receiver = signal[500:2500], signal[500 - delay : 2500 - delay]
    corr = CrossCorrelate(max_tau_shift=10.0, method="deconvolution", water_level=1e-3).correlate(source, receiver, RATE)
    lags = CrossCorrelate(max_tau_shift=10.0).lags(RATE)
    peak = np.argmax(np.abs(corr))
    assert lags[peak] == pytest.approx(4.2)
    assert corr[peak] == pytest.approx(1.0, abs=0.1)  # unit impulse (the records overlap by 98%)
    away = np.abs(np.delete(corr, range(peak - 3, peak + 4)))
    assert corr[peak] > 10 * away.max()


def test_coherency_is_bounded_and_insensitive_to_amplitude():
    rng = np.random.default_rng(16)
    source, receiver = rng.standard_normal((2, 2000))
    correlator = CrossCorrelate(max_tau_shift=10.0, method="coherency", **EXACT)
    plain = correlator.correlate(source, receiver, RATE)
    scaled = correlator.correlate(1e6 * source, 1e-3 * receiver, RATE)
    np.testing.assert_allclose(plain, scaled, rtol=1e-9, atol=1e-12)
    assert np.abs(plain).max() <= 1.0


@pytest.mark.parametrize("method", ["coherency", "deconvolution"])
def test_pipeline_uses_the_method_for_every_pair(method):
    stream, t0 = _two_station_stream(700, np.random.default_rng(17))
    anx = _raw_pipeline(stream, method=method, **EXACT)
    result = anx.process([t0])
    correlator = anx.get_task("crosscorrelate")
    for cs, cr in [("Z", "Z"), ("N", "E"), ("E", "Z")]:
        s = stream.select(station="A", component=cs)[0].data[:6000]
        r = stream.select(station="B", component=cr)[0].data[:6000]
        expected = correlator.correlate(s, r, RATE)
        ours = result["raw"].sel(station_pair="XX.A:XX.B", channel=f"{cs}:{cr}").values
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_cross_spectrum_output_is_the_spectrum_of_the_correlation():
    """output='spectrum' returns conj(S) R on the zero-padded grid; its inverse FFT is the correlation."""
    stream, t0 = _two_station_stream(700, np.random.default_rng(18))

    def run(output):
        anx = _raw_pipeline(stream, output=output, **EXACT)
        return anx, anx.process([t0, t0 + 50.0])

    anx, spectra = run("spectrum")
    _, lags = run("lags")
    correlator = anx.get_task("crosscorrelate")
    nfft = correlator.nfft(6000, RATE)
    assert spectra["raw"].dims == ("channel", "station_pair", "frequency")
    assert np.iscomplexobj(spectra["raw"].values)
    np.testing.assert_allclose(spectra["frequency"].values, np.fft.rfftfreq(nfft, 1 / RATE))
    s = stream.select(station="A", component="Z")[0].data
    r = stream.select(station="B", component="N")[0].data
    expected = np.mean([np.conj(np.fft.rfft(s[k : k + 6000], nfft)) * np.fft.rfft(r[k : k + 6000], nfft) for k in (0, 500)], axis=0)
    ours = spectra["raw"].sel(station_pair="XX.A:XX.B", channel="Z:N").values
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())
    back = np.fft.irfft(ours, nfft)
    np.testing.assert_allclose(np.concatenate([back[-300:], back[:301]]), lags["raw"].sel(station_pair="XX.A:XX.B", channel="Z:N").values, rtol=1e-9, atol=1e-9)
    with pytest.raises(ConfigError, match="output='spectrum'"):
        anx.process([t0], stack=False)
    with pytest.raises(ConfigError, match="output"):
        CrossCorrelate(output="both")
