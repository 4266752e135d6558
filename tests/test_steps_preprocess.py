"""Tests of the station-level preprocessing steps against independent numpy/scipy references."""

import numpy as np
import pytest
import scipy.signal
import xarray as xr

from anxcor.errors import AnxcorError, ConfigError
from anxcor.steps import (
    Bandpass,
    FunctionStep,
    RemoveMeanTrend,
    Resample,
    Step,
    Taper,
    TemporalNorm,
    Whiten,
    XArrayProcessor,
    as_step,
)
from anxcor.steps.base import WindowContext


def _noise(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


# ---------------------------------------------------------------------- detrend and taper


def test_remove_mean_trend_linear_is_polyfit_residual():
    rate = 10.0
    t = np.arange(500) / rate
    data = _noise((3, 500)) + np.array([[2.0], [-1.0], [0.0]]) * t + np.array([[5.0], [0.5], [-3.0]])
    out, out_rate = RemoveMeanTrend().apply(data, rate)
    assert out_rate == rate
    for row in range(3):
        coeffs = np.polyfit(t, data[row], 1)
        np.testing.assert_allclose(out[row], data[row] - np.polyval(coeffs, t), atol=1e-10)


def test_remove_mean_trend_constant_only_removes_mean():
    data = _noise((2, 300), seed=1) + 7.0 + np.arange(300) * 0.01
    out, _ = RemoveMeanTrend(detrend="constant").apply(data, 1.0)
    np.testing.assert_allclose(out, data - data.mean(axis=-1, keepdims=True), atol=1e-12)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25, 0.5])
