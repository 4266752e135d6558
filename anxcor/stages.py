"""Station-windows saved after a chosen preprocessing task, so a run can start from there.

``Anxcor.save_at_process(folder, task)`` writes each station-window as it leaves ``task``;
``Anxcor.load_at_process(folder, task)`` then skips reading and the tasks up to ``task``
and runs the rest from those files: handy to try correlation or stacking settings without
redoing response removal and filtering. One ``.npz`` file per station-window, written
atomically: ``folder/<dataset>/<NET.STA>/<window start>.npz``.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
from obspy import UTCDateTime

__all__ = ["stage_path", "save_stage", "load_stage"]


def stage_path(directory: str, station: str, window_start: float) -> str:
    """The file of one station-window: ``directory/<station>/<ISO start>.npz``."""
    stamp = UTCDateTime(window_start).strftime("%Y%m%dT%H%M%S.%fZ")
    return str(Path(directory) / station / f"{stamp}.npz")


def save_stage(path: str, groups: list[tuple[tuple[int, ...], np.ndarray, float]], channels: dict[str, str]) -> None:
    """Write a station-window's rows (grouped by sampling rate) and their SEED ids atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz")
    arrays = {f"data_{k}": values for k, (_, values, _) in enumerate(groups)}
    meta = {"groups": [{"rows": list(rows), "rate": rate} for rows, _, rate in groups], "channels": channels}
    try:
        with open(temporary, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def load_stage(path: str) -> tuple[list[tuple[tuple[int, ...], np.ndarray, float]], dict[str, str]]:
    """Read what :func:`save_stage` wrote: the row groups and the SEED ids per component."""
    with np.load(path) as stored:
        meta = json.loads(str(stored["meta"]))
        groups = [
            (tuple(group["rows"]), stored[f"data_{k}"], float(group["rate"])) for k, group in enumerate(meta["groups"])
        ]
    return groups, meta["channels"]
