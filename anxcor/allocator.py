"""Memory-allocator settings for dask workers (glibc on Linux).

``distributed`` starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so freed memory goes
back to the operating system at once. Setting that variable also switches off glibc's
adaptive ``mmap`` threshold, which stays at 128 kB: every array above 128 kB (one window of
one component is 100 kB at 20 Hz for 10 minutes) is then mapped and unmapped on each use and
page-faulted again, and anxcor's tasks ran 2-3x slower in a worker than in a plain process.
:func:`tune_allocator` gives a process the thresholds glibc would have chosen itself for
such arrays; :func:`anxcor.execute.run_dask` applies it on the client's workers before a run.
At most 64 MB of freed memory per worker stays mapped for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["tune_allocator"]

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Arrays up to this size come from the heap (glibc's own upper limit for its adaptive threshold).
MMAP_THRESHOLD_BYTES = 32 * 2**20
#: Free memory at the top of the heap kept for reuse before it is returned to the system.
TRIM_THRESHOLD_BYTES = 64 * 2**20


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds for this process; False where not glibc/Linux.

    Returns
    -------
    bool
        Whether both settings were applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another C library without mallopt
        return False
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    logger.debug("malloc thresholds set: %s", applied)
    return applied
