"""Progress feedback for long runs: a one-line text bar on stderr, and log lines."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["TextProgress"]

logger = logging.getLogger(__name__)


class TextProgress:
    """A callable ``progress(done, total)`` that redraws a text bar on a stream.

    Parameters
    ----------
    stream
        Where to draw (default ``sys.stderr``).
    width
        Bar width in characters.
    """

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.started = time.perf_counter()
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        """Redraw the bar for ``done`` of ``total`` tasks."""
        fraction = done / total if total else 1.0
        filled = int(round(self.width * fraction))
        elapsed = time.perf_counter() - self.started
        remaining = elapsed / fraction - elapsed if fraction > 0 else float("nan")
        self.stream.write(
            f"\ranxcor [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} "
            f"{elapsed:6.1f} s elapsed, ~{remaining:5.1f} s left"
        )
        self.stream.flush()
        self._drawn = True
        if done == total:
            logger.info("finished %d tasks in %.1f s", total, elapsed)

    def close(self) -> None:
        """End the bar's line."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
