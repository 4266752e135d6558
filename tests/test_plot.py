"""Plots (anxcor.plot) and the ``result.anxcor`` accessor: what is drawn where, and bad input.

Inputs are built by hand in the documented layouts, so these tests do not depend on the
analysis functions (anxcor.analysis), which the accessor tests replace by fakes.
"""

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

import anxcor.analysis
from anxcor.__main__ import _plot_beam, _print_beam, main
from anxcor.errors import ConfigError, DataError
from anxcor.io import xarray_to_obspy
from anxcor.plot import beam_power, dispersion_image, dvv_timeseries, record_section

PAIRS = ["XX.A:XX.A", "XX.A:XX.B", "XX.A:XX.C", "XX.B:XX.C"]
DISTANCES_KM = [0.0, 20.0, 45.0, 60.0]
LAGS = np.round(np.arange(-30.0, 30.01, 0.1), 10)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _pulse(centre_s: float) -> np.ndarray:
    """Zero except a triangle of half-width 1 s around +-centre_s (exact zeros elsewhere)."""
    return np.clip(1.0 - np.abs(np.abs(LAGS) - centre_s), 0.0, None)


def _result(distances=DISTANCES_KM, velocity=3.0) -> xr.Dataset:
    """A stacked result: ZZ and ZN, pulses at +-distance/velocity (ZN half as strong)."""
    zz = np.array([_pulse(d / velocity) for d in distances])
    data = np.stack([zz, 0.5 * zz])
    src = [p.split(":")[0] for p in PAIRS]
    rec = [p.split(":")[1] for p in PAIRS]
    return xr.Dataset(
        {"syn": (("channel", "station_pair", "time"), data)},
        coords={
            "channel": ["Z:Z", "Z:N"],
            "station_pair": PAIRS,
            "time": LAGS,
            "src": ("station_pair", src),
            "rec": ("station_pair", rec),
            "distance": ("station_pair", np.asarray(distances, dtype=float)),
            "n_windows": (("channel", "station_pair"), np.full((2, len(PAIRS)), 3)),
        },
        attrs={"sampling_rate": 10.0},
    )


def _lines(ax) -> dict:
    return {line.get_gid(): line for line in ax.lines if line.get_gid() is not None}


# ---------------------------------------------------------------------------- record section


def test_record_section_draws_each_cross_pair_at_its_distance():
    result = _result()
    ax = record_section(result, channel="Z:Z", velocities=(3.0,))
    lines = _lines(ax)
    assert "XX.A:XX.A" not in lines  # autocorrelations are left out
    for pair, distance in zip(PAIRS[1:], DISTANCES_KM[1:], strict=True):
        line = lines[pair]
        trace = result["syn"].sel(channel="Z:Z", station_pair=pair).values
        np.testing.assert_allclose(line.get_xdata(), LAGS)
        offset = np.asarray(line.get_ydata()) - distance
        assert np.all(offset[trace == 0] == 0)  # the baseline sits at the pair's distance
        scale = offset[np.argmax(trace)] / trace.max()
        assert scale > 0
        np.testing.assert_allclose(offset, scale * trace, atol=1e-12)  # the trace itself, scaled


def test_record_section_guide_lines_follow_t_equals_d_over_v():
    ax = record_section(_result(), velocities=(2.0, 3.0, 5.0))
    lines = _lines(ax)
    for velocity in (2.0, 3.0, 5.0):
        line = lines[f"v={velocity:g}"]
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        np.testing.assert_allclose(np.abs(x), y / velocity)
        assert x.min() < 0 < x.max() and y.min() == 0  # both sides, through the origin
    # the 3 km/s lines go through the peaks of the pulses put at d / 3 km/s
    x, y = lines["v=3"].get_xdata(), lines["v=3"].get_ydata()
    for distance in DISTANCES_KM[1:]:
        assert np.interp(distance, y[1:], x[1:]) == pytest.approx(distance / 3.0)


