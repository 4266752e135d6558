"""On-disk cache of partial results, so an interrupted run resumes where it stopped.

The unit of work that is cached is one correlation task: one read span x one pair block
(summed correlations, or every window's correlations, with counts and records). Each file is
named by a token of everything that determines its content (configuration, dataset, the
block's station pairs and the span's window start times), written to a temporary name and
renamed, so a killed run leaves only complete files. A rerun with the same configuration
loads what exists and computes the rest; adding windows (new days) only computes the spans
that are new or changed.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
from dask.base import tokenize

from .execute import BlockPartial

__all__ = ["partial_path", "save_partial", "load_partial", "cached_or"]

_FORMAT = 1


def partial_path(directory: str | Path, dataset: str, run_token: str, stations: list[str], block, window_starts: list[float]) -> str:
    """The cache file of one (read span, pair block) task."""
    pairs = [(stations[block.stations[s]], stations[block.stations[r]]) for s, r in zip(block.src, block.rec, strict=True)]
    token = tokenize(_FORMAT, run_token, dataset, pairs, [float(t) for t in window_starts])
    return str(Path(directory) / dataset / f"{token}.npz")


def save_partial(path: str, partial: BlockPartial) -> BlockPartial:
    """Write ``partial`` to ``path`` atomically and return it unchanged."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz")
    records = json.dumps(
        {"failures": sorted(partial.failures), "repairs": sorted(partial.repairs), "channels": sorted(partial.channels)}
    )
    try:
        with open(temporary, "wb") as handle:
            np.savez(handle, data=partial.data, counts=partial.counts, windows=partial.windows, records=np.array(records))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return partial


def load_partial(path: str) -> BlockPartial:
    """Read a partial result written by :func:`save_partial`."""
    with np.load(path) as stored:
        records = json.loads(str(stored["records"]))
        return BlockPartial(
            data=stored["data"],
            counts=stored["counts"],
            windows=stored["windows"],
            failures=frozenset(tuple(f) for f in records["failures"]),
            repairs=frozenset(tuple(r) for r in records["repairs"]),
            channels=frozenset(tuple(c) for c in records["channels"]),
        )


def cached_or(path: str | None, compute, *args):
    """Load the partial at ``path`` if it exists, else compute it (and save it when a path is given)."""
    if path is not None and os.path.exists(path):
        return load_partial(path)
    result = compute(*args)
    return result if path is None else save_partial(path, result)
