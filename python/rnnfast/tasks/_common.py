"""Helpers shared by the example tasks: timing, output, tables and plots."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np

from .. import callbacks


class EpochTimer(callbacks.Callback):
    """Collects the wall time of each epoch (for the "s/epoch" columns)."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    @property
    def seconds_per_epoch(self) -> float:
        # The median ignores the first epoch's one-off allocations.
        return float(np.median(self.times)) if self.times else float("nan")


@contextlib.contextmanager
def redirect_stdout(out):
    """Sends the progress bar (which writes to sys.stdout) to `out` as well."""
    if out is None or out is sys.stdout:
        yield
        return
    saved, sys.stdout = sys.stdout, out
    try:
        yield
    finally:
        sys.stdout = saved


def table(headers, rows) -> str:
    """A Markdown table, so that it can be pasted into RESULTS.md unchanged."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def figure_class():
    """matplotlib's Figure, or None when matplotlib (an optional extra) is not
    installed. A bare Figure draws straight to a file: no pyplot, no backend
    to choose, no global state touched."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def save_plot(path, draw, out) -> str | None:
    """Calls draw(Figure) for a figure and saves it to `path` as PNG; returns
    the path, or None (with a one-line message) when matplotlib is missing."""
    if not path:
        return None
    Figure = figure_class()
    if Figure is None:
        print(f"matplotlib is not installed: skipping the plot {path} "
              f"(pip install matplotlib)", file=out)
        return None
    draw(Figure).savefig(path, dpi=100, bbox_inches="tight")
    print(f"plot saved to {path}", file=out)
    return str(path)


def parser(prog, doc, epochs_full, epochs_quick, plot_name=None) -> argparse.ArgumentParser:
    """The options every task takes."""
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small data and few epochs: runs in seconds (what CI runs)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {epochs_full}, or {epochs_quick} with --quick)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=None,
                   help="progress output: 1 = progress bar (default), 2 = one line per epoch "
                        "(default with --quick), 0 = none")
    if plot_name:
        p.add_argument("--plot", default=None, metavar="PNG",
                       help=f"where to save the plot (default {plot_name} in full mode, none "
                            f"with --quick); needs matplotlib")
        p.add_argument("--no-plot", action="store_true", help="save no plot")
    return p


def common_args(p, args, plot_name=None) -> dict:
    """run() keyword arguments from the parsed common options."""
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be positive")
    kw = {"quick": args.quick, "epochs": args.epochs, "seed": args.seed,
          "verbose": args.verbose if args.verbose is not None else (2 if args.quick else 1)}
    if plot_name is not None:
        plot = args.plot
        if plot is None and not args.quick:
            plot = plot_name
        kw["plot"] = None if args.no_plot else plot
    return kw