def test_record_section_guide_labels_do_not_overlap_for_close_velocities():
    velocities = (2.9, 3.0, 3.1, 3.2)
    ax = record_section(_result(), velocities=velocities)
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    texts = ax.get_legend().get_texts()
    assert [t.get_text() for t in texts] == [f"{v:g} km/s" for v in velocities]
    boxes = [t.get_window_extent(renderer) for t in texts]
    for first, second in itertools.combinations(boxes, 2):
        assert not first.overlaps(second)
    # each label's legend handle has the style of its guide line
    handles = ax.get_legend().legend_handles
    for handle, velocity in zip(handles, velocities, strict=True):
        guide = _lines(ax)[f"v={velocity:g}"]
        assert (handle.get_color(), handle.get_linestyle()) == (guide.get_color(), guide.get_linestyle())


def test_record_section_skips_unknown_distances_and_keeps_old_call():
    result = _result(distances=[0.0, 20.0, np.nan, 60.0])
    _, ax = plt.subplots()
    assert record_section(result, "syn", "Z:N", (3.0,), ax) is ax  # the original positional signature
    assert {"XX.A:XX.B", "XX.B:XX.C"} <= set(_lines(ax)) and "XX.A:XX.C" not in _lines(ax)
    # without src/rec coordinates the pair labels ('SRC:REC') tell autocorrelations apart
    drawn = _lines(record_section(_result().drop_vars(["src", "rec"])))
    assert set(PAIRS[1:]) <= set(drawn) and PAIRS[0] not in drawn


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda r: r.drop_vars("distance"), ConfigError, "distance"),
        (lambda r: r.expand_dims(window=[0.0, 600.0]), ConfigError, "window"),
        (lambda r: r.rename(time="frequency"), ConfigError, "'time' dim"),
        (lambda r: r.isel(station_pair=[0]), DataError, "no cross pair"),
        (lambda r: r * np.nan, DataError, "all NaN"),
    ],
    ids=["no-distance", "window-dim", "spectrum", "autocorrelations-only", "all-nan"],
)
def test_record_section_refuses_bad_results(change, error, match):
    with pytest.raises(error, match=match):
        record_section(change(_result()))


def test_record_section_refuses_bad_arguments():
    with pytest.raises(ConfigError, match=r"no channel pair 'E:E'.*\['Z:Z', 'Z:N'\]"):
        record_section(_result(), channel="E:E")
    with pytest.raises(ConfigError, match="no variable 'other'"):
        record_section(_result(), variable="other")
    with pytest.raises(ConfigError, match="> 0 km/s"):
        record_section(_result(), velocities=(3.0, 0.0))


# ---------------------------------------------------------------------------- beam power

SLOWNESS = np.linspace(0.0, 0.6, 25)  # s/km
BACKAZIMUTH = np.arange(0.0, 360.0, 10.0)  # degrees


def _beam(best_s=0.325, best_baz=240.0) -> np.ndarray:
    """Power peaking at one (slowness, backazimuth) grid node."""
    angle = (BACKAZIMUTH[None] - best_baz + 180.0) % 360.0 - 180.0
    return np.exp(-((SLOWNESS[:, None] - best_s) ** 2) / 0.005 - angle**2 / 800.0)


def _beam_array(power=None, **dims) -> xr.DataArray:
    power = _beam() if power is None else power
    return xr.DataArray(power, dims=("slowness", "backazimuth"), coords={"slowness": SLOWNESS, "backazimuth": BACKAZIMUTH})


