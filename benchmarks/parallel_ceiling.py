"""How much faster two processes can be than one on this machine, for anxcor's own work.

Issue 6 asks for a 2-worker ``dask.distributed`` run at least 1.6x faster than the serial
run. On two cores that ratio is bounded, before any of dask's own costs, by how much two
busy processes slow each other down (shared caches and memory bandwidth, the host's
scheduling of the virtual CPUs). This script measures that bound with anxcor's serial run
of the benchmark case (``throughput.py``'s archive and settings):

- process A runs the serial ``process(times)`` over and over, logging each run's start and end;
- process B, its partner, alternates: ``period`` seconds running the same serial runs, then
  ``period`` seconds asleep;
- A's runs made while B was busy throughout are compared with A's runs while B slept
  throughout. Interleaving the two conditions every ``period`` seconds, in one stretch of
  time, keeps a shared machine's drift (often 20 % within minutes) out of the comparison,
  which timing "one process" and then "two processes" would not.

The ceiling is ``2 x median(alone) / median(beside a busy partner)``: the speed-up two
independent processes would get over one. ``throughput.py``'s dask over serial ratio can
be read against it.

Usage::

    python benchmarks/parallel_ceiling.py --stations 128 --seconds 480
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from throughput import archive_for, make_anxcor  # beside this script

#: A run counts as beside a busy (idle) partner when the partner was running for at least
#: (at most) this share of it.
BUSY_SHARE, IDLE_SHARE = 0.97, 0.03
#: Seconds between starting the two processes and their first timed run (imports, a warm-up run).
START_DELAY_S = 40.0


def serial_runs(stations: int, workdir: Path, start_at: float, stop_at: float, period: float | None) -> dict:
    """Run the serial benchmark case from ``start_at`` to ``stop_at``.

    With ``period`` the runs happen only in every other ``period`` seconds (the partner);
    without, back to back. Returns ``{"ready": time the warm-up ended, "runs": [(start, end), ...]}``.
    """
    anx, times = warmed_up(stations, workdir)  # the parent wrote and indexed the archive
    ready = time.time()
    while time.time() < start_at:
        time.sleep(0.01)
    spans = []
    while time.time() < stop_at:
        if period is not None and int((time.time() - start_at) // period) % 2:
            time.sleep(0.02)
            continue
        started = time.time()
        anx.process(times)
        spans.append((started, time.time()))
    return {"ready": ready, "runs": spans}


def busy_share(span: tuple[float, float], partner: list[tuple[float, float]]) -> float:
    """The share of ``span`` during which one of the partner's runs was going on."""
    first, last = span
    overlap = sum(max(0.0, min(last, end) - max(first, start)) for start, end in partner)
    return overlap / (last - first)


def ceiling(runs: list[tuple[float, float]], partner: list[tuple[float, float]]) -> dict:
    """Medians of the runs beside an idle and beside a busy partner, and the ceiling they give."""
    shares = [busy_share(span, partner) for span in runs]
    alone = [end - start for (start, end), share in zip(runs, shares, strict=True) if share <= IDLE_SHARE]
    beside = [end - start for (start, end), share in zip(runs, shares, strict=True) if share >= BUSY_SHARE]
    if not alone or not beside:
        raise RuntimeError(f"too few runs in each condition ({len(alone)} alone, {len(beside)} beside): "
                           "use more --seconds or a longer --period")
    alone_s, beside_s = float(np.median(alone)), float(np.median(beside))
    return {"alone": alone, "beside": beside, "alone_s": alone_s, "beside_s": beside_s,
            "slowdown": beside_s / alone_s, "ceiling": 2.0 * alone_s / beside_s}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=128, help="N stations (default 128)")
    parser.add_argument("--seconds", type=float, default=480.0, help="length of the measurement (default 480)")
    parser.add_argument("--period", type=float, default=None,
                        help="partner's busy and idle phases in s (default: 3 serial runs)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "anxcor-benchmark")
    parser.add_argument("--child", choices=["runner", "partner"], help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.stations < 1 or args.seconds <= 0 or (args.period is not None and args.period <= 0):
        parser.error("--stations, --seconds and --period need positive values")
    return args


def child(args: argparse.Namespace) -> int:
    """One of the two processes: write its warm-up end and runs' (start, end) as JSON to ``--out``."""
    period = args.period if args.child == "partner" else None
    found = serial_runs(args.stations, args.workdir, args.start_at, args.start_at + args.seconds, period)
    args.out.write_text(json.dumps(found))
    return 0


def warmed_up(stations: int, workdir: Path):
    """The benchmark's ``Anxcor`` and window starts, after one untimed run (imports, plan caches, filter designs).

    Writes (or reuses) the archive and indexes it the first time.
    """
    anx, times = make_anxcor(archive_for(workdir, stations))
    anx.process(times)
    return anx, times


def one_run_seconds(stations: int, workdir: Path) -> float:
    """Write (or reuse) and index the archive, then time one warm serial run."""
    anx, times = warmed_up(stations, workdir)
    started = time.perf_counter()
    anx.process(times)
    return time.perf_counter() - started


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    # obsplus warns on every index query about an upstream PyTables issue (see throughput.py)
    warnings.filterwarnings("ignore", message="Querying with a nested 'where'", category=UserWarning)
    if args.child:
        return child(args)
    args.workdir.mkdir(parents=True, exist_ok=True)
    one_run = one_run_seconds(args.stations, args.workdir)  # the archive and its index exist before the children
    if args.period is None:
        args.period = 3.0 * one_run
    start_at = time.time() + START_DELAY_S + 2.0 * one_run
    common = [sys.executable, __file__, "--stations", str(args.stations), "--seconds", str(args.seconds),
              "--period", str(args.period), "--workdir", str(args.workdir), "--start-at", str(start_at)]
    with tempfile.TemporaryDirectory() as folder:
        outs = {role: Path(folder) / f"{role}.json" for role in ("runner", "partner")}
        processes = [subprocess.Popen([*common, "--child", role, "--out", str(out)]) for role, out in outs.items()]
        if any(p.wait() for p in processes):
            raise RuntimeError("a measuring process failed")
        runner, partner = (json.loads(out.read_text()) for out in outs.values())
    late = max(runner["ready"], partner["ready"]) - start_at
    if late > 0:
        raise RuntimeError(f"a process finished its warm-up {late:.1f} s after the measurement began; rerun")
    found = ceiling(runner["runs"], partner["runs"])
    print(f"N={args.stations}, serial benchmark case, {args.seconds:g} s, partner busy/idle every {args.period:.1f} s")
    print(f"runs with the partner idle: {len(found['alone'])}, median {found['alone_s']:.2f} s; "
          f"with the partner busy: {len(found['beside'])}, median {found['beside_s']:.2f} s "
          f"(each {100 * (found['slowdown'] - 1):.1f} % slower)")
    print(f"two processes at most {found['ceiling']:.2f}x one on this machine, before dask's own costs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
