"""The benchmark scripts' own arithmetic (the timed runs themselves live in ``benchmarks/``)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from parallel_ceiling import busy_share, ceiling


def test_busy_share_counts_the_overlap_with_each_partner_run():
    partner = [(0.0, 2.0), (3.0, 4.0)]
    assert busy_share((1.0, 5.0), partner) == pytest.approx((1.0 + 1.0) / 4.0)
    assert busy_share((0.5, 1.5), partner) == 1.0
    assert busy_share((2.0, 3.0), partner) == 0.0


def test_ceiling_compares_runs_beside_an_idle_and_a_busy_partner():
    # partner busy over [0, 10), idle afterwards
    partner = [(0.0, 10.0)]
    runs = [(0.0, 1.2), (1.2, 2.4), (2.4, 3.6),  # beside a busy partner: 1.2 s each
            (9.5, 10.5),  # half and half: counted in neither
            (11.0, 12.0), (12.0, 13.0)]  # partner idle: 1.0 s each
    found = ceiling(runs, partner)
    assert found["alone"] == pytest.approx([1.0, 1.0])
    assert found["beside"] == pytest.approx([1.2, 1.2, 1.2])
    assert found["slowdown"] == pytest.approx(1.2)
    assert found["ceiling"] == pytest.approx(2.0 / 1.2)


def test_ceiling_needs_runs_in_both_conditions():
    with pytest.raises(RuntimeError, match="too few runs"):
        ceiling([(0.0, 1.0), (1.0, 2.0)], [(0.0, 5.0)])