def test_beam_power_marks_the_maximum_on_north_clockwise_axes():
    beam = _beam_array()
    ax = beam_power(beam)
    assert ax.name == "polar"
    assert ax.get_theta_offset() == pytest.approx(np.pi / 2)  # zero at north
    assert ax.get_theta_direction() == -1  # clockwise
    s, baz = np.unravel_index(np.argmax(beam.values), beam.shape)
    marker = _lines(ax)["maximum"]
    assert marker.get_xdata()[0] == pytest.approx(np.radians(BACKAZIMUTH[baz]))
    assert marker.get_ydata()[0] == pytest.approx(SLOWNESS[s])
    assert (BACKAZIMUTH[baz], SLOWNESS[s]) == pytest.approx((240.0, 0.325))
    mesh = ax.collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(beam.shape), beam.values / beam.values.max())
    assert "backazimuth 240" in ax.get_title()
    # backazimuths given from -180 and unsorted are wrapped to 0-360 and sorted
    shifted = beam.assign_coords(backazimuth=(BACKAZIMUTH + 180.0) % 360.0 - 180.0).isel(backazimuth=slice(None, None, -1))
    marker = _lines(beam_power(shifted))["maximum"]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == pytest.approx((np.radians(240.0), 0.325))


def test_beam_power_frequency_dim_is_averaged_or_selected():
    stronger, weaker = _beam(0.2, 60.0), 0.5 * _beam(0.4, 300.0)
    beam = xr.concat([_beam_array(stronger), _beam_array(weaker)], dim="frequency").assign_coords(frequency=[0.1, 0.3])
    ax = beam_power(beam, frequency=0.29)  # the nearest frequency, 0.3 Hz
    marker = _lines(ax)["maximum"]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == pytest.approx((np.radians(300.0), 0.4))
    ax = beam_power(beam.transpose("backazimuth", "frequency", "slowness"))  # average; any dim order
    marker = _lines(ax)["maximum"]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == pytest.approx((np.radians(60.0), 0.2))


def test_beam_power_refuses_bad_input():
    beam = _beam_array()
    with pytest.raises(ConfigError, match=r"missing \('backazimuth',\)"):
        beam_power(beam.rename(backazimuth="azimuth"))
    with pytest.raises(ConfigError, match="coordinate values for dim 'slowness'"):
        beam_power(beam.drop_vars("slowness"))
    with pytest.raises(ConfigError, match="extra dims"):
        beam_power(beam.expand_dims(channel=["Z:Z", "N:N"]))
    with pytest.raises(ConfigError, match="no 'frequency' dim"):
        beam_power(beam, frequency=0.2)
    with pytest.raises(ConfigError, match="polar"):
        beam_power(beam, ax=plt.subplots()[1])
    with pytest.raises(DataError, match="NaN"):
        beam_power(beam * np.nan)


# ---------------------------------------------------------------------------- dispersion image

PERIODS = np.linspace(1.0, 10.0, 19)  # s
VELOCITIES = np.linspace(0.5, 4.0, 36)  # km/s


def _image() -> xr.DataArray:
    curve = 1.0 + 0.2 * PERIODS
    values = np.exp(-((VELOCITIES[None] - curve[:, None]) ** 2) / 0.1)
    return xr.DataArray(values, dims=("period", "velocity"), coords={"period": PERIODS, "velocity": VELOCITIES})


def _picks() -> xr.Dataset:
    velocity = 1.0 + 0.2 * PERIODS
    velocity[3] = np.nan  # no pick at this period
    quality = PERIODS < 6.0
    return xr.Dataset(
        {"group_velocity": ("period", velocity), "amplitude": ("period", np.ones(PERIODS.size)), "quality": ("period", quality)},
        coords={"period": PERIODS},
    )


