"""Preparing a ``dask.distributed`` cluster's workers for anxcor runs.

Imported only when a run is given a client (it imports ``distributed``).
"""

from __future__ import annotations

import logging
import weakref

from distributed.diagnostics.plugin import WorkerPlugin

from .allocator import tune_allocator

__all__ = ["AllocatorPlugin", "prepare_workers"]

logger = logging.getLogger(__name__)

#: Clients whose workers already have the plugin (registered once per client).
_PREPARED: weakref.WeakSet = weakref.WeakSet()


class AllocatorPlugin(WorkerPlugin):
    """Applies :func:`anxcor.allocator.tune_allocator` on each worker, present and future."""

    name = "anxcor-allocator"

    def setup(self, worker) -> None:
        """Set the worker process's allocator thresholds."""
        tune_allocator()


def prepare_workers(client) -> None:
    """Register :class:`AllocatorPlugin` on ``client``'s cluster (once per client).

    Workers that join later (an adaptive cluster) get it too. A speed setting only: a failure
    is logged and the run goes on.
    """
    if client in _PREPARED:
        return
    try:
        client.register_plugin(AllocatorPlugin(), name=AllocatorPlugin.name)
    except Exception as exc:
        logger.debug("could not set the workers' allocator thresholds: %s", exc)
        return
    _PREPARED.add(client)
