"""Command line: ``python -m anxcor demo | run | info``.

``demo`` writes a synthetic diffuse-field archive (cached), correlates it with a progress
bar, prints where each ZZ correlation peaks against the expected +-distance/velocity and
where the ZZ beam power peaks (the isotropic field gives a ring at 1/velocity), and saves a
record-section plot and a beam-power plot. ``run`` correlates a waveform archive with a saved
configuration and writes the result (netCDF or zarr); ``info`` summarises a saved result.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from .errors import ConfigError

__all__ = ["main"]


def _cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "anxcor"


def demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the process exit status."""
    from .core import Anxcor
    from .database import WaveBankDatabase
    from .datasets import synthetic_archive

    folder = Path(args.archive or _cache_dir() / f"demo-{args.stations}st-{args.hours:g}h-{args.rate:g}hz-seed{args.seed}")
    started = time.perf_counter()
    archive = synthetic_archive(folder, stations=args.stations, hours=args.hours, rate=args.rate, seed=args.seed)
    print(f"synthetic archive: {len(archive.stations)} stations x ZNE, {args.hours:g} h at {args.rate:g} Hz "
          f"in {folder} ({time.perf_counter() - started:.1f} s)")

    anx = Anxcor(window_length=600.0)
    anx.set_task_kwargs("resample", dict(target_rate=args.rate))
    anx.set_task_kwargs("whiten", dict(freqmin=0.1, freqmax=0.5))
    anx.set_task_kwargs("crosscorrelate", dict(max_tau_shift=60.0))
    anx.add_dataset(WaveBankDatabase(archive.waveform_dir, coordinates=archive.stations), "synthetic")
    times = anx.get_starttimes(archive.starttime, archive.endtime, 0.0)

    client = None
    if args.workers:
        from distributed import Client, LocalCluster

        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None))
    started = time.perf_counter()
    try:
        result = anx.process(times, dask_client=client, progress=True)
    finally:
        if client is not None:
            client.close()
    elapsed = time.perf_counter() - started
    n_pairs = result.sizes["station_pair"]
    print(f"correlated {n_pairs} station pairs (autocorrelations included) x 9 channel pairs x "
          f"{len(times)} windows of 600 s in {elapsed:.1f} s "
          f"({n_pairs * 9 * len(times) / elapsed:,.0f} pair-channel-windows/s)")
    print(f"failures recorded: {len(json.loads(result.attrs['failures']))}")
    good = _print_peaks(result, archive)
    beam = _print_beam(result, archive.velocity)
    if importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed: no plots (pip install 'anxcor[plot]')")
    else:
        _save_plot(result, Path(args.plot), archive.velocity)
        _plot_beam(beam, Path(args.plot).with_name("anxcor_demo_beam.png"))
    return 0 if good else 1


def _print_peaks(result, archive) -> bool:
    zz = result["synthetic"].sel(channel="Z:Z")
    lags = result["time"].values
    print("\nZZ peaks (expected +-distance / 3 km/s):")
    print(f"{'pair':<20}{'dist km':>9}{'expected s':>12}{'causal s':>10}{'acausal s':>11}  ok")
    hits = total = 0
    for label in zz.station_pair.values:
        src, rec = str(label).split(":")
        if src == rec:
            continue
        trace = zz.sel(station_pair=label).values
        expected = archive.expected_lag(src, rec)
        causal = lags[lags > 0][np.argmax(trace[lags > 0])]
        acausal = lags[lags < 0][np.argmax(trace[lags < 0])]
        ok = abs(causal - expected) <= 1.0 and abs(acausal + expected) <= 1.0
        hits, total = hits + ok, total + 1
        distance = float(zz["distance"].sel(station_pair=label))
        print(f"{label!s:<20}{distance:9.1f}{expected:12.2f}{causal:10.1f}{acausal:11.1f}  {'yes' if ok else 'NO'}")
    print(f"\n{hits}/{total} pairs peak within 1 s of +-distance/velocity on both sides")
    if hits < 0.9 * total:
        print("(a diffuse field converges with time: try --hours 4 for more pairs at the expected lags)")
    return hits >= 0.5 * total  # fewer would mean something is broken, not just slow convergence


