"""anxcor: ambient-noise cross-correlation into labelled xarray results.

The entry point is :class:`anxcor.core.Anxcor`; waveform sources subclass
:class:`anxcor.core.AnxcorDatabase`.
"""

import logging

__version__ = "0.2.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from . import accessor  # noqa: E402, F401  (registers the ``result.anxcor`` Dataset accessor)
from .errors import AnxcorError, ConfigError, DatabaseError, DataError  # noqa: E402

__all__ = ["__version__", "AnxcorError", "ConfigError", "DataError", "DatabaseError"]
