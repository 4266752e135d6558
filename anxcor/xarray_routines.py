"""The step names of the original ANXCOR, kept importable.

Each name is the anxcor step of the same meaning; they take the keyword parameters of the
new steps (see :mod:`anxcor.steps`).
"""

from .steps import (
    Bandpass as XArrayBandpass,
)
from .steps import (
    CrossCorrelate as XArrayXCorrelate,
)
from .steps import (
    RemoveMeanTrend as XArrayRemoveMeanTrend,
)
from .steps import (
    Resample as XArrayResample,
)
from .steps import (
    Taper as XArrayTaper,
)
from .steps import (
    TemporalNorm as XArrayTemporalNorm,
)
from .steps import (
    Whiten as XArrayWhiten,
)
from .steps import (
    XArray9ComponentNormalizer,
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
    "XArray9ComponentNormalizer",
]