def _save_plot(result, path: Path, velocity: float) -> None:
    """Record section of the ZZ stacks with the field's velocity marked, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    ax = result.anxcor.plot_record_section(channel="Z:Z", velocities=(velocity,))
    _save_figure(ax.figure, path)
    print(f"record section saved to {path.resolve()}")


def _print_beam(result, velocity: float):
    """Bartlett beam power of the ZZ stacks in the field's band (0.1-0.5 Hz); prints its maximum.

    The demo's field is isotropic, so the power forms a ring at slowness ``1 / velocity``
    rather than one peak: besides the maximum, print the fraction of backazimuths whose
    strongest slowness lies within 10 % of it. Returns the beam (a DataArray).
    """
    from .analysis import beamform

    beam = beamform(result, freqmin=0.1, freqmax=0.5, channel="Z:Z")
    slowness = beam["slowness"].values
    row, column = np.unravel_index(int(np.argmax(beam.values)), beam.shape)
    best_s, best_baz = float(slowness[row]), float(beam["backazimuth"].values[column])
    speed = f" ({1 / best_s:.2f} km/s)" if best_s > 0 else ""
    expected = 1.0 / velocity
    ridge = slowness[np.argmax(beam.transpose("slowness", "backazimuth").values, axis=0)]
    on_ring = float(np.mean(np.abs(ridge - expected) <= 0.1 * expected))
    print(f"\nZZ beam power, {beam.attrs['freqmin']:g}-{beam.attrs['freqmax']:g} Hz "
          f"({beam.attrs['method']}, {beam.attrs['n_stations']} stations): maximum at backazimuth "
          f"{best_baz:g} deg, slowness {best_s:.3g} s/km{speed}")
    print(f"isotropic field, so a ring: strongest slowness within 10% of 1/{velocity:g} km/s = {expected:.3f} s/km "
          f"at {on_ring:.0%} of backazimuths (median {float(np.median(ridge)):.3f} s/km)")
    return beam


def _plot_beam(beam, path: Path) -> None:
    """Polar plot of a beam-power map (from :func:`_print_beam`), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from .plot import beam_power

    ax = beam_power(beam)
    _save_figure(ax.figure, path)
    print(f"beam power saved to {path.resolve()}")


def _save_figure(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    """Correlate an archive with a saved configuration and save the result."""
    from .core import Anxcor
    from .database import SDSDatabase, WaveBankDatabase

    anx = Anxcor.load_config(args.config)
    if (args.sds is None) == (args.wavebank is None):
        raise ConfigError("give exactly one waveform source: --sds ROOT or --wavebank DIRECTORY")
    metadata = _metadata(args)
    database = SDSDatabase(args.sds) if args.sds is not None else WaveBankDatabase(args.wavebank)
    anx.add_dataset(database, args.name, inventory=metadata)
    times = anx.get_starttimes(args.start, args.end, args.overlap)
    print(f"{len(times)} windows of {anx.window_length:g} s between {args.start} and {args.end}", file=sys.stderr)
    client = None
    if args.workers:
        from distributed import Client, LocalCluster

        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None))
    try:
        # written to --out as the run goes (memory bounded for large arrays), then read lazily
        result = anx.process(
            times, dask_client=client, stack=_stack_argument(args.stack), progress=True, cache_dir=args.cache,
            store=args.out,
        )
    finally:
        if client is not None:
            client.close()
    print(f"result saved to {Path(args.out).expanduser()}")
    print(summary(result))
    return 0


def _metadata(args: argparse.Namespace):
    if args.inventory is not None:
        from obspy import read_inventory

        return read_inventory(args.inventory)
    if args.coordinates is not None:
        import pandas as pd

        return pd.read_csv(args.coordinates, dtype={"network": str, "station": str})
    return None


def _stack_argument(text: str):
    if text in ("all", "true", "True"):
        return True
    if text in ("none", "false", "False"):
        return False
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--stack must be 'all', 'none' or a number of windows, got {text!r}") from None


