"""Tests of the stacking step and its kernels: numpy references, synthetic pulses in noise."""

import dataclasses
import json
import warnings

import numpy as np
import pytest
import scipy.signal

from anxcor.core import Anxcor
from anxcor.errors import ConfigError
from anxcor.steps import Stack
from anxcor.steps.base import step_description
from anxcor.steps.stack import (
    linear_stack,
    nth_root_stack,
    phase_weighted_stack,
    robust_stack,
    selective_stack,
    tf_phase_weighted_stack,
    window_counts,
)

# the kernels promise not to warn about empty slices or divisions by zero
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

METHODS = ("linear", "pws", "tfpws", "robust", "nth_root", "selective")
RATE = 10.0  # Hz
N_LAGS = 1001  # lags -50 ... +50 s
LAGS = (np.arange(N_LAGS) - N_LAGS // 2) / RATE
PULSE_LAG = 20.0  # s
ON_PULSE = np.abs(LAGS - PULSE_LAG) <= 4.0


def _ricker(lags, centre_s, peak_hz):
    arg = (np.pi * peak_hz * (lags - centre_s)) ** 2
    return (1.0 - 2.0 * arg) * np.exp(-arg)


PULSE = _ricker(LAGS, PULSE_LAG, 0.5)  # peak 1 at +20 s


def _band_noise(rng, n_windows, sigma, band_hz=(0.2, 1.5)):
    """Independent noise per window, band-limited around the pulse, standard deviation sigma."""
    sos = scipy.signal.butter(4, band_hz, "bandpass", fs=RATE, output="sos")
    noise = scipy.signal.sosfiltfilt(sos, rng.standard_normal((n_windows, N_LAGS)), axis=-1)
    return noise * (sigma / noise.std())


def _pulse_windows(seed, n_windows=50, sigma=1.0, polarity=1.0):
    rng = np.random.default_rng(seed)
    return polarity * PULSE + _band_noise(rng, n_windows, sigma)


def _off_pulse_ratio(stack):
    """RMS away from the pulse relative to the pulse's peak amplitude (smaller is cleaner)."""
    return float(np.sqrt(np.mean(stack[~ON_PULSE] ** 2)) / np.max(np.abs(stack[ON_PULSE])))


def _relative_error(estimate, reference):
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))


def _random_windows(shape, seed, missing_fraction=0.2):
    """Random windows with whole windows missing (NaN along the lags) at random."""
    rng = np.random.default_rng(seed)
    windows = rng.standard_normal(shape) + np.sin(np.linspace(0, 8, shape[-1]))
    windows[rng.random(shape[:-1]) < missing_fraction] = np.nan
    return windows


# ------------------------------------------------------------------------------ linear


