"""Shared fixtures: small seeded synthetic archives, made once per test session."""

from pathlib import Path

import pytest

from anxcor.datasets import synthetic_archive

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test (with the reason) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared/ folder beside the repository; CI has it)")
    return path


@pytest.fixture(scope="session")
def isotropic_archive(tmp_path_factory):
    """8 stations, 2 h, 10 Hz, ZNE, diffuse field from all azimuths at 3 km/s."""
    return synthetic_archive(tmp_path_factory.mktemp("isotropic"), stations=8, hours=2.0, rate=10.0, seed=1)


@pytest.fixture(scope="session")
def directional_archive(tmp_path_factory):
    """8 stations, 2 h, 10 Hz, plane waves travelling towards azimuth 60 +- 20 degrees."""
    return synthetic_archive(
        tmp_path_factory.mktemp("directional"), stations=8, hours=2.0, rate=10.0, seed=2, azimuth=60.0, spread=20.0
    )


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory):
    """4 stations, 1 h, 10 Hz, ZNE: for API and runner tests."""
    return synthetic_archive(tmp_path_factory.mktemp("small"), stations=4, hours=1.0, rate=10.0, seed=3)
