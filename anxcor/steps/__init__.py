"""Processing steps: preprocessing (station level), correlation, stacking."""

from .base import FunctionStep, Step, WindowContext, XArrayProcessor, as_step
from .correlate import CrossCorrelate
from .preprocess import Bandpass, RemoveMeanTrend, Resample, Taper, TemporalNorm, Whiten
from .stack import Stack

__all__ = [
    "Step",
    "XArrayProcessor",
    "FunctionStep",
    "WindowContext",
    "as_step",
    "RemoveMeanTrend",
    "Taper",
    "Bandpass",
    "Resample",
    "TemporalNorm",
    "Whiten",
    "CrossCorrelate",
    "Stack",
]
