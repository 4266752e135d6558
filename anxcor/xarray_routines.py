"""The step names of the original ANXCOR, kept importable.

Each name is the anxcor step of the same meaning; they take the keyword parameters of the
new steps (see :mod:`anxcor.steps`).
"""

from .steps import (
    Bandpass as XArrayBandpass,
    CrossCorrelate as XArrayXCorrelate,
    RemoveMeanTrend as XArrayRemoveMeanTrend,
    Resample as XArrayResample,
    Taper as XArrayTaper,
    TemporalNorm as XArrayTemporalNorm,
    Whiten as XArrayWhiten,
    XArrayProcessor,
)

__all__ = [
    "XArrayProcessor",
    "XArrayBandpass",
    "XArrayWhiten",
    "XArrayTemporalNorm",
    "XArrayXCorrelate",
    "XArrayResample",
    "XArrayTaper",
    "XArrayRemoveMeanTrend",
]
