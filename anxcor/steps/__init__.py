"""Processing steps: preprocessing (station level), correlation, stacking."""

from .base import FunctionStep, Step, WindowContext, XArrayProcessor, as_step
from .correlate import CrossCorrelate
from .orient import OrientHorizontals
from .preprocess import (
    Bandpass,
    Decimate,
    Highpass,
    Lowpass,
    RejectTransients,
    RemoveMeanTrend,
    RemoveResponse,
    Resample,
    Taper,
    TemporalNorm,
    Whiten,
)
from .rotate import XArray9ComponentNormalizer, align_station_pairs, symmetric_lags
from .stack import Stack

__all__ = [
    "Step",
    "XArrayProcessor",
    "FunctionStep",
    "WindowContext",
    "as_step",
    "OrientHorizontals",
    "RemoveMeanTrend",
    "Taper",
    "Bandpass",
    "Resample",
    "TemporalNorm",
    "Whiten",
    "RemoveResponse",
    "Highpass",
    "Lowpass",
    "Decimate",
    "RejectTransients",
    "CrossCorrelate",
    "align_station_pairs",
    "symmetric_lags",
    "XArray9ComponentNormalizer",
    "Stack",
]
