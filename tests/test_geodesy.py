"""anxcor.geodesy.inverse against obspy's one-pair Vincenty (and its antipode fallback)."""

import warnings

import numpy as np
import pytest
from obspy.geodetics import gps2dist_azimuth

from anxcor.geodesy import inverse


def _obspy(lat1, lon1, lat2, lon2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # obspy warns on its antipode fallback
        return np.array([gps2dist_azimuth(*v) for v in zip(lat1, lon1, lat2, lon2, strict=True)]).T


def _angle_error(a, b):
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


def test_matches_obspy_on_local_and_global_pairs():
    rng = np.random.default_rng(7)
    lat1, lon1 = rng.uniform(-85, 85, 2000), rng.uniform(-180, 180, 2000)
    lat2, lon2 = rng.uniform(-85, 85, 2000), rng.uniform(-180, 180, 2000)
    lat2[:1000] = np.clip(lat1[:1000] + rng.normal(0, 0.3, 1000), -89, 89)  # arrays of a few km to 100 km
    lon2[:1000] = lon1[:1000] + rng.normal(0, 0.3, 1000)
    distance, azimuth, backazimuth = inverse(lat1, lon1, lat2, lon2)
    expected = _obspy(lat1, lon1, lat2, lon2)
    assert distance.max() > 1.5e7 and distance[:1000].max() < 3e5  # both kinds are there
    np.testing.assert_allclose(distance, expected[0], rtol=1e-7, atol=1e-6)
    for mine, theirs in ((azimuth, expected[1]), (backazimuth, expected[2])):
        assert _angle_error(mine[:1000], theirs[:1000]).max() < 1e-6  # station arrays
        assert _angle_error(mine, theirs).max() < 1e-4  # nearly antipodal pairs converge slowly: ill-conditioned


def test_special_points():
    lat1, lon1 = np.array([0.0, 10.0, 0.0, 45.0, 0.0]), np.array([0.0, 20.0, 0.0, 7.0, 0.0])
    lat2, lon2 = np.array([0.5, 10.0, 0.0, 46.0, 10.0]), np.array([179.7, 20.0, 90.0, 7.0, 0.0])
    with pytest.warns(UserWarning, match="antipodes"):  # the first pair goes to obspy's fallback
        distance, azimuth, backazimuth = inverse(lat1, lon1, lat2, lon2)
    expected = _obspy(lat1, lon1, lat2, lon2)
    np.testing.assert_allclose(distance, expected[0], rtol=1e-7)  # antipode fallback, coincident, equator, meridians
    assert _angle_error(azimuth, expected[1]).max() < 1e-6 and _angle_error(backazimuth, expected[2]).max() < 1e-6
    assert (distance[1], azimuth[1], backazimuth[1]) == (0.0, 0.0, 0.0)
    assert azimuth[3] == pytest.approx(0.0) and backazimuth[3] == pytest.approx(180.0)  # due north


def test_missing_coordinates_give_nan_and_bad_latitudes_raise():
    distance, azimuth, _ = inverse([np.nan, 1.0], [0.0, 0.0], [1.0, 2.0], [0.0, 0.0])
    assert np.isnan(distance[0]) and np.isnan(azimuth[0]) and distance[1] == pytest.approx(110_575, rel=1e-3)
    with pytest.raises(ValueError, match="lat2"):
        inverse(0.0, 0.0, 91.0, 0.0)
