"""The anxcor exception hierarchy.

Every error anxcor raises on purpose is an :class:`AnxcorError`, so a notebook can catch
them all at once, or one kind at a time.
"""

__all__ = ["AnxcorError", "ConfigError", "DataError", "DatabaseError"]


class AnxcorError(Exception):
    """Base class of every error anxcor raises on purpose."""


class ConfigError(AnxcorError, ValueError):
    """An option, step parameter or argument of the public API is invalid."""


class DataError(AnxcorError):
    """Waveform data cannot be used as asked (no data, wrong rate, gaps...)."""


class DatabaseError(AnxcorError, TypeError):
    """A database object does not follow the :class:`~anxcor.core.AnxcorDatabase` contract."""
