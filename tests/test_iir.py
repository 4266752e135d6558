"""anxcor.steps.iir: second-order-section filtering of rows in place, against scipy.signal.sosfilt.

The compiled loop (numba, installed by the ``test`` and ``fast`` extras) may fuse
multiply-adds, so it agrees with scipy to rounding (1e-12 of the signal); scipy's own loop,
used without numba, gives scipy's numbers exactly.
"""

import numpy as np
import pytest
import scipy.signal

from anxcor.steps import iir

FILTERS = {
    "order-1 lowpass (1 section)": scipy.signal.butter(1, 3.0, "lowpass", fs=20.0, output="sos"),
    "order-2 highpass (1 section)": scipy.signal.butter(2, 0.05, "highpass", fs=20.0, output="sos"),
    "order-4 bandpass (4 sections)": scipy.signal.butter(4, (0.01, 8.0), "bandpass", fs=20.0, output="sos"),
    "order-3 bandpass (3 sections)": scipy.signal.butter(3, (0.1, 2.0), "bandpass", fs=20.0, output="sos"),
    "order-6 bandpass (6 sections)": scipy.signal.butter(6, (0.1, 2.0), "bandpass", fs=20.0, output="sos"),
}


def _case(sos, n_rows, seed):
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n_rows, 3000)).cumsum(axis=-1)
    states = rng.standard_normal((n_rows, len(sos), 2))
    expected, final = scipy.signal.sosfilt(sos, rows, axis=-1, zi=states.transpose(1, 0, 2))
    return rows, states, expected, final.transpose(1, 0, 2)


@pytest.mark.parametrize("name", FILTERS)
@pytest.mark.parametrize("n_rows", [1, 2, 3, 4, 7])
def test_compiled_loop_agrees_with_scipy_to_rounding(name, n_rows):
    pytest.importorskip("numba", reason="the compiled loop needs numba (pip install anxcor[fast])")
    sos = FILTERS[name]
    rows, states, expected, final = _case(sos, n_rows, seed=n_rows)
    iir.sosfilt_rows(sos, rows, states, compiled=True)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(states, final, rtol=0, atol=1e-11 * np.abs(final).max())


@pytest.mark.parametrize("name", FILTERS)
def test_scipy_loop_gives_scipys_numbers(name):
    sos = FILTERS[name]
    rows, states, expected, final = _case(sos, 3, seed=11)
    iir.sosfilt_rows(sos, rows, states, compiled=False)
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_array_equal(states, final)


@pytest.mark.parametrize("compiled", [False, None])
def test_sections_not_normalised_are_refused_as_scipy_refuses_them(compiled):
    sos = FILTERS["order-2 highpass (1 section)"] * 2.0  # a0 = 2
    rows, states, _, _ = _case(FILTERS["order-2 highpass (1 section)"], 3, seed=12)
    with pytest.raises(ValueError, match="sos"):
        scipy.signal.sosfilt(sos, rows, axis=-1, zi=states.transpose(1, 0, 2))
    with pytest.raises(ValueError, match=r"sos\[:, 3\] == 1"):
        iir.sosfilt_rows(sos, rows, states, compiled=compiled)


def test_compiled_loop_without_numba_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(iir, "COMPILED", False)
    rows, states, _, _ = _case(FILTERS["order-1 lowpass (1 section)"], 1, seed=13)
    with pytest.raises(RuntimeError, match="numba"):
        iir.sosfilt_rows(FILTERS["order-1 lowpass (1 section)"], rows, states, compiled=True)


def test_numba_that_does_not_import_falls_back_to_scipy_once_warned(monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "numba" or name.endswith("_iir_compiled"):
            raise ImportError("Numba needs NumPy 2.3 or less")  # what an older numba says
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(iir, "COMPILED", True)
    monkeypatch.setattr(builtins, "__import__", broken)
    iir._compiled_cascade.cache_clear()
    try:
        sos = FILTERS["order-4 bandpass (4 sections)"]
        rows, states, expected, _ = _case(sos, 3, seed=14)
        with caplog.at_level("WARNING", logger="anxcor.steps.iir"):
            iir.sosfilt_rows(sos, rows, states)
        np.testing.assert_array_equal(rows, expected)  # scipy's loop: scipy's numbers exactly
        assert "does not import" in caplog.text
        with pytest.raises(RuntimeError, match="numba"):
            iir.sosfilt_rows(sos, rows, states, compiled=True)
    finally:
        monkeypatch.undo()
        iir._compiled_cascade.cache_clear()


@pytest.mark.parametrize("compiled", [False, None])
@pytest.mark.parametrize("bad", ["float32 rows", "strided rows", "float32 states"])
def test_arrays_that_cannot_be_filtered_in_place_are_refused_by_either_loop(compiled, bad):
    sos = FILTERS["order-4 bandpass (4 sections)"]
    rows, states, _, _ = _case(sos, 3, seed=15)
    if bad == "float32 rows":
        rows = rows.astype(np.float32)
    elif bad == "strided rows":
        rows = rows[:, ::2]
    else:
        states = states.astype(np.float32)
    with pytest.raises(ValueError, match="C-contiguous float64"):
        iir.sosfilt_rows(sos, rows, states, compiled=compiled)
