"""Component orientation: bring horizontal channels to north/east with the inventory's azimuths.

Channels ending in 1/2 are read as N/E (``anxcor.windows.component_of``); when the station's
inventory gives each channel's azimuth and dip, :class:`OrientHorizontals` rotates the two
horizontals onto true north and east (and flips a vertical that points down), so sensors
installed off north correlate correctly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from obspy import UTCDateTime

from ..errors import ConfigError, DataError
from .base import Step, WindowContext

__all__ = ["OrientHorizontals", "horizontal_to_north_east"]

_ANGLE_TOLERANCE_DEG = 1e-3


def horizontal_to_north_east(first: np.ndarray, second: np.ndarray, azimuth_first: float, azimuth_second: float) -> tuple[np.ndarray, np.ndarray]:
    """North and east motion from two horizontal records with known azimuths.

    A horizontal channel of azimuth ``a`` (degrees clockwise from north) records
    ``N cos(a) + E sin(a)``; the two equations are solved for N and E (the azimuths need not be
    90 degrees apart, only different).

    Parameters
    ----------
    first, second
        Records of the two horizontal channels, same shape.
    azimuth_first, azimuth_second
        Their azimuths in degrees.
    """
    a1, a2 = np.deg2rad(azimuth_first), np.deg2rad(azimuth_second)
    matrix = np.array([[np.cos(a1), np.sin(a1)], [np.cos(a2), np.sin(a2)]])
    if abs(np.linalg.det(matrix)) < 1e-3:
        raise DataError(
            f"horizontal channels with azimuths {azimuth_first} and {azimuth_second} degrees are "
            "(nearly) parallel: north and east cannot be recovered"
        )
    north_east = np.linalg.solve(matrix, np.stack([first.reshape(-1), second.reshape(-1)]))
    return north_east[0].reshape(first.shape), north_east[1].reshape(first.shape)


@dataclass(frozen=True, kw_only=True)
class OrientHorizontals(Step):
    """Rotate horizontals to north/east (and verticals to up) using the inventory.

    Without an inventory, or when the channels already point north, east and up, the data
    pass unchanged.

    Parameters
    ----------
    require_metadata
        If True, a station-window whose horizontal channels have no orientation in the
        inventory is skipped (and recorded) instead of being used as labelled.
    """

    require_metadata: bool = False

    def __post_init__(self):
        if not isinstance(self.require_metadata, bool):
            raise ConfigError(f"OrientHorizontals require_metadata must be True or False, got {self.require_metadata!r}")

    def apply(self, data, sampling_rate, context: WindowContext | None = None):
        """Rotate the rows labelled N and E to true north/east; flip a downward vertical."""
        if context is None or context.inventory is None:
            if self.require_metadata and context is not None and {"N", "E"} & set(context.components):
                raise DataError(f"{context.station}: no inventory to orient the horizontal channels")
            return data, sampling_rate
        orientation = {
            component: _orientation(context.inventory, channel, context.starttime)
            for component, channel in zip(context.components, context.channels, strict=True)
        }
        data = data.copy()
        rows = {component: row for row, component in enumerate(context.components)}
        if "Z" in rows and orientation["Z"] is not None and orientation["Z"][1] > 0:
            data[rows["Z"]] *= -1.0  # dip > 0 points down; anxcor's Z is up
        horizontals = [c for c in ("N", "E") if c in rows]
        if not horizontals:
            return data, sampling_rate
        if any(orientation[c] is None for c in horizontals):
            if self.require_metadata:
                raise DataError(f"{context.station}: no azimuth in the inventory for {list(context.channels)}")
            return data, sampling_rate
        nominal = {"N": 0.0, "E": 90.0}
        if all(_same_angle(orientation[c][0], nominal[c]) for c in horizontals):
            return data, sampling_rate
        if len(horizontals) < 2:
            raise DataError(
                f"{context.station}: channel {context.channels[rows[horizontals[0]]]} has azimuth "
                f"{orientation[horizontals[0]][0]} degrees and its partner is missing: cannot orient"
            )
        north, east = horizontal_to_north_east(
            data[rows["N"]], data[rows["E"]], orientation["N"][0], orientation["E"][0]
        )
        data[rows["N"]], data[rows["E"]] = north, east
        return data, sampling_rate


def _orientation(inventory, channel: str, starttime: float) -> tuple[float, float] | None:
    """(azimuth, dip) in degrees of a SEED channel at a time, or None when unknown."""
    if not channel:
        return None
    try:
        values = inventory.get_orientation(channel, UTCDateTime(starttime))
    except Exception:  # obspy raises a plain Exception when the channel is absent
        return None
    azimuth, dip = values.get("azimuth"), values.get("dip")
    if azimuth is None or dip is None:
        return None
    return float(azimuth), float(dip)


def _same_angle(a: float, b: float) -> bool:
    return abs((a - b + 180.0) % 360.0 - 180.0) < _ANGLE_TOLERANCE_DEG