def test_dispersion_image_draws_picks_filled_or_hollow_by_quality():
    picks = _picks()
    ax = dispersion_image(_image(), picks)
    lines = _lines(ax)
    good, poor = lines["picks_good"], lines["picks_poor"]
    velocity, quality = picks["group_velocity"].values, picks["quality"].values
    found = np.isfinite(velocity)
    np.testing.assert_allclose(good.get_xdata(), PERIODS[found & quality])
    np.testing.assert_allclose(good.get_ydata(), velocity[found & quality])
    np.testing.assert_allclose(poor.get_xdata(), PERIODS[found & ~quality])
    np.testing.assert_allclose(poor.get_ydata(), velocity[found & ~quality])
    assert good.get_markerfacecolor() not in ("none", "None")  # filled
    assert poor.get_markerfacecolor() == "none"  # hollow
    mesh = ax.collections[0]
    image = np.asarray(mesh.get_array()).reshape(VELOCITIES.size, PERIODS.size)
    np.testing.assert_allclose(image.max(axis=0), 1.0)  # normalised per period
    np.testing.assert_allclose(image, (_image() / _image().max("velocity")).T.values)


def test_dispersion_image_without_picks_and_with_scalar_labels():
    image = _image().assign_coords(station_pair="XX.A:XX.B", channel="Z:Z", distance=20.0)
    ax = dispersion_image(image, log_period=True, normalize=False)
    assert "picks_good" not in _lines(ax)
    assert ax.get_xscale() == "log"
    assert ax.get_title() == "FTAN XX.A:XX.B Z:Z 20.00 km"


def test_dispersion_image_refuses_bad_input():
    with pytest.raises(ConfigError, match=r"missing \('velocity',\)"):
        dispersion_image(_image().isel(velocity=0))
    with pytest.raises(ConfigError, match="coordinate values for dim 'period'"):
        dispersion_image(_image().drop_vars("period"))
    with pytest.raises(ConfigError, match=r"missing \['quality'\]"):
        dispersion_image(_image(), _picks().drop_vars("quality"))
    with pytest.raises(ConfigError, match="Dataset"):
        dispersion_image(_image(), _picks()["group_velocity"])
    with pytest.raises(DataError, match="NaN"):
        dispersion_image(_image() * np.nan)


# ---------------------------------------------------------------------------- dv/v

WINDOWS = 1.2e9 + 86400.0 * np.arange(6)  # UTC seconds: substack starts, one a day


def _dvv(units=None) -> xr.Dataset:
    rng = np.random.default_rng(0)
    shape = (WINDOWS.size, 3, 1)
    changes = xr.Dataset(
        {
            "dvv": (("window", "station_pair", "channel"), rng.normal(0.0, 1e-3, shape)),
            "error": (("window", "station_pair", "channel"), rng.uniform(1e-4, 5e-4, shape)),
            "dvv_network": ("window", np.linspace(0.0, 2e-3, WINDOWS.size)),
            "error_network": ("window", np.linspace(1e-4, 3e-4, WINDOWS.size)),
        },
        coords={"window": WINDOWS, "station_pair": PAIRS[1:], "channel": ["Z:Z"]},
    )
    if units is not None:
        for name in changes.data_vars:
            changes[name].attrs["units"] = units
    return changes


def _errorbars(ax) -> dict:
    """label -> (x, y, half-length of each error bar) of the errorbar containers."""
    found = {}
    for container in ax.containers:
        line, _, (bars,) = container.lines
        segments = np.array([np.asarray(segment) for segment in bars.get_segments()])
        found[container.get_label()] = (
            np.asarray(line.get_xdata()),
            np.asarray(line.get_ydata(), dtype=float),
            (segments[:, 1, 1] - segments[:, 0, 1]) / 2,
        )
    return found


def test_dvv_timeseries_error_bars_in_percent():
    changes = _dvv()
    ax = dvv_timeseries(changes, pair="XX.A:XX.C")
    bars = _errorbars(ax)
    assert set(bars) == {"network", "XX.A:XX.C"}
    x, y, half = bars["network"]
    np.testing.assert_allclose(y, 100 * changes["dvv_network"].values)
    np.testing.assert_allclose(half, 100 * changes["error_network"].values)
    # the substack starts (UTC seconds) are drawn as dates
    expected_days = mdates.date2num((WINDOWS * 1e6).astype("datetime64[us]"))
    np.testing.assert_allclose(mdates.date2num(x), expected_days)
    _, y, half = bars["XX.A:XX.C"]
    np.testing.assert_allclose(y, 100 * changes["dvv"].sel(station_pair="XX.A:XX.C", channel="Z:Z").values)
    np.testing.assert_allclose(half, 100 * changes["error"].sel(station_pair="XX.A:XX.C", channel="Z:Z").values)
    assert ax.get_ylabel() == "dv/v (%)"


