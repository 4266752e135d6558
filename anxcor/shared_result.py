"""The result array of a run, written by the runners without page faults and shared with dask workers.

A run's result (1.2 GB at 128 stations) is filled block by block. Written through a fresh
mapping, every 4 kB page faults once: 0.85 s of system time for 1.2 GB on the 2-core machine
of the benchmarks, about 14 % of a serial run. On a ``dask.distributed`` cluster every block
also travelled to the client process and was copied there: pickled, sent over TCP, received
and placed, about 2.3 s of the client's CPU, which the workers then lacked.

So on Linux the result lives in a memory file (``memfd_create``; for ``process(store=...)`` a
hidden file beside the store, unlinked at once), mapped by the client as the result array,
and the blocks are written into the file with ``pwrite`` (:class:`ResultWriter`): the kernel
copies them into its pages, with no faults. A dask worker on the same machine writes its
blocks there itself and returns only their counts and records: a :class:`ResultTarget` names
the file by the client's process id and descriptor, the worker opens
``/proc/<pid>/fd/<fd>`` and writes after checking that it runs under the same kernel (boot
id) and opened the very file the client made (device and inode). Anything else (a worker on
another machine or in another container, no ``/proc``) and the block travels to the client
as before, which places it in the array. Without memory files (not Linux) the result is an
ordinary array and the serial runner writes into it with an :class:`ArrayWriter`. Nothing is left behind
by a crash: the file has no name, and its memory goes with the last process that maps it.
"""

from __future__ import annotations

import functools
import logging
import mmap
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import _sibling

__all__ = ["ResultTarget", "SharedResult", "ResultWriter", "ArrayWriter", "shared_result", "attach_result"]

logger = logging.getLogger(__name__)

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True)
class ResultTarget:
    """What a worker needs to find and check the client's shared result file (picklable, small)."""

    boot_id: str
    pid: int
    fd: int
    device: int
    inode: int
    shape: tuple[int, ...]
    dtype: str
    nonce: str  # makes the graph keys of each run's final tasks distinct

    @property
    def nbytes(self) -> int:
        """Size of the array in bytes."""
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class SharedResult:
    """The client's side: the result array, its file and, while the file is open, its :class:`ResultTarget`."""

    array: np.ndarray
    target: ResultTarget | None
    fd: int | None = None

    def writer(self) -> ResultWriter:
        """A writer into the array through the file (for this process; close it after use)."""
        if self.fd is None:
            raise ValueError("the shared result is closed")
        return ResultWriter(os.dup(self.fd), self.target)

    def close(self) -> None:
        """Close the file (after the run); the array keeps its memory until it is gone."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd, self.target = None, None


@functools.cache
def _boot_id() -> str | None:
    """This kernel's boot id (fixed for the life of the process), or None without /proc."""
    try:
        return Path(_BOOT_ID).read_text().strip()
    except OSError:
        return None


def shared_result(shape: tuple[int, ...], dtype, beside: str | os.PathLike | None = None) -> SharedResult | None:
    """A zero-filled result array that same-machine workers can write into, or None where not possible.

    Parameters
    ----------
    shape, dtype
        As for :func:`numpy.zeros`.
    beside
        None: the array is in memory (a ``memfd_create`` file). A path: the array is in a
        hidden temporary file in that path's folder (for results larger than memory,
        as :func:`~anxcor.allocator.spill_array`), unlinked at once.

    Returns
    -------
    SharedResult or None
        None on systems without ``memfd_create`` and ``/proc`` (then the caller allocates the
        result itself and the workers send their blocks). Call :meth:`SharedResult.close`
        when the run is done.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    boot_id = _boot_id()
    if not sys.platform.startswith("linux") or boot_id is None or nbytes == 0 or not hasattr(os, "memfd_create"):
        return None
    if beside is None:
        fd = os.memfd_create("anxcor-result", os.MFD_CLOEXEC)
    else:
        path = _sibling(Path(beside).expanduser(), "spill")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        path.unlink()
    try:
        os.ftruncate(fd, nbytes)
        array = np.frombuffer(mmap.mmap(fd, nbytes), dtype=dtype).reshape(shape)
        status = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    target = ResultTarget(
        boot_id,
        os.getpid(),
        fd,
        status.st_dev,
        status.st_ino,
        tuple(int(n) for n in shape),
        dtype.str,
        secrets.token_hex(8),
    )
    return SharedResult(array, target, fd)


def _pair_runs(pairs: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(first, stop)`` positions of the runs of consecutive values in ``pairs``."""
    starts = np.flatnonzero(np.diff(pairs, prepend=-2) != 1)
    return zip(starts.tolist(), [*starts[1:].tolist(), len(pairs)], strict=True)


class _Writer:
    """Closes itself at the end of a ``with`` block."""

    def close(self) -> None:
        """Release what the writer holds."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ResultWriter(_Writer):
    """Writes blocks of pairs into a result file at their place, with ``pwrite`` (see the module notes)."""

    def __init__(self, fd: int, target: ResultTarget):
        self._fd, self._target = fd, target
        self._pair_bytes = int(np.prod(target.shape[1:], dtype=np.int64)) * np.dtype(target.dtype).itemsize

    def write_pairs(self, pairs: np.ndarray, values: np.ndarray) -> None:
        """Write ``values[k]`` (all rows of one pair) at pair index ``pairs[k]`` of the result.

        Consecutive pair indices go in one ``pwrite`` each: the kernel copies them into the
        file's pages, with no page faults in this process.
        """
        values = np.ascontiguousarray(values, dtype=np.dtype(self._target.dtype))
        if values.shape != (len(pairs), *self._target.shape[1:]):
            raise ValueError(f"values of shape {values.shape} for {len(pairs)} pairs of {self._target.shape}")
        pairs = np.asarray(pairs, dtype=np.int64)
        for first, stop in _pair_runs(pairs):
            view = memoryview(values[first:stop]).cast("B")
            offset = int(pairs[first]) * self._pair_bytes
            while view.nbytes:  # pwrite may write less than asked (large writes)
                written = os.pwrite(self._fd, view, offset)
                view, offset = view[written:], offset + written

    def close(self) -> None:
        """Close this writer's descriptor of the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ArrayWriter(_Writer):
    """:class:`ResultWriter`'s interface over a plain result array (where no result file is possible)."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def write_pairs(self, pairs: np.ndarray, values: np.ndarray) -> None:
        """Write ``values[k]`` (all rows of one pair) at pair index ``pairs[k]`` of the array."""
        self.array[pairs] = values


def attach_result(target: ResultTarget | None) -> ResultWriter | None:
    """A writer into the client's result from this (worker) process; None if it is not reachable here.

    Parameters
    ----------
    target
        From :func:`shared_result`, or None.

    Returns
    -------
    ResultWriter or None
        Open on the client's file (close it after writing, or use it in a ``with`` block);
        None when this process runs under another kernel, cannot open the file, or opens
        another one.
    """
    if target is None or _boot_id() != target.boot_id:
        return None
    try:
        fd = os.open(f"/proc/{target.pid}/fd/{target.fd}", os.O_WRONLY)
    except OSError as exc:
        logger.debug("shared result not reachable, the block is sent instead: %s", exc)
        return None
    status = os.fstat(fd)
    if (status.st_dev, status.st_ino) != (target.device, target.inode) or status.st_size < target.nbytes:
        os.close(fd)
        return None
    return ResultWriter(fd, target)
