"""Memory-allocator settings (glibc on Linux) and the allocation of large results.

``distributed`` starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so freed memory goes
back to the operating system at once. Setting that variable also switches off glibc's
adaptive ``mmap`` threshold, which stays at 128 kB: every array above 128 kB (one window of
one component is 100 kB at 20 Hz for 10 minutes) is then mapped and unmapped on each use and
page-faulted again, and anxcor's tasks ran 2-3x slower in a worker than in a plain process.
:func:`tune_allocator` gives a process the thresholds glibc would have chosen itself for
such arrays; :func:`anxcor.execute.run_dask` applies it on the client's workers (through
:class:`anxcor.workers.AllocatorPlugin`, registered once per client, so workers that join later
get it too).
At most 64 MB of freed memory per worker stays mapped for reuse. The client process gets the
same settings (it receives the finished blocks, 10-30 MB each: without them each one is
mapped and page-faulted afresh).

:func:`empty_result` allocates a run's result (1.2 GB for 128 stations) without numpy's
transparent-huge-page advice. Measured on the 2-core virtual machine of the benchmarks:
first touching a fresh 1.2 GB array with the advice took 0.13 to 2.4 s in repeated runs (the
kernel reported no compaction stalls: the huge pages themselves were slow to come), against a
steady 0.45 to 0.54 s without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import mmap
import os
import sys
import weakref
from pathlib import Path

import numpy as np

from .io import _sibling

__all__ = ["tune_allocator", "empty_result", "spill_array"]

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Arrays up to this size come from the heap (glibc's own upper limit for its adaptive threshold).
MMAP_THRESHOLD_BYTES = 32 * 2**20
#: Free memory at the top of the heap kept for reuse before it is returned to the system.
TRIM_THRESHOLD_BYTES = 64 * 2**20
#: Arrays from this size on are mapped by :func:`empty_result` (numpy advises huge pages from 4 MB).
MAPPED_RESULT_BYTES = 4 * 2**20


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


def empty_result(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array for a large result, mapped without huge-page advice.

    Parameters
    ----------
    shape, dtype
        As for :func:`numpy.empty`.

    Returns
    -------
    numpy.ndarray
        C-contiguous and writable. From :data:`MAPPED_RESULT_BYTES` on, its memory is an
        anonymous ``mmap`` (released when the array and its views are gone); smaller arrays
        come from :func:`numpy.empty`.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MAPPED_RESULT_BYTES:
        return np.empty(shape, dtype=dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)


def spill_array(beside: str | os.PathLike, shape: tuple[int, ...], dtype) -> np.memmap:
    """An array backed by a temporary file next to ``beside``, for results larger than memory.

    Parameters
    ----------
    beside
        A path in the folder that holds the temporary file (the result's store, say).
    shape, dtype
        As for :func:`numpy.empty` (the contents start as zeros).

    Returns
    -------
    numpy.memmap
        Writable. Pages the run has written go to the file under the operating system's
        control, so the process does not need the whole array in memory. The file is hidden
        (``.<name>.spill-<pid>-<random>``) and unlinked at once where the system allows it
        (the mapping keeps the data until the array is gone, and nothing is left behind even
        after a crash); elsewhere it is deleted when the array is garbage-collected.
    """
    if int(np.prod(shape, dtype=np.int64)) == 0:  # nothing to map
        return np.empty(shape, dtype=dtype)
    path = _sibling(Path(beside).expanduser(), "spill")
    array = np.memmap(path, dtype=np.dtype(dtype), mode="w+", shape=tuple(int(n) for n in shape))
    try:
        path.unlink()
    except OSError:  # Windows cannot unlink a mapped file: delete it with the array
        weakref.finalize(array._mmap, _unlink_quietly, path)
    return array


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