def test_dvv_timeseries_keeps_values_already_in_percent():
    changes = _dvv(units="%")
    _, y, half = _errorbars(dvv_timeseries(changes))["network"]
    np.testing.assert_allclose(y, changes["dvv_network"].values)
    np.testing.assert_allclose(half, changes["error_network"].values)


def test_dvv_timeseries_refuses_bad_input():
    changes = _dvv()
    with pytest.raises(ConfigError, match=r"missing \['error_network'\]"):
        dvv_timeseries(changes.drop_vars("error_network"))
    with pytest.raises(ConfigError, match=r"no station pair 'XX.C:XX.D'"):
        dvv_timeseries(changes, pair="XX.C:XX.D")
    two_channels = xr.concat([changes[["dvv", "error"]]] * 2, dim="channel").assign_coords(channel=["Z:Z", "N:N"])
    with pytest.raises(ConfigError, match="channel="):
        dvv_timeseries(changes.drop_vars(["dvv", "error", "channel"]).merge(two_channels), pair="XX.A:XX.B")
    with pytest.raises(ConfigError, match="coordinate values for the time dim"):
        dvv_timeseries(changes.drop_vars("window"))
    with pytest.raises(DataError, match="negative errors"):
        dvv_timeseries(changes.assign(error_network=-changes["error_network"]))
    with pytest.raises(ConfigError, match="nothing to draw"):
        dvv_timeseries(changes, network=False)


# ---------------------------------------------------------------------------- accessor


def _drawn(ax) -> list:
    """What an Axes holds, comparable between two figures."""
    lines = [(line.get_gid(), np.asarray(line.get_xdata(), dtype=float).tolist(), np.asarray(line.get_ydata(), dtype=float).tolist())
             for line in ax.lines]
    meshes = [np.asarray(c.get_array()).tolist() for c in ax.collections]
    return [lines, meshes, ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]


def test_accessor_plots_match_the_functions():
    result = _result()
    assert _drawn(result.anxcor.plot_record_section(velocities=(2.0, 3.0))) == _drawn(record_section(result, velocities=(2.0, 3.0)))
    changes = _dvv()
    assert _drawn(changes.anxcor.plot_dvv(pair="XX.A:XX.B")) == _drawn(dvv_timeseries(changes, pair="XX.A:XX.B"))
    stream, expected = result.anxcor.to_obspy(skip_empty=True), xarray_to_obspy(result, skip_empty=True)
    assert [tr.id for tr in stream] == [tr.id for tr in expected]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(stream, expected, strict=True))


def test_accessor_delegates_beamforming(monkeypatch):
    calls = []

    def fake_beamform(result, freqmin, freqmax, **kwargs):
        calls.append((result, freqmin, freqmax, kwargs))
        return _beam_array()

    monkeypatch.setattr(anxcor.analysis, "beamform", fake_beamform)
    result = _result()
    beam = result.anxcor.beamform(freqmin=0.1, freqmax=0.5, method="bartlett")
    xr.testing.assert_identical(beam, _beam_array())
    assert calls[0][0] is result and calls[0][1:] == (0.1, 0.5, {"method": "bartlett"})
    ax = result.anxcor.plot_beam(0.1, 0.5, channel="Z:Z")
    assert calls[1][1:] == (0.1, 0.5, {"channel": "Z:Z"})
    assert _drawn(ax) == _drawn(beam_power(_beam_array()))