def test_linear_is_nanmean_over_windows():
    windows = _random_windows((12, 3, 5, 64), seed=0, missing_fraction=0.3)
    windows[:, 1, 2] = np.nan  # one trace without any window
    stack, used = Stack().combine(windows, RATE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean warns on the empty trace
        expected = np.nanmean(windows, axis=0)
    np.testing.assert_allclose(stack, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(used, np.sum(~np.isnan(windows[..., 0]), axis=0))
    assert np.isnan(stack[1, 2]).all() and used[1, 2] == 0
    assert used.dtype.kind == "i" and used.shape == (3, 5)


def test_window_axis_can_be_anywhere_but_last():
    windows = _random_windows((7, 4, 50), seed=1)
    moved = np.moveaxis(windows, 0, 1)  # (4, 7, 50)
    for kernel in (linear_stack, phase_weighted_stack, robust_stack, nth_root_stack):
        np.testing.assert_allclose(kernel(moved, axis=1), kernel(windows), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        tf_phase_weighted_stack(moved, RATE, axis=1), tf_phase_weighted_stack(windows, RATE), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_array_equal(window_counts(moved, axis=1), window_counts(windows))
    with pytest.raises(ConfigError, match="axis"):
        linear_stack(windows, axis=-1)
    with pytest.raises(ConfigError, match="axis"):
        linear_stack(windows, axis=2)


# ------------------------------------------------------------------------------ phase-weighted stacks


def test_pws_matches_the_direct_formula():
    n_lags = 1000  # a fast FFT length, so the kernel's zero-padding is none
    rng = np.random.default_rng(2)
    windows = rng.standard_normal((9, n_lags))
    phasors = np.zeros(n_lags, dtype=complex)
    for window in windows:
        analytic = scipy.signal.hilbert(window)
        phasors += analytic / np.abs(analytic)
    expected = windows.mean(axis=0) * np.abs(phasors / len(windows)) ** 1.5
    np.testing.assert_allclose(phase_weighted_stack(windows, power=1.5), expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("method", ["pws", "tfpws"])
def test_phase_weighting_with_power_zero_is_linear(method):
    windows = _random_windows((10, 2, 300), seed=3)
    stack, used = Stack(method=method, power=0.0).combine(windows, RATE)
    reference, reference_used = Stack().combine(windows, RATE)
    np.testing.assert_allclose(stack, reference, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(used, reference_used)


@pytest.mark.parametrize("method", ["pws", "tfpws", "robust", "nth_root", "selective"])
def test_identical_windows_stack_to_themselves(method):
    windows = np.repeat(PULSE[None], 6, axis=0)
    stack, used = Stack(method=method).combine(windows, RATE)
    np.testing.assert_allclose(stack, PULSE, rtol=1e-7, atol=1e-9)
    assert used == 6


@pytest.mark.parametrize(
    "step",
    [Stack(method="pws"), Stack(method="tfpws"), Stack(method="nth_root", nth=2), Stack(method="nth_root", nth=3)],
    ids=["pws", "tfpws", "nth_root_2", "nth_root_3"],
)
def test_nonlinear_stacks_suppress_incoherent_noise(step):
    # 50 windows: a Ricker pulse (peak 1 at +20 s) plus band-limited noise of standard deviation 1
    windows = _pulse_windows(seed=4)
    linear, _ = Stack().combine(windows, RATE)
    stack, used = step.combine(windows, RATE)
    assert used == 50
    improvement = _off_pulse_ratio(linear) / _off_pulse_ratio(stack)
    assert improvement >= 2.0, f"{step}: off-pulse RMS / peak only {improvement:.2f}x smaller than linear"
    # and the arrival stays where it is, with its polarity
    peak = np.argmax(np.abs(np.where(ON_PULSE, stack, 0.0)))
    assert abs(LAGS[peak] - PULSE_LAG) <= 0.2 and stack[peak] > 0


def test_tfpws_keeps_a_coherent_band_that_pws_loses():
    # a 0.3 Hz pulse in every window, plus strong incoherent noise at 1.5-3 Hz at all lags: the
    # noise scrambles the broadband instantaneous phase (PWS suppresses the pulse too), while
    # the time-frequency coherence sees the pulse's band on its own
    rng = np.random.default_rng(5)
    pulse = _ricker(LAGS, PULSE_LAG, 0.3)
    windows = pulse + _band_noise(rng, 50, 2.0, band_hz=(1.5, 3.0))
    pws, _ = Stack(method="pws").combine(windows, RATE)
    tfpws, _ = Stack(method="tfpws").combine(windows, RATE)
    linear, _ = Stack().combine(windows, RATE)
    assert np.max(np.abs(pws[ON_PULSE])) < 0.5
    assert np.max(np.abs(tfpws[ON_PULSE])) == pytest.approx(1.0, abs=0.1)
    tf_error = np.sqrt(np.mean((tfpws - pulse)[ON_PULSE] ** 2))
    linear_error = np.sqrt(np.mean((linear - pulse)[ON_PULSE] ** 2))
    assert tf_error < 0.2 * linear_error


def test_tfpws_segment_length_is_clamped_to_short_traces():
    windows = _random_windows((5, 3, 40), seed=6, missing_fraction=0.0)
    # a 1000 s segment on 4 s traces: one segment the length of the trace, still invertible
    stack, used = Stack(method="tfpws", tf_window_s=1000.0, power=0.0).combine(windows, RATE)
    np.testing.assert_allclose(stack, windows.mean(axis=0), rtol=1e-9, atol=1e-12)
    assert (used == 5).all()
    short = _random_windows((5, 3), seed=7, missing_fraction=0.0)  # 3 lags: falls back to PWS
    np.testing.assert_allclose(tf_phase_weighted_stack(short, RATE), phase_weighted_stack(short))


# ------------------------------------------------------------------------------ nth root


def test_nth_root_by_hand_and_nth_one_is_linear():
    windows = np.array([[-8.0, 1.0, 0.0], [-1.0, 27.0, 0.0]])
    # cube roots: [-2, 1, 0], [-1, 3, 0]; mean [-1.5, 2, 0]; cubed [-3.375, 8, 0]
    np.testing.assert_allclose(nth_root_stack(windows, nth=3), [-3.375, 8.0, 0.0])
    rand = _random_windows((8, 2, 100), seed=8)
    np.testing.assert_allclose(nth_root_stack(rand, nth=1), linear_stack(rand), rtol=1e-12)


def test_nth_root_keeps_polarity():
    windows = _pulse_windows(seed=9, polarity=-1.0)
    stack, _ = Stack(method="nth_root", nth=4).combine(windows, RATE)
    peak = np.argmax(np.abs(np.where(ON_PULSE, stack, 0.0)))
    assert abs(LAGS[peak] - PULSE_LAG) <= 0.2
    assert stack[peak] < 0
    # and flipping every window flips the stack exactly
    np.testing.assert_allclose(Stack(method="nth_root", nth=4).combine(-windows, RATE)[0], -stack)


# ------------------------------------------------------------------------------ robust


def _with_outliers(seed):
    rng = np.random.default_rng(seed)
    clean = PULSE + _band_noise(rng, 20, 0.5)
    outliers = _band_noise(rng, 3, 100.0)  # 200 times the clean windows' noise
    return clean, outliers


def test_robust_rejects_huge_amplitude_windows():
    clean, outliers = _with_outliers(seed=10)
    windows = np.concatenate([clean, outliers])
    clean_stack = clean.mean(axis=0)
    linear, _ = Stack().combine(windows, RATE)
    robust, used = Stack(method="robust").combine(windows, RATE)
    assert used == 23
    linear_error = _relative_error(linear, clean_stack)
    robust_error = _relative_error(robust, clean_stack)
    assert linear_error > 10.0  # the outliers swamp the mean
    assert robust_error < 0.1, f"robust stack is {robust_error:.3f} (relative) away from the clean stack"
    assert robust_error < 0.01 * linear_error


def test_robust_rejects_a_glitch_shared_by_several_windows():
    clean, _ = _with_outliers(seed=11)
    glitch = np.zeros((3, N_LAGS))
    glitch[:, [100, 400, 800]] = 1000.0  # the same spikes in three windows
    robust = robust_stack(np.concatenate([clean, glitch]))
    assert _relative_error(robust, clean.mean(axis=0)) < 0.1


def test_robust_is_close_to_linear_on_similar_windows_and_scales_linearly():
    windows = _pulse_windows(seed=12)
    robust = robust_stack(windows)
    linear = linear_stack(windows)
    # similar noise in every window: nearly the linear stack, and no worse an estimate of the pulse
    assert _relative_error(robust, linear) < 0.1
    assert _relative_error(robust, PULSE) < 1.05 * _relative_error(linear, PULSE)
    np.testing.assert_allclose(robust_stack(7.5 * windows), 7.5 * robust, rtol=1e-9, atol=1e-12)


def test_robust_iteration_parameters_are_used():
    clean, outliers = _with_outliers(seed=13)
    windows = np.concatenate([clean, outliers])
    one = robust_stack(windows, max_iterations=1)
    converged = robust_stack(windows, epsilon=1e-12, max_iterations=200)
    loose = robust_stack(windows, epsilon=10.0, max_iterations=200)  # stops after the first update
    np.testing.assert_array_equal(loose, one)
    assert not np.allclose(one, converged)
    again = robust_stack(windows, epsilon=1e-12, max_iterations=201)
    np.testing.assert_allclose(again, converged, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------ selective


def test_selective_drops_pure_noise_windows():
    rng = np.random.default_rng(14)
    clean = PULSE + _band_noise(rng, 20, 0.1)
    noise = _band_noise(rng, 10, 0.2)
    windows = np.concatenate([clean, noise])
    stack, used = Stack(method="selective", threshold=0.35).combine(windows, RATE)
    assert used == 20
    np.testing.assert_allclose(stack, clean.mean(axis=0), rtol=1e-12, atol=1e-14)  # exactly the clean ones
    linear, linear_used = Stack().combine(windows, RATE)
    assert linear_used == 30
    assert _relative_error(stack, PULSE) < 0.75 * _relative_error(linear, PULSE)


def test_selective_by_hand_and_threshold_extremes():
    windows = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.5, -1.0, 0.5], [np.nan] * 3])
    stack, kept = selective_stack(windows, threshold=0.5)
    np.testing.assert_allclose(stack, [0.0, 1.5, 0.0])
    assert kept == 2
    rand = _random_windows((10, 3, 80), seed=15)
    everything, kept_all = selective_stack(rand, threshold=-1.0)
    np.testing.assert_allclose(everything, linear_stack(rand), rtol=1e-12)
    np.testing.assert_array_equal(kept_all, window_counts(rand))
    # nothing resembles the reference perfectly: no window kept, NaN, count 0
    nothing, kept_none = Stack(method="selective", threshold=1.0).combine(rand, RATE)
    assert np.isnan(nothing).all() and (kept_none == 0).all()


# ------------------------------------------------------------------------------ missing windows, shapes


@pytest.mark.parametrize("method", METHODS)
def test_missing_windows_are_ignored(method):
    rng = np.random.default_rng(16)
    present = _pulse_windows(seed=16, n_windows=12, sigma=0.5)
    windows = np.full((20, N_LAGS), np.nan)
    slots = np.sort(rng.choice(20, size=12, replace=False))
    windows[slots] = present
    step = Stack(method=method)
    stack, used = step.combine(windows, RATE)
    reference, reference_used = step.combine(present, RATE)
    np.testing.assert_allclose(stack, reference, rtol=1e-10, atol=1e-12)
    assert used == reference_used
    if method != "selective":
        assert used == 12


@pytest.mark.parametrize("method", METHODS)
def test_partly_missing_window_counts_as_missing(method):
    windows = _pulse_windows(seed=17, n_windows=8, sigma=0.3)
    holed = windows.copy()
    holed[3, 100:110] = np.nan
    step = Stack(method=method)
    np.testing.assert_allclose(
        step.combine(holed, RATE)[0], step.combine(np.delete(windows, 3, axis=0), RATE)[0], rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_windows", [0, 5])
def test_all_missing_gives_nan_and_zero_count(method, n_windows):
    stack, used = Stack(method=method).combine(np.full((n_windows, 2, 3, 50), np.nan), RATE)
    assert stack.shape == (2, 3, 50) and np.isnan(stack).all()
    assert used.shape == (2, 3) and (used == 0).all()


@pytest.mark.parametrize("method", METHODS)
def test_middle_dims_are_stacked_independently(method):
    windows = _random_windows((10, 4, 9, 120), seed=18)
    windows[:, 2, 5] = np.nan  # a pair and channel pair without data
    step = Stack(method=method, threshold=0.1, tf_window_s=3.0)
    stack, used = step.combine(windows, RATE)
    assert stack.shape == (4, 9, 120) and used.shape == (4, 9)
    assert used.dtype.kind == "i"
    for pair in range(4):
        for channel in range(9):
            one, one_used = step.combine(windows[:, pair, channel], RATE)
            np.testing.assert_allclose(stack[pair, channel], one, rtol=1e-9, atol=1e-12)
            assert used[pair, channel] == one_used
    assert used[2, 5] == 0 and np.isnan(stack[2, 5]).all()


# ------------------------------------------------------------------------------ the step object


def test_default_is_linear_and_only_linear_is_linear():
    assert Stack() == Stack(method="linear")
    assert Stack().is_linear
    for method in METHODS[1:]:
        assert not Stack(method=method).is_linear


@pytest.mark.parametrize(
    "step",
    [
        Stack(),
        Stack(method="pws", power=3.0),
        Stack(method="tfpws", power=1, tf_window_s=25.0),
        Stack(method="robust", epsilon=1e-3, max_iterations=5),
        Stack(method="nth_root", nth=4),
        Stack(method="selective", threshold=-0.25),
    ],
)
def test_get_params_and_repr_round_trip(step):
    params = step.get_params()
    assert set(params) == {field.name for field in dataclasses.fields(Stack)}
    assert Stack(**params) == step
    assert eval(repr(step), {"Stack": Stack}) == step
    description = step_description(step)
    assert json.loads(json.dumps(description))["params"] == params
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.method = "linear"


def test_set_task_kwargs_builds_a_stack():
    anx = Anxcor(900.0)
    anx.set_task_kwargs("stack", dict(method="robust", max_iterations=7))
    step = anx.get_task("stack")
    assert step == Stack(method="robust", max_iterations=7)
    with pytest.raises(ConfigError, match="nth"):
        anx.set_task_kwargs("stack", dict(method="nth_root", nth=0))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(method="median"), "method"),
        (dict(method=None), "method"),
        (dict(power=-1.0), "power"),
        (dict(power=np.inf), "power"),
        (dict(power="2"), "power"),
        (dict(tf_window_s=0.0), "tf_window_s"),
        (dict(tf_window_s=np.nan), "tf_window_s"),
        (dict(epsilon=0.0), "epsilon"),
        (dict(max_iterations=0), "max_iterations"),
        (dict(max_iterations=2.0), "max_iterations"),
        (dict(nth=0), "nth"),
        (dict(nth=2.5), "nth"),
        (dict(nth=True), "nth"),
        (dict(threshold=1.5), "threshold"),
        (dict(threshold=-1.01), "threshold"),
        (dict(threshold=np.nan), "threshold"),
    ],
)
def test_invalid_parameters_raise_config_error_naming_them(kwargs, name):
    with pytest.raises(ConfigError, match=name) as info:
        Stack(**kwargs)
    assert "got" in str(info.value)


def test_invalid_combine_arguments():
    step = Stack(method="pws")
    with pytest.raises(ConfigError, match="sampling_rate"):
        step.combine(np.ones((3, 10)), 0.0)
    with pytest.raises(ConfigError, match="n_windows"):
        step.combine(np.ones(10), RATE)
    with pytest.raises(TypeError):
        Stack("pws")  # keyword-only