def test_taper_is_tukey_window(fraction):
    n = 1001
    data = _noise((3, n), seed=2)
    out, _ = Taper(max_percentage=fraction).apply(data, 20.0)
    window = scipy.signal.windows.tukey(n, alpha=2 * fraction)
    np.testing.assert_allclose(out, data * window, atol=1e-12)
    # hand checks: ends are zero, the middle untouched, the taper spans fraction * n samples
    assert np.all(out[:, 0] == 0) and np.all(out[:, -1] == 0)
    np.testing.assert_array_equal(out[:, n // 2], data[:, n // 2])
    ramp = int(fraction * (n - 1))
    np.testing.assert_allclose(out[:, ramp + 1 : n - ramp - 1], data[:, ramp + 1 : n - ramp - 1])


# ---------------------------------------------------------------------- bandpass


def test_bandpass_matches_scipy_butter_sosfiltfilt():
    rate = 50.0
    data = _noise((3, 4000), seed=3)
    out, out_rate = Bandpass(freqmin=0.1, freqmax=2.0, order=3).apply(data, rate)
    sos = scipy.signal.butter(3, [0.1, 2.0], btype="bandpass", fs=rate, output="sos")
    assert out_rate == rate
    np.testing.assert_allclose(out, scipy.signal.sosfiltfilt(sos, data, axis=-1), atol=1e-10)


def test_bandpass_causal_matches_sosfilt():
    rate = 50.0
    data = _noise((1, 2000), seed=4)
    out, _ = Bandpass(freqmin=0.5, freqmax=5.0, zerophase=False).apply(data, rate)
    sos = scipy.signal.butter(4, [0.5, 5.0], btype="bandpass", fs=rate, output="sos")
    np.testing.assert_allclose(out, scipy.signal.sosfilt(sos, data, axis=-1), atol=1e-10)


def test_bandpass_near_nyquist_is_highpass():
    rate = 10.0  # freqmax 8 Hz is above the 5 Hz Nyquist frequency
    data = _noise((2, 3000), seed=5)
    out, _ = Bandpass(freqmin=0.05, freqmax=8.0).apply(data, rate)
    sos = scipy.signal.butter(4, 0.05, btype="highpass", fs=rate, output="sos")
    np.testing.assert_allclose(out, scipy.signal.sosfiltfilt(sos, data, axis=-1), atol=1e-10)


def test_bandpass_attenuates_out_of_band_and_passes_in_band():
    rate = 50.0
    t = np.arange(int(200 * rate)) / rate
    step = Bandpass(freqmin=0.1, freqmax=1.0)
    high = np.sin(2 * np.pi * 5.0 * t)[None]
    inside = np.sin(2 * np.pi * 0.3 * t)[None]
    middle = slice(len(t) // 4, 3 * len(t) // 4)
    out_high, _ = step.apply(high, rate)
    out_inside, _ = step.apply(inside, rate)
    attenuation_db = 20 * np.log10(_rms(high[0, middle]) / _rms(out_high[0, middle]))
    assert attenuation_db > 40.0
    np.testing.assert_allclose(_rms(out_inside[0, middle]), _rms(inside[0, middle]), rtol=0.05)


def test_bandpass_freqmin_above_nyquist_is_a_data_error():
    with pytest.raises(AnxcorError, match="Nyquist"):
        Bandpass(freqmin=4.0, freqmax=20.0).apply(_noise((1, 100)), 5.0)


# ---------------------------------------------------------------------- resample


def test_resample_sine_and_anti_alias():
    rate_in, rate_out = 100.0, 20.0
    n = 6000  # 60 s
    t = np.arange(n) / rate_in
    signal = np.sin(2 * np.pi * 2.0 * t + 0.4)
    alias = 0.8 * np.sin(2 * np.pi * 15.0 * t)  # would fold to 5 Hz at 20 Hz
    out, out_rate = Resample(target_rate=rate_out).apply(np.vstack([signal, signal + alias]), rate_in)
    assert out_rate == rate_out
    assert out.shape == (2, 1200)
    t_out = np.arange(1200) / rate_out
    expected = np.sin(2 * np.pi * 2.0 * t_out + 0.4)
    inner = slice(100, -100)
    np.testing.assert_allclose(out[0, inner], expected[inner], atol=1e-3)
    # the 15 Hz component is removed, not folded back to 5 Hz
    np.testing.assert_allclose(out[1, inner], expected[inner], atol=1e-3)
    spectrum = np.abs(np.fft.rfft(out[1] - expected)) / 600
    freqs = np.fft.rfftfreq(1200, 1 / rate_out)
    assert spectrum[np.argmin(np.abs(freqs - 5.0))] < 1e-3


def test_resample_non_integer_length_keeps_target_rate():
    # 6037 samples at 100 Hz is not a whole number of 20 Hz samples: the output must still
    # be sampled at k / 20 s (no stretch of the time axis), away from the edges
    rate_in, rate_out = 100.0, 20.0
    n = 6037
    t = np.arange(n) / rate_in
    data = np.sin(2 * np.pi * 2.0 * t + 1.1)[None]
    out, _ = Resample(target_rate=rate_out).apply(Taper(max_percentage=0.05).apply(data, rate_in)[0], rate_in)
    n_out = round(n * rate_out / rate_in)
    assert out.shape == (1, n_out)
    t_out = np.arange(n_out) / rate_out
    inner = slice(n_out // 5, -n_out // 5)
    np.testing.assert_allclose(out[0, inner], np.sin(2 * np.pi * 2.0 * t_out[inner] + 1.1), atol=0.01)


def test_resample_same_rate_is_identity():
    data = _noise((3, 100), seed=6)
    out, rate = Resample(target_rate=10.0).apply(data, 10.0)
    np.testing.assert_array_equal(out, data)
    assert rate == 10.0
    assert Resample(target_rate=7.0).output_rate(100.0) == 7.0


# ---------------------------------------------------------------------- temporal normalisation


def test_onebit_is_sign():
    data = _noise((3, 500), seed=7)
    data[0, :5] = 0.0
    out, _ = TemporalNorm(method="onebit").apply(data, 10.0)
    np.testing.assert_array_equal(out, np.sign(data))


def test_clip_bounds_at_factor_times_std():
    data = _noise((3, 2000), seed=8) * np.array([[1.0], [10.0], [0.1]])
    data[1, 100] = 500.0  # a spike
    out, _ = TemporalNorm(method="clip", factor=2.0).apply(data, 10.0)
    level = 2.0 * np.std(data, axis=-1)
    for row in range(3):
        assert np.max(np.abs(out[row])) <= level[row] + 1e-12
        np.testing.assert_array_equal(out[row], np.minimum(np.maximum(data[row], -level[row]), level[row]))
    assert out[1, 100] == pytest.approx(level[1])


def test_ram_constant_amplitude_sine_ratio_is_half_pi():
    rate = 50.0
    t = np.arange(int(120 * rate)) / rate
    amplitude = 3.0
    data = amplitude * np.sin(2 * np.pi * 1.0 * t)[None]
    out, _ = TemporalNorm(method="ram", window_s=10.0).apply(data, rate)
    inner = slice(int(15 * rate), int(105 * rate))
    # mean |A sin| over whole periods is 2A/pi, so the normalised peak is pi/2
    assert np.max(np.abs(out[0, inner])) == pytest.approx(np.pi / 2, rel=0.01)
    ratio = out[0, inner] / data[0, inner]
    np.testing.assert_allclose(ratio, np.pi / (2 * amplitude), rtol=0.01)


def test_ram_matches_running_mean_by_convolution():
    rate = 10.0
    data = _noise((2, 400), seed=9)
    out, _ = TemporalNorm(method="ram", window_s=2.0).apply(data, rate)
    width = 21  # 2 s at 10 Hz, odd and centred
    kernel = np.ones(width) / width
    inner = slice(width, -width)
    for row in range(2):
        weight = np.convolve(np.abs(data[row]), kernel, mode="same")
        np.testing.assert_allclose(out[row, inner], data[row, inner] / weight[inner], rtol=1e-10)


def test_temporal_norm_none_is_identity():
    data = _noise((3, 50), seed=10)
    np.testing.assert_array_equal(TemporalNorm(method=None).apply(data, 1.0)[0], data)


# ---------------------------------------------------------------------- whitening


def test_whiten_flat_in_band_zero_beyond():
    rate, n = 20.0, 8000
    red = np.cumsum(_noise((3, n), seed=11), axis=-1)  # red (1/f^2) noise
    red = scipy.signal.detrend(red, axis=-1)
    freqmin, freqmax, taper = 0.1, 2.0, 0.2
    out, out_rate = Whiten(freqmin=freqmin, freqmax=freqmax, taper_fraction=taper).apply(red, rate)
    assert out_rate == rate
    freqs = np.fft.rfftfreq(n, 1 / rate)
    amp_in = np.abs(np.fft.rfft(red, axis=-1))
    amp = np.abs(np.fft.rfft(out, axis=-1))
    band = (freqs >= freqmin) & (freqs <= freqmax)
    # the input is far from flat; the output is flat to 5% inside the band
    assert amp_in[:, band].max() / amp_in[:, band].min() > 100
    level = np.median(amp[:, band])
    assert np.all(np.abs(amp[:, band] / level - 1.0) < 0.05)
    beyond = freqs > freqmax * (1 + taper) + 1e-9
    below = freqs < freqmin * (1 - taper) - 1e-9
    assert np.all(amp[:, beyond] < 1e-3 * level)
    assert np.all(amp[:, below] < 1e-3 * level)
    # the cosine ramp is half-way down in its middle (hand value)
    mid = np.argmin(np.abs(freqs - freqmax * (1 + taper / 2)))
    expected = 0.5 * (1 + np.cos(np.pi * (freqs[mid] - freqmax) / (freqmax * taper)))
    np.testing.assert_allclose(amp[:, mid] / level, expected, rtol=1e-6)


def test_whiten_keeps_phase():
    rate, n = 20.0, 4000
    data = _noise((1, n), seed=12)
    out, _ = Whiten(freqmin=0.5, freqmax=3.0).apply(data, rate)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    band = (freqs >= 0.5) & (freqs <= 3.0)
    phase_in = np.angle(np.fft.rfft(data[0])[band])
    phase_out = np.angle(np.fft.rfft(out[0])[band])
    np.testing.assert_allclose(np.exp(1j * phase_out), np.exp(1j * phase_in), atol=1e-8)


def _numpy_whitening(data, rate, freqmin, freqmax, taper, smoothing_hz=0.0):
    """Plain float64 whitening: weights (ramps worked out here) over the (smoothed) amplitude, inverse FFT."""
    n = data.shape[-1]
    freqs = np.fft.rfftfreq(n, 1 / rate)
    low, high = freqmin * (1 - taper), freqmax * (1 + taper)
    weights = np.where((freqs >= freqmin) & (freqs <= freqmax), 1.0, 0.0)
    lower, upper = (freqs >= low) & (freqs < freqmin), (freqs > freqmax) & (freqs <= high)
    weights[lower] = 0.5 * (1 - np.cos(np.pi * (freqs[lower] - low) / (freqmin - low)))
    weights[upper] = 0.5 * (1 + np.cos(np.pi * (freqs[upper] - freqmax) / (high - freqmax)))
    spectrum = np.fft.rfft(data, axis=-1)
    amplitude = np.abs(spectrum)
    if smoothing_hz:
        width = int(round(smoothing_hz * n / rate))
        kernel = np.ones(width) / width
        padded = np.pad(amplitude, [(0, 0), (width // 2, width - 1 - width // 2)], mode="edge")
        amplitude = np.stack([np.convolve(row, kernel, mode="valid") for row in padded])
    return np.fft.irfft(spectrum * weights / amplitude, n, axis=-1)


@pytest.mark.parametrize("smoothing_hz", [0.0, 0.05])
def test_whiten_matches_plain_numpy_in_double_and_rounds_like_float32_when_that_is_kept(smoothing_hz):
    rate, n = 20.0, 6000
    data = np.cumsum(_noise((3, n), seed=13), axis=-1)
    step = Whiten(freqmin=0.1, freqmax=2.0, taper_fraction=0.2, smoothing_hz=smoothing_hz)
    expected = _numpy_whitening(data, rate, 0.1, 2.0, 0.2, smoothing_hz)
    peak = np.abs(expected).max()
    double, _ = step.apply(data, rate)
    assert double.dtype == np.float64
    np.testing.assert_allclose(double, expected, rtol=0, atol=1e-12 * peak)
    # the last step before a single-precision correlation: its inverse FFT in float32, rounding
    # at float32's level (about 1e-7 of the peak here; float32 resolves 6e-8)
    context = WindowContext("XX.A", 0.0, ("Z", "N", "E"), ("", "", ""), output_dtype=np.float32)
    single, _ = step.apply(data, rate, context)
    assert single.dtype == np.float32
    assert 0 < np.abs(single - expected).max() < 1e-6 * peak


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (RemoveMeanTrend, {"detrend": "quadratic"}, "detrend"),
        (Taper, {"max_percentage": 0.0}, "max_percentage"),
        (Taper, {"max_percentage": 0.6}, "max_percentage"),
        (Taper, {"max_percentage": float("nan")}, "max_percentage"),
        (Taper, {"max_percentage": "0.1"}, "max_percentage"),
        (Bandpass, {"freqmin": -1.0}, "freqmin"),
        (Bandpass, {"freqmin": "0.1"}, "freqmin"),
        (Bandpass, {"freqmax": 0.0}, "freqmax"),
        (Bandpass, {"freqmin": 2.0, "freqmax": 1.0}, "freqmin"),
        (Bandpass, {"order": 0}, "order"),
        (Bandpass, {"order": 4.0}, "order"),
        (Bandpass, {"zerophase": "no"}, "zerophase"),
        (Resample, {"target_rate": 0.0}, "target_rate"),
        (Resample, {"target_rate": None}, "target_rate"),
        (TemporalNorm, {"method": "median"}, "method"),
        (TemporalNorm, {"window_s": -5.0}, "window_s"),
        (TemporalNorm, {"factor": 0.0}, "factor"),
        (Whiten, {"freqmin": 0.0}, "freqmin"),
        (Whiten, {"freqmin": 1.0, "freqmax": 0.5}, "freqmin"),
        (Whiten, {"taper_fraction": 1.0}, "taper_fraction"),
        (Whiten, {"taper_fraction": -0.1}, "taper_fraction"),
        (Whiten, {"taper_fraction": "wide"}, "taper_fraction"),
        (Whiten, {"smoothing_hz": -0.1}, "smoothing_hz"),
        (Whiten, {"smoothing_hz": None}, "smoothing_hz"),
    ],
)
def test_construction_validation(cls, kwargs, name):
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert name in str(info.value)
    assert isinstance(info.value, AnxcorError)


@pytest.mark.parametrize("cls", [RemoveMeanTrend, Taper, Bandpass, Resample, TemporalNorm, Whiten])
def test_steps_are_keyword_only_and_frozen(cls):
    step = cls()
    first = next(iter(step.get_params()))
    with pytest.raises(TypeError):
        cls(step.get_params()[first])
    with pytest.raises(AttributeError):
        setattr(step, first, step.get_params()[first])


STEPS = [
    RemoveMeanTrend(detrend="constant"),
    Taper(max_percentage=0.1),
    Bandpass(freqmin=0.02, freqmax=3.0, order=2, zerophase=False),
    Resample(target_rate=12.5),
    TemporalNorm(method="clip", window_s=5.0, factor=2.5),
    TemporalNorm(method=None),
    Whiten(freqmin=0.2, freqmax=1.5, taper_fraction=0.1, smoothing_hz=0.05),
]


@pytest.mark.parametrize("step", STEPS, ids=repr)
def test_get_params_and_repr_round_trip(step):
    params = step.get_params()
    rebuilt = type(step)(**params)
    assert rebuilt == step
    assert rebuilt.get_params() == params
    namespace = {
        "RemoveMeanTrend": RemoveMeanTrend, "Taper": Taper, "Bandpass": Bandpass, "Resample": Resample,
        "TemporalNorm": TemporalNorm, "Whiten": Whiten,
    }
    assert eval(repr(step), namespace) == step


def test_get_params_values():
    assert Bandpass(freqmin=0.5, freqmax=2.0).get_params() == {"freqmin": 0.5, "freqmax": 2.0, "order": 4, "zerophase": True}
    assert Whiten().get_params() == {"freqmin": 0.05, "freqmax": 1.0, "taper_fraction": 0.2, "smoothing_hz": 0.0}


# ---------------------------------------------------------------------- xarray wrapper and user steps


def _window(values, rate):
    return xr.DataArray(
        values,
        dims=("component", "time"),
        coords={"component": ["Z", "N", "E"], "time": np.arange(values.shape[-1]) / rate},
        attrs={"sampling_rate": rate, "station": "XX.S00"},
    )


@pytest.mark.parametrize("step", [Bandpass(freqmin=0.1, freqmax=2.0), Whiten(freqmin=0.1, freqmax=1.0), Taper()])
def test_step_on_dataarray_matches_apply(step):
    values = _noise((3, 1000), seed=13)
    array = _window(values, 10.0)
    out = step(array)
    expected, _ = step.apply(values, 10.0)
    assert isinstance(out, xr.DataArray)
    assert out.dims == ("component", "time")
    assert list(out["component"].values) == ["Z", "N", "E"]
    assert out.attrs["sampling_rate"] == 10.0
    assert out.attrs["station"] == "XX.S00"
    np.testing.assert_allclose(out.values, expected, atol=1e-12)
    np.testing.assert_array_equal(array.values, values)  # input not modified


def test_resample_on_dataarray_updates_rate_and_time():
    out = Resample(target_rate=5.0)(_window(_noise((3, 1000), seed=14), 20.0))
    assert out.shape == (3, 250)
    assert out.attrs["sampling_rate"] == 5.0
    np.testing.assert_allclose(out["time"].values, np.arange(250) / 5.0)


def test_step_on_dataarray_needs_sampling_rate():
    array = xr.DataArray(_noise((3, 10)), dims=("component", "time"))
    with pytest.raises(ConfigError, match="sampling_rate"):
        Taper()(array)


class Scale(XArrayProcessor):
    def __init__(self, factor=2.0):
        self.factor = factor

    def process(self, array):
        return array * self.factor


class Decimate2(XArrayProcessor):
    def process(self, array):
        out = array.isel(time=slice(None, None, 2))
        out.attrs["sampling_rate"] = array.attrs["sampling_rate"] / 2
        return out


class ReturnsNumpy(XArrayProcessor):
    def process(self, array):
        return array.values


def test_xarray_processor_subclass():
    values = _noise((3, 100), seed=15)
    step = Scale(factor=3.0)
    assert isinstance(step, Step)
    assert step.get_params() == {"factor": 3.0}
    out, rate = step.apply(values, 10.0)
    np.testing.assert_allclose(out, 3.0 * values)
    assert rate == 10.0
    labelled = step(_window(values, 10.0))
    np.testing.assert_allclose(labelled.values, 3.0 * values)
    assert list(labelled["component"].values) == ["Z", "N", "E"]


def test_xarray_processor_can_change_rate():
    values = _noise((3, 100), seed=16)
    out, rate = Decimate2().apply(values, 10.0)
    assert rate == 5.0
    np.testing.assert_array_equal(out, values[:, ::2])
    assert Decimate2()(_window(values, 10.0)).attrs["sampling_rate"] == 5.0


def test_xarray_processor_must_return_dataarray():
    with pytest.raises(ConfigError, match="ndarray"):
        ReturnsNumpy().apply(_noise((3, 10)), 1.0)


def _square(array):
    return array**2


def test_function_as_step():
    values = _noise((3, 100), seed=17)
    step = as_step(_square)
    assert isinstance(step, FunctionStep)
    out, rate = step.apply(values, 4.0)
    np.testing.assert_allclose(out, values**2)
    assert rate == 4.0
    np.testing.assert_allclose(step(_window(values, 4.0)).values, values**2)
    assert "_square" in repr(step)


def test_as_step_passes_steps_through_and_rejects_others():
    step = Taper()
    assert as_step(step) is step
    with pytest.raises(ConfigError, match="int"):
        as_step(3)