def test_accessor_delegates_ftan_with_the_pair_trace_and_distance(monkeypatch):
    calls = []

    def fake_ftan(trace, distance_km, **kwargs):
        calls.append((trace, distance_km, kwargs))
        return _image()

    monkeypatch.setattr(anxcor.analysis, "ftan", fake_ftan)
    monkeypatch.setattr(anxcor.analysis, "pick_dispersion", lambda image: _picks())
    result = _result()
    image = result.anxcor.ftan("XX.A:XX.C", periods=PERIODS, velocities=VELOCITIES)
    xr.testing.assert_identical(image, _image())
    trace, distance_km, kwargs = calls[0]
    xr.testing.assert_identical(trace, result["syn"].sel(station_pair="XX.A:XX.C", channel="Z:Z"))
    assert distance_km == 45.0 and set(kwargs) == {"periods", "velocities"}
    result.anxcor.ftan("XX.A:XX.C", "Z:N", distance_km=44.0)
    assert calls[1][1] == 44.0 and calls[1][0]["channel"] == "Z:N"
    ax = result.anxcor.plot_dispersion("XX.A:XX.C")
    assert _drawn(ax) == _drawn(dispersion_image(_image(), _picks()))
    with pytest.raises(ConfigError, match="reverse the pair"):
        result.anxcor.ftan("XX.C:XX.A")
    with pytest.raises(ConfigError, match="distance_km"):
        result.drop_vars("distance").anxcor.ftan("XX.A:XX.C")


def test_accessor_delegates_dvv(monkeypatch):
    monkeypatch.setattr(anxcor.analysis, "dvv", lambda substacks, **kwargs: (substacks, kwargs))
    substacks = _result().expand_dims(window=WINDOWS[:2])
    got, kwargs = substacks.anxcor.dvv(reference="mean", method="stretching")
    assert got is substacks and kwargs == {"reference": "mean", "method": "stretching"}


# ---------------------------------------------------------------------------- demo


def test_demo_saves_a_record_section_and_a_beam(tmp_path, capsys):
    plot = tmp_path / "section.png"
    status = main(["demo", "--stations", "4", "--hours", "0.5", "--rate", "10", "--archive", str(tmp_path / "archive"),
                   "--plot", str(plot)])
    assert status == 0
    beam = tmp_path / "anxcor_demo_beam.png"  # beside --plot
    for path in (plot, beam):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert f"record section saved to {plot.resolve()}" in out
    assert f"beam power saved to {beam.resolve()}" in out
    assert "ZZ beam power, 0.1-0.5 Hz (bartlett, 4 stations): maximum at backazimuth" in out


def test_demo_prints_the_beam_maximum_and_the_ring(monkeypatch, capsys):
    monkeypatch.setattr(anxcor.analysis, "beamform", lambda result, freqmin, freqmax, **kw: _demo_beam(freqmin, freqmax))
    beam = _print_beam(_result(), velocity=3.0)
    out = capsys.readouterr().out
    s, baz = np.unravel_index(np.argmax(beam.values), beam.shape)
    assert (BACKAZIMUTH[baz], SLOWNESS[s]) == pytest.approx((240.0, 0.325))
    assert "maximum at backazimuth 240 deg, slowness 0.325 s/km (3.08 km/s)" in out
    # every backazimuth's strongest slowness is 0.325 s/km, within 10 % of 1/3
    assert "within 10% of 1/3 km/s = 0.333 s/km at 100% of backazimuths (median 0.325 s/km)" in out


def _demo_beam(freqmin, freqmax) -> xr.DataArray:
    attrs = {"freqmin": freqmin, "freqmax": freqmax, "method": "bartlett", "n_stations": 4}
    return _beam_array().assign_attrs(attrs)


def test_demo_beam_plot_saves_the_beam(tmp_path):
    path = tmp_path / "anxcor_demo_beam.png"
    _plot_beam(_beam_array(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
