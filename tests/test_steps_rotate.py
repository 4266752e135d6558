"""ZNE -> ZRT rotation, symmetric lags and the 9-component normaliser (anxcor.steps.rotate)."""

import json

import numpy as np
import pytest
import xarray as xr
from conftest import correlate_archive
from obspy.signal.rotate import rotate_ne_rt
from scipy.signal import hilbert

import anxcor.core
import anxcor.database
import anxcor.datasets
from anxcor.errors import ConfigError, DataError
from anxcor.steps.rotate import (
    ZNE_CHANNELS,
    ZRT_CHANNELS,
    XArray9ComponentNormalizer,
    align_station_pairs,
    normalize_common,
    rotate_tensor,
    rotation_matrix_3,
    rotation_matrix_9,
    symmetric_lags,
    symmetric_part,
)

AZIMUTHS = [(0.0, 180.0), (30.0, 212.0), (135.0, 318.5), (250.0, 69.0), (359.0, 178.0)]


def hand_station_matrix(direction_deg):
    """Z, R, T from Z, N, E written out entry by entry: R = cos N + sin E, T = -sin N + cos E."""
    c, s = np.cos(np.radians(direction_deg)), np.sin(np.radians(direction_deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def zne_dataset(rng, azimuths, *, windows=None, time_size=21):
    """A small hand-made result: random correlations, given (azimuth, backazimuth) per pair."""
    pairs = [f"XX.A{k}:XX.B{k}" for k in range(len(azimuths))]
    shape = (9, len(pairs), time_size)
    dims = ("channel", "station_pair", "time")
    coords = {
        "channel": list(ZNE_CHANNELS),
        "station_pair": pairs,
        "time": np.linspace(-1.0, 1.0, time_size),
        "azimuth": ("station_pair", [a for a, _ in azimuths]),
        "backazimuth": ("station_pair", [b for _, b in azimuths]),
        "distance": ("station_pair", np.arange(len(pairs)) + 1.0),
        "src": ("station_pair", [p.split(":")[0] for p in pairs]),
        "rec": ("station_pair", [p.split(":")[1] for p in pairs]),
    }
    count_shape, count_dims = (9, len(pairs)), ("channel", "station_pair")
    if windows is not None:
        shape, dims = (windows, *shape), ("window", *dims)
        count_shape, count_dims = (windows, *count_shape), ("window", *count_dims)
        coords["window"] = np.arange(windows) * 600.0
    coords["n_windows"] = (count_dims, np.full(count_shape, 5, dtype=np.int64))
    data = {"a": (dims, rng.standard_normal(shape)), "b": (dims, rng.standard_normal(shape))}
    return xr.Dataset(data, coords=coords, attrs={"history": json.dumps([{"task": "stack"}]), "note": "kept"})


# ------------------------------------------------------------------------ rotation kernels
@pytest.mark.parametrize(("az", "baz"), AZIMUTHS)
def test_rotation_matrix_is_orthogonal_and_the_kronecker_of_hand_built_matrices(az, baz):
    matrix = rotation_matrix_9(az, baz)
    assert matrix.shape == (9, 9)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(9), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(matrix), 1.0, atol=1e-12)
    expected = np.kron(hand_station_matrix(az), hand_station_matrix(baz + 180.0))
    np.testing.assert_allclose(matrix, expected, atol=1e-12)
    np.testing.assert_allclose(rotation_matrix_3(az), hand_station_matrix(az), atol=1e-12)


@pytest.mark.parametrize(("az", "baz"), AZIMUTHS)
def test_station_rotations_agree_with_obspy_rotate_ne_rt(az, baz):
    # obspy's R points away from the event at the station with backazimuth ba: for the
    # receiver ba = backazimuth; for the source the "event" lies behind it, ba = azimuth + 180
    rng = np.random.default_rng(0)
    z, n, e = rng.standard_normal((3, 50))
    for direction, ba in ((az, az + 180.0), (baz + 180.0, baz % 360.0)):
        r, t = rotate_ne_rt(n, e, ba % 360.0)
        zrt = rotation_matrix_3(direction) @ np.stack([z, n, e])
        np.testing.assert_allclose(zrt, np.stack([z, r, t]), atol=1e-12)


@pytest.mark.parametrize(("az", "baz"), AZIMUTHS)
def test_rr_and_tt_match_the_closed_form_of_lin_et_al_2008(az, baz):
    rng = np.random.default_rng(1)
    tensor = rng.standard_normal((7, 9))  # (time, channel)
    ch = {label: tensor[:, k] for k, label in enumerate(ZNE_CHANNELS)}
    th, ps = np.radians(az), np.radians(baz)
    rr = (-np.cos(th) * np.cos(ps) * ch["N:N"] - np.cos(th) * np.sin(ps) * ch["N:E"]
          - np.sin(th) * np.cos(ps) * ch["E:N"] - np.sin(th) * np.sin(ps) * ch["E:E"])
    tt = (-np.sin(th) * np.sin(ps) * ch["N:N"] + np.sin(th) * np.cos(ps) * ch["N:E"]
          + np.cos(th) * np.sin(ps) * ch["E:N"] - np.cos(th) * np.cos(ps) * ch["E:E"])
    rotated = rotate_tensor(tensor, rotation_matrix_9(az, baz))
    np.testing.assert_allclose(rotated[:, ZRT_CHANNELS.index("R:R")], rr, atol=1e-12)
    np.testing.assert_allclose(rotated[:, ZRT_CHANNELS.index("T:T")], tt, atol=1e-12)
    np.testing.assert_allclose(rotated[:, 0], ch["Z:Z"], atol=0)


def test_round_trip_with_the_inverse_rotation_is_the_identity():
    rng = np.random.default_rng(2)
    az = rng.uniform(0, 360, 8)
    baz = rng.uniform(0, 360, 8)
    tensors = rng.standard_normal((4, 8, 9))  # (time, pairs, channel)
    forward = rotation_matrix_9(az, baz)
    assert forward.shape == (8, 9, 9)
    rotated = rotate_tensor(tensors, forward)
    assert not np.allclose(rotated, tensors)
    np.testing.assert_allclose(rotate_tensor(rotated, rotation_matrix_9(-az, -baz)), tensors, atol=1e-12)
    np.testing.assert_allclose(rotate_tensor(rotated, np.swapaxes(forward, -1, -2)), tensors, atol=1e-12)


@pytest.mark.parametrize(("az", "baz"), AZIMUTHS)
def test_radial_only_motion_rotates_into_rr_only_and_transverse_into_tt_only(az, baz):
    wavelet = np.sin(np.linspace(0, 6, 40)) * np.hanning(40)
    src_r, rec_r = hand_station_matrix(az)[1], hand_station_matrix(baz + 180.0)[1]
    src_t, rec_t = hand_station_matrix(az)[2], hand_station_matrix(baz + 180.0)[2]
    for src, rec, label in ((src_r, rec_r, "R:R"), (src_t, rec_t, "T:T")):
        # ZNE tensor of a motion along src at the source and rec at the receiver
        tensor = np.einsum("i,j,t->tij", src, rec, wavelet).reshape(40, 9)
        rotated = rotate_tensor(tensor, rotation_matrix_9(az, baz))
        expected = np.zeros((40, 9))
        expected[:, ZRT_CHANNELS.index(label)] = wavelet
        np.testing.assert_allclose(rotated, expected, atol=1e-12)


def test_a_nan_input_channel_makes_only_the_channels_it_feeds_nan():
    tensor = np.ones((3, 9))
    tensor[:, ZNE_CHANNELS.index("E:Z")] = np.nan
    rotated = rotate_tensor(tensor, rotation_matrix_9(40.0, 222.0))
    nan_channels = {ZRT_CHANNELS[k] for k in np.flatnonzero(np.isnan(rotated[0]))}
    assert nan_channels == {"R:Z", "T:Z"}


# ------------------------------------------------------------------------ xarray wrapper
@pytest.mark.parametrize("windows", [None, 3])
def test_align_station_pairs_rotates_every_variable_and_keeps_labels(windows):
    rng = np.random.default_rng(3)
    ds = zne_dataset(rng, AZIMUTHS[1:4], windows=windows)
    ds = ds.isel(channel=rng.permutation(9))  # any channel order is accepted
    out = align_station_pairs(ds)
    assert list(out["channel"].values) == list(ZRT_CHANNELS)
    assert out["a"].dims == ds["a"].dims and out["b"].dims == ds["b"].dims
    for name in ("distance", "src", "rec", "azimuth", "backazimuth", "time"):
        np.testing.assert_array_equal(out[name].values, ds[name].values)
    assert out.attrs["note"] == "kept" and "along the path pointing away from the source" in out.attrs["rotation"]
    assert json.loads(out.attrs["history"])[-1]["task"] == "align_station_pairs"
    for name in ("a", "b"):
        for k, pair in enumerate(ds["station_pair"].values):
            zne = ds[name].sel(station_pair=pair, channel=list(ZNE_CHANNELS))
            zne = zne.transpose(..., "time", "channel").values
            expected = rotate_tensor(zne, rotation_matrix_9(*AZIMUTHS[1:4][k]))
            got = out[name].sel(station_pair=pair).transpose(..., "time", "channel").values
            np.testing.assert_allclose(got, expected, atol=1e-12)


def test_n_windows_of_a_rotated_channel_is_the_minimum_over_its_feeders():
    ds = zne_dataset(np.random.default_rng(4), AZIMUTHS[:2], windows=2)
    counts = ds["n_windows"].values.copy()
    counts[1, ZNE_CHANNELS.index("N:E"), 0] = 2
    counts[0, ZNE_CHANNELS.index("Z:E"), 1] = 0
    ds = ds.assign_coords(n_windows=(ds["n_windows"].dims, counts))
    out = align_station_pairs(ds)["n_windows"]
    assert out.dims == ("window", "channel", "station_pair")
    w1p0 = out.isel(window=1, station_pair=0).to_series().to_dict()
    assert w1p0 == {"Z:Z": 5, "Z:R": 5, "Z:T": 5, "R:Z": 5, "R:R": 2, "R:T": 2, "T:Z": 5, "T:R": 2, "T:T": 2}
    w0p1 = out.isel(window=0, station_pair=1).to_series().to_dict()
    assert w0p1 == {"Z:Z": 5, "Z:R": 0, "Z:T": 0, "R:Z": 5, "R:R": 5, "R:T": 5, "T:Z": 5, "T:R": 5, "T:T": 5}


def test_several_datasets_counts_are_all_rotated():
    ds = zne_dataset(np.random.default_rng(5), AZIMUTHS[:2])
    counts = ds["n_windows"].values.copy()
    counts[ZNE_CHANNELS.index("E:E"), 1] = 1
    ds = ds.rename({"n_windows": "n_windows_a"}).assign_coords(n_windows_b=(("channel", "station_pair"), counts))
    out = align_station_pairs(ds)
    assert int(out["n_windows_a"].sel(channel="T:T", station_pair=ds.station_pair[1]).item()) == 5
    assert int(out["n_windows_b"].sel(channel="T:T", station_pair=ds.station_pair[1]).item()) == 1
    assert int(out["n_windows_b"].sel(channel="Z:Z", station_pair=ds.station_pair[1]).item()) == 5


def test_autocorrelation_rotation_is_a_relabelling():
    ds = zne_dataset(np.random.default_rng(6), [(0.0, 180.0)])
    out = align_station_pairs(ds)
    for zrt, zne in zip(ZRT_CHANNELS, ZNE_CHANNELS, strict=True):
        np.testing.assert_allclose(out["a"].sel(channel=zrt).values, ds["a"].sel(channel=zne).values, atol=1e-12)


def test_pairs_without_azimuth_keep_only_zz(caplog):
    ds = zne_dataset(np.random.default_rng(7), [(10.0, 190.0), (np.nan, np.nan)])
    out = align_station_pairs(ds)
    unknown = out["a"].isel(station_pair=1)
    np.testing.assert_array_equal(unknown.sel(channel="Z:Z").values, ds["a"].isel(station_pair=1).sel(channel="Z:Z"))
    assert np.isnan(unknown.drop_sel(channel="Z:Z")).all()
    assert np.isfinite(out["a"].isel(station_pair=0)).all()
    assert out["n_windows"].isel(station_pair=1).values.tolist() == [5] + [0] * 8
    assert (out["n_windows"].isel(station_pair=0) == 5).all()
    assert "without azimuth" in caplog.text


def test_align_station_pairs_errors():
    ds = zne_dataset(np.random.default_rng(8), AZIMUTHS[:2])
    with pytest.raises(DataError, match="station coordinates are needed"):
        align_station_pairs(ds.drop_vars(["azimuth", "backazimuth"]))
    with pytest.raises(ConfigError, match="already rotated"):
        align_station_pairs(align_station_pairs(ds))
    with pytest.raises(DataError, match=r"missing \['E:N'\]"):
        align_station_pairs(ds.drop_sel(channel="E:N"))
    with pytest.raises(ConfigError, match=r"xarray\.Dataset"):
        align_station_pairs(ds["a"])


# ---------------------------------------------------------------------- physics (synthetic)
@pytest.fixture(scope="module")
def synthetic_result(tmp_path_factory):
    archive = anxcor.datasets.synthetic_archive(tmp_path_factory.mktemp("rotate"), stations=6, hours=2.0, rate=10.0, seed=4)
    return archive, correlate_archive(archive)  # the archive is at 10 Hz


def test_synthetic_radial_field_puts_energy_on_rr_not_tt(synthetic_result):
    # The archive's horizontal motion is along the propagation direction (radial). Near
    # +/- d/v the correlation is made by waves travelling along the path (stationary phase),
    # which move the station only along R, so T:T holds only the incoherent part of the
    # off-path waves: its mean-square energy there is far below R:R's. Measured for seed 4:
    # energy ratios 18-54 (median 27) over the 12 pairs with d/v > 3 s; pairs closer than
    # that are left out (their +/-3 s windows overlap the zero-lag peak of every channel).
    archive, result = synthetic_result
    rotated = align_station_pairs(result)
    lags = rotated["time"].values
    ratios = []
    for pair in rotated["station_pair"].values:
        sub = rotated.sel(station_pair=pair)
        travel = float(sub["distance"]) / archive.velocity
        if travel <= 3.0:
            continue
        near = np.abs(np.abs(lags) - travel) <= 3.0
        energy = {c: float(np.mean(sub["syn"].sel(channel=c).values[near] ** 2)) for c in ("R:R", "T:T")}
        ratios.append(energy["R:R"] / energy["T:T"])
    assert len(ratios) == 12
    assert np.median(ratios) > 12.0, ratios
    assert min(ratios) > 8.0, ratios


def test_synthetic_rr_peaks_at_the_travel_time_like_zz(synthetic_result):
    # envelope peaks (the 2-D pi/4 phase lead moves the highest sample, not the envelope)
    archive, result = synthetic_result
    rotated = align_station_pairs(result)
    lags = rotated["time"].values
    checked = 0
    for pair in rotated["station_pair"].values:
        sub = rotated.sel(station_pair=pair)
        travel = float(sub["distance"]) / archive.velocity
        if travel <= 3.0:
            continue
        for channel in ("Z:Z", "R:R"):
            envelope = np.abs(hilbert(sub["syn"].sel(channel=channel).values))
            assert abs(abs(lags[np.argmax(envelope)]) - travel) < 1.0, (pair, channel, travel)
        checked += 1
    assert checked == 12


def test_synthetic_autocorrelations_rotate_to_relabelled_zne(synthetic_result):
    _, result = synthetic_result
    rotated = align_station_pairs(result)
    autos = [p for p in result["station_pair"].values if p.split(":")[0] == p.split(":")[1]]
    assert len(autos) == 6
    for zrt, zne in zip(ZRT_CHANNELS, ZNE_CHANNELS, strict=True):
        np.testing.assert_allclose(
            rotated["syn"].sel(channel=zrt, station_pair=autos).values,
            result["syn"].sel(channel=zne, station_pair=autos).values,
            atol=1e-12,
        )
    np.testing.assert_array_equal(rotated["n_windows"].values, result["n_windows"].values)  # all windows present


# ---------------------------------------------------------------------------- symmetric lags
def test_symmetric_part_kernel():
    data = np.arange(10.0).reshape(2, 5)
    np.testing.assert_allclose(symmetric_part(data), [[2.0, 2.0, 2.0], [7.0, 7.0, 7.0]])
    np.testing.assert_allclose(symmetric_part(data.T, axis=0), [[2.0, 7.0]] * 3)
    with pytest.raises(DataError, match="odd number"):
        symmetric_part(np.ones(4))


@pytest.mark.parametrize("windows", [None, 2])
def test_symmetric_lags_equals_the_hand_average(windows):
    ds = zne_dataset(np.random.default_rng(9), AZIMUTHS[:2], windows=windows)
    out = symmetric_lags(ds)
    assert out["time"].values.min() == 0.0
    np.testing.assert_allclose(out["time"].values, ds["time"].values[ds["time"].values >= -1e-12])
    assert out["a"].dims == ds["a"].dims
    for lag in out["time"].values:
        hand = 0.5 * (ds["a"].sel(time=lag, method="nearest") + ds["a"].sel(time=-lag, method="nearest"))
        np.testing.assert_allclose(out["a"].sel(time=lag).values, hand.values, atol=1e-12)
    np.testing.assert_array_equal(out["n_windows"].values, ds["n_windows"].values)
    assert "symmetric" in out.attrs["lags"]


def test_symmetric_lags_errors():
    ds = zne_dataset(np.random.default_rng(10), AZIMUTHS[:1])
    with pytest.raises(ConfigError, match="already folded"):
        symmetric_lags(symmetric_lags(ds))
    with pytest.raises(DataError, match="symmetric about 0"):
        symmetric_lags(ds.isel(time=slice(1, None)))
    with pytest.raises(DataError, match="'time'"):
        symmetric_lags(ds.isel(time=0, drop=True))


# ------------------------------------------------------------------------------ normaliser
def test_normalize_common_kernel_ignores_nan_and_zero():
    data = np.array([[[1.0, np.nan], [-4.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]])
    out = normalize_common(data)
    np.testing.assert_allclose(out[0], [[0.25, np.nan], [-1.0, 0.5]])
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_allclose(normalize_common(data, reference=0)[0], [[1.0, np.nan], [-4.0, 2.0]])


@pytest.mark.parametrize("reference", [None, "Z:Z", "R:T"])
def test_normalizer_uses_one_factor_per_pair_and_keeps_channel_ratios(reference):
    ds = align_station_pairs(zne_dataset(np.random.default_rng(11), AZIMUTHS[:3], windows=2))
    scale = xr.DataArray([1.0, 1e3, 1e-3], dims="station_pair")
    ds["a"] = ds["a"] * scale
    out = XArray9ComponentNormalizer(reference=reference)(ds)
    ratio = out["a"] / ds["a"]  # one factor per window and pair: constant over channel and time
    spread = ratio.max(["channel", "time"]) - ratio.min(["channel", "time"])
    assert float(abs(spread / ratio.mean(["channel", "time"])).max()) < 1e-12
    peak = abs(out["a"]) if reference is None else abs(out["a"].sel(channel=reference))
    np.testing.assert_allclose(peak.max(["channel", "time"] if reference is None else ["time"]).values, 1.0)
    np.testing.assert_allclose(
        (out["a"].sel(channel="R:R") / out["a"].sel(channel="T:T")).values,
        (ds["a"].sel(channel="R:R") / ds["a"].sel(channel="T:T")).values,
        rtol=1e-12,
    )
    assert "normalization" in out.attrs and out["n_windows"].equals(ds["n_windows"])


def test_normalizer_is_a_validated_frozen_step():
    step = XArray9ComponentNormalizer(reference="Z:Z")
    assert step.get_params() == {"reference": "Z:Z"}
    assert eval(repr(step)) == step  # repr round-trips
    with pytest.raises(ConfigError, match="reference"):
        XArray9ComponentNormalizer(reference="Z-Z")
    with pytest.raises(TypeError):
        XArray9ComponentNormalizer("Z:Z")  # keyword-only
    with pytest.raises(DataError, match="not a channel"):
        XArray9ComponentNormalizer(reference="R:R")(zne_dataset(np.random.default_rng(12), AZIMUTHS[:1]))
