"""Analysis of anxcor results: beamforming, FTAN dispersion, dv/v monitoring.

Every function works directly on what :meth:`anxcor.core.Anxcor.process` returns (or on a
single correlation as a ``DataArray`` or obspy ``Trace``) and returns labelled xarray objects.
"""

from .beamform import beamform
from .dvv import dvv, mwcs, stretching
from .ftan import ftan, pick_dispersion

__all__ = ["beamform", "dvv", "ftan", "mwcs", "pick_dispersion", "stretching"]
