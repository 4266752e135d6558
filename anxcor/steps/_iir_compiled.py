"""The compiled loop of :mod:`anxcor.steps.iir` (imports numba: loaded on the first filter, only where numba is).

Three rows go side by side through four sections per pass; every state is a named local, so
the loop keeps all 24 in registers (forms holding them in arrays spilled them to memory and
were no faster than scipy's loop). ``fastmath={'contract'}`` lets multiply-adds fuse and
nothing else: no reassociation, and NaN and inf keep their meaning.
"""

from __future__ import annotations

import logging

import numba

logger = logging.getLogger(__name__)

_OPTIONS = dict(nogil=True, fastmath={"contract"})


@numba.njit(inline="always", **_OPTIONS)
def _section(b0, b1, b2, a1, a2, x, first, second):  # pragma: no cover - compiled
    """One second-order section, one sample: output and the two new states (direct form II transposed)."""
    y = b0 * x + first
    return y, b1 * x - a1 * y + second, b2 * x - a2 * y


def _cascade(sos, rows, states):  # pragma: no cover - compiled by numba (coverage does not see it)
    """Filter ``rows`` (a multiple of 3) in place through 4 sections, three rows at a time."""
    b00, b01, b02, a01, a02 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b10, b11, b12, a11, a12 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    b20, b21, b22, a21, a22 = sos[2, 0], sos[2, 1], sos[2, 2], sos[2, 4], sos[2, 5]
    b30, b31, b32, a31, a32 = sos[3, 0], sos[3, 1], sos[3, 2], sos[3, 4], sos[3, 5]
    for r in range(0, rows.shape[0], 3):
        # states of section s for row r + k: fsk (first), ssk (second)
        f00, s00, f10, s10, f20, s20, f30, s30 = states[r].ravel()
        f01, s01, f11, s11, f21, s21, f31, s31 = states[r + 1].ravel()
        f02, s02, f12, s12, f22, s22, f32, s32 = states[r + 2].ravel()
        for n in range(rows.shape[1]):
            x0, x1, x2 = rows[r, n], rows[r + 1, n], rows[r + 2, n]
            x0, f00, s00 = _section(b00, b01, b02, a01, a02, x0, f00, s00)
            x1, f01, s01 = _section(b00, b01, b02, a01, a02, x1, f01, s01)
            x2, f02, s02 = _section(b00, b01, b02, a01, a02, x2, f02, s02)
            x0, f10, s10 = _section(b10, b11, b12, a11, a12, x0, f10, s10)
            x1, f11, s11 = _section(b10, b11, b12, a11, a12, x1, f11, s11)
            x2, f12, s12 = _section(b10, b11, b12, a11, a12, x2, f12, s12)
            x0, f20, s20 = _section(b20, b21, b22, a21, a22, x0, f20, s20)
            x1, f21, s21 = _section(b20, b21, b22, a21, a22, x1, f21, s21)
            x2, f22, s22 = _section(b20, b21, b22, a21, a22, x2, f22, s22)
            x0, f30, s30 = _section(b30, b31, b32, a31, a32, x0, f30, s30)
            x1, f31, s31 = _section(b30, b31, b32, a31, a32, x1, f31, s31)
            x2, f32, s32 = _section(b30, b31, b32, a31, a32, x2, f32, s32)
            rows[r, n], rows[r + 1, n], rows[r + 2, n] = x0, x1, x2
        finals = (
            (f00, s00, f10, s10, f20, s20, f30, s30),
            (f01, s01, f11, s11, f21, s21, f31, s31),
            (f02, s02, f12, s12, f22, s22, f32, s32),
        )
        for k in range(3):
            for j in range(8):
                states[r + k, j // 2, j % 2] = finals[k][j]


try:  # compiled once per machine, then loaded from numba's cache (about 1 s against 0.2 s)
    cascade = numba.njit(cache=True, **_OPTIONS)(_cascade)
except RuntimeError as exc:  # no writable cache location for this installation
    logger.debug("numba cannot cache the filter loop (%s); compiling it in each process", exc)
    cascade = numba.njit(**_OPTIONS)(_cascade)