def summary(result) -> str:
    """A few lines describing a result: datasets, pairs, channels, windows, lags, failures."""
    lines = [f"anxcor result (version {result.attrs.get('anxcor_version', '?')})"]
    axis = "time" if "time" in result.dims else "frequency"
    values = result[axis].values
    lines.append(
        f"  {result.sizes['station_pair']} station pairs x {result.sizes['channel']} channel pairs, "
        f"{axis} {values[0]:g} .. {values[-1]:g} ({values.size} samples), "
        f"sampling rate {result.attrs.get('sampling_rate', '?')} Hz"
    )
    if "window" in result.dims:
        lines.append(f"  {result.sizes['window']} windows or window groups kept")
    lines.append(f"  stack: {result.attrs.get('stack', '?')}; windows requested: {result.attrs.get('n_windows_requested', '?')}")
    for name in result.data_vars:
        counts_name = "n_windows" if "n_windows" in result.coords else f"n_windows_{name}"
        counts = result[counts_name].values if counts_name in result.coords else None
        used = "" if counts is None else f", windows per stack {int(counts.min())}..{int(counts.max())}"
        lines.append(f"  dataset {name!r}: {int(result[name].notnull().any(axis).sum())} channel-pair stacks with data{used}")
    for key in ("failures", "repairs"):
        records = json.loads(result.attrs.get(key, "[]"))
        lines.append(f"  {key}: {len(records)}" + (f" (first: {records[0]})" if records else ""))
    if "distance" in result.coords:
        distance = result["distance"].values
        lines.append(f"  distances {np.nanmin(distance):.2f} .. {np.nanmax(distance):.2f} km")
    return "\n".join(lines)


def info(args: argparse.Namespace) -> int:
    """Print a summary of a saved result."""
    from .io import load_result

    print(summary(load_result(args.result)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m anxcor`` and the ``anxcor`` script."""
    parser = argparse.ArgumentParser(prog="anxcor", description="Ambient-noise cross-correlation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo",
        help="correlate a built-in synthetic archive, beamform it and plot both",
        description="Correlate a synthetic diffuse-field archive (cached), print where each ZZ correlation "
        "peaks against +-distance/velocity and where the ZZ beam power peaks (a ring at 1/velocity for "
        "this isotropic field), and save a record-section PNG and a beam-power PNG "
        "(anxcor_demo_beam.png, beside --plot).",
    )
    demo_parser.add_argument("--stations", type=int, default=12)
    demo_parser.add_argument("--hours", type=float, default=2.0)
    demo_parser.add_argument("--rate", type=float, default=20.0, help="Hz")
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--workers", type=int, default=0, help="dask workers (0: serial)")
    demo_parser.add_argument("--archive", help="where to write the archive (default: a cache folder)")
    demo_parser.add_argument(
        "--plot",
        default="anxcor_demo_record_section.png",
        help="record-section PNG to write; the beam-power PNG anxcor_demo_beam.png goes in the same folder",
    )
    run_parser = commands.add_parser("run", help="correlate an archive with a saved configuration")
    run_parser.add_argument("config", help="configuration JSON (Anxcor.save_config)")
    run_parser.add_argument("--start", required=True, help="UTC start, e.g. 2021-01-01T00:00:00")
    run_parser.add_argument("--end", required=True, help="UTC end")
    run_parser.add_argument("--out", required=True, help="result file: .nc (netCDF) or .zarr")
    run_parser.add_argument("--overlap", type=float, default=0.0, help="window overlap fraction")
    run_parser.add_argument("--sds", help="SDS archive root")
    run_parser.add_argument("--wavebank", help="directory of miniSEED files (indexed with obsplus)")
    run_parser.add_argument("--name", default="data", help="dataset (result variable) name")
    run_parser.add_argument("--inventory", help="StationXML with coordinates (and responses)")
    run_parser.add_argument("--coordinates", help="CSV with network,station,latitude,longitude[,elevation]")
    run_parser.add_argument("--stack", default="all", help="'all' (default), 'none', or windows per substack")
    run_parser.add_argument("--workers", type=int, default=0, help="dask workers (0: serial)")
    run_parser.add_argument("--cache", help="folder of partial results: a rerun resumes from it")
    info_parser = commands.add_parser("info", help="summarise a saved result")
    info_parser.add_argument("result", help="result file (.nc or .zarr)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from .errors import AnxcorError

    try:
        return {"demo": demo, "run": run, "info": info}[args.command](args)
    except AnxcorError as exc:
        print(f"anxcor: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
