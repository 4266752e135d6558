"""Shared fixtures: small seeded synthetic archives, made once per test session."""

from pathlib import Path

import pytest

from anxcor.core import Anxcor
from anxcor.database import WaveBankDatabase
from anxcor.datasets import synthetic_archive

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test (with the reason) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared/ folder beside the repository; CI has it)")
    return path


def correlate_archive(archive, *, target_rate=None, max_tau_shift=60.0, stack=True):
    """All windows of a synthetic archive, 600 s without overlap, whitened 0.1-0.5 Hz, as dataset 'syn'.

    Default preprocessing otherwise, resampled to ``target_rate`` (the archive's rate when None).
    """
    anx = Anxcor(window_length=600.0)
    anx.set_task_kwargs("resample", dict(target_rate=archive.rate if target_rate is None else target_rate))
    anx.set_task_kwargs("whiten", dict(freqmin=0.1, freqmax=0.5))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=max_tau_shift))
    anx.add_dataset(WaveBankDatabase(archive.waveform_dir, coordinates=archive.stations), "syn")
    return anx.process(anx.get_starttimes(archive.starttime, archive.endtime, 0.0), stack=stack)


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
