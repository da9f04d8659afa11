"""Keras 3's text progress bar (``keras.utils.Progbar``), NumPy only.

The printed lines follow Keras 3 character for character, ANSI styling
included::

    verbose=1   32/32 ━━━━━━━━━━━━━━━━━━━━ 0s 3ms/step - loss: 0.1234
    verbose=2   32/32 - 0s - 3ms/step - loss: 0.1234

With ``verbose=1`` the count is bold, the done part of the bar green, the rest
grey, and the ETA (while running) or the elapsed seconds (once finished)
bold. On a terminal or in a notebook the line is redrawn in place (backspaces
and ``"\\r"``); elsewhere (a pipe, a log file, a captured stream) every redraw
starts on a new line. ``verbose=2`` prints one line, when the bar finishes.

Output goes to ``sys.stdout`` as it is at the time of each write, so a
redirected or captured stdout receives it.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time

import numpy as np

__all__ = ["Progbar"]

_BOLD = "\x1b[1m"
_GREEN = "\x1b[32m"
_GREY = "\x1b[37m"
_RESET = "\x1b[0m"
_BAR_CHAR = "\u2501"  # '━', BOX DRAWINGS HEAVY HORIZONTAL
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _write(message):
    out = sys.stdout
    if out is None:  # pythonw and friends
        return
    out.write(message)
    out.flush()


def _stdout_is_dynamic():
    """Whether the bar can be redrawn in place: a terminal, a Jupyter kernel
    or PyCharm's console (Keras 3's test, less its ``"posix" in sys.modules``
    clause, which holds on every Linux/macOS and would make redirected output
    a stream of backspaces)."""
    out = sys.stdout
    try:
        tty = bool(out.isatty())
    except (AttributeError, ValueError, OSError):
        tty = False
    return tty or "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ


def _format_value(avg, signed):
    # Keras 3: 4 decimals, or scientific notation for values of magnitude at
    # most 1e-3. The one-line (verbose=2) form compares the signed value, so
    # negative values print in scientific notation there, as in Keras.
    big = abs(avg) > 1e-3 if signed else avg > 1e-3
    return f"{avg:.4f}" if big else f"{avg:.4e}"


class Progbar:
    """Displays a progress bar (Keras 3's ``keras.utils.Progbar``).

    Args:
        target: Total number of steps expected, ``None`` if unknown.
        width: Width of the bar, in characters.
        verbose: 0 (silent), 1 (live bar) or 2 (one line when finished).
        interval: Minimum time between two redraws of the live bar, in seconds.
        stateful_metrics: Names of metrics shown as given. Every other metric
            is averaged over the steps by the bar (weighted by the number of
            steps each update covers). Do not pass together with
            ``stateless_metrics``.
        stateless_metrics: Names of the metrics to average; every other metric
            is then shown as given.
        unit_name: Name of a step in the time per step (``"step"``,
            ``"sample"``).
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError(
                "Only one of `stateful_metrics` or `stateless_metrics` may be "
                "provided: `stateful_metrics` lists the metrics not to "
                "average, `stateless_metrics` the only ones to average.")
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        if stateless_metrics is not None:
            self.stateful_metrics = None
            self.stateless_metrics = set(stateless_metrics)
        else:
            self.stateful_metrics = set(stateful_metrics or ())
            self.stateless_metrics = None

        self._dynamic_display = _stdout_is_dynamic()
        self._seen_so_far = 0
        self._values = {}  # name -> [weighted sum, total weight]
        self._values_order = []
        self._start = time.time()
        self._last_update = 0
        self._time_at_epoch_start = self._start
        self._time_after_first_step = None
        self._prev_total_width = 0

    # ------------------------------------------------------------------ API
    def update(self, current, values=None, finalize=None):
        """Moves the bar to step ``current``.

        Args:
            current: Index of the current step (the number of steps done).
            values: ``[(name, value_for_last_step), ...]``. Metrics not in
                ``stateful_metrics`` are shown averaged over the steps so far.
            finalize: Whether this is the last update. ``None``: when
                ``current >= target``.
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target

        for name, value in values or ():
            if name not in self._values_order:
                self._values_order.append(name)
            if self._averaged(name) and not finalize:
                weight = max(current - self._seen_so_far, 1)
                slot = self._values.get(name)
                if slot is None:
                    self._values[name] = [value * weight, weight]
                else:
                    slot[0] += value * weight
                    slot[1] += weight
            else:
                # A stateful metric, or the final update: the logged value is
                # already the epoch's result and is shown as is.
                self._values[name] = [value, 1]
        self._seen_so_far = current

        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now)

        if self.verbose == 1:
            if not finalize and now - self._last_update < self.interval:
                return
            self._draw_bar(current, now, time_per_unit, finalize)
        elif self.verbose == 2:
            if finalize and self.target is not None and self.target > 0:
                self._print_line(current, now, time_per_unit)
        self._last_update = now

    def add(self, n, values=None):
        """Advances the bar by ``n`` steps."""
        self.update(self._seen_so_far + n, values)

    # ------------------------------------------------------------ internals
    def _averaged(self, name):
        if self.stateful_metrics is not None:
            return name not in self.stateful_metrics
        return name in self.stateless_metrics

    def _average(self, name):
        total, count = self._values[name]
        if not isinstance(total, float):
            total = np.mean(total)
        return total / max(1, count)

    def _count(self, current):
        digits = int(math.log10(self.target)) + 1
        return "%*d/%d" % (digits, current, self.target)

    def _draw_bar(self, current, now, time_per_unit, finalize):
        known = self.target is not None and self.target > 0
        if known:
            bar = f"{_BOLD}{self._count(current)}{_RESET} "
            done = int(self.width * (float(current) / self.target))
            if done > 0:
                bar += f"{_GREEN}{_BAR_CHAR * done}{_RESET}"
            bar += f"{_GREY}{_BAR_CHAR * (self.width - done)}{_RESET}"
        else:
            bar = "%7d/Unknown" % current

        if known and not finalize:
            info = f" {_BOLD}{self._format_eta(time_per_unit * (self.target - current))}{_RESET}"
        else:
            info = f" {_BOLD}{now - self._start:.0f}s{_RESET}"
        info += self._format_time(time_per_unit, self.unit_name)
        for name in self._values_order:
            info += f" - {name}: {_format_value(self._average(name), signed=True)}"

        # Width on screen: what is printed, less the styling escapes.
        total_width = len(_ANSI.sub("", bar + info))
        if self._dynamic_display:
            message = "\b" * self._prev_total_width + "\r"
        else:
            message = "\n"
        message += bar + info
        if self._prev_total_width > total_width:
            message += " " * (self._prev_total_width - total_width)
        if finalize:
            message += "\n"
        _write(message)
        self._prev_total_width = total_width

    def _print_line(self, current, now, time_per_unit):
        line = f"{self._count(current)} - {now - self._start:.0f}s"
        line += f" -{self._format_time(time_per_unit, self.unit_name)}"
        for name in self._values_order:
            line += f" - {name}: {_format_value(self._average(name), signed=False)}"
        _write(line + "\n")

    @staticmethod
    def _format_eta(eta):
        if eta > 3600:
            return "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
        if eta > 60:
            return "%d:%02d" % (eta // 60, eta % 60)
        return "%ds" % eta

    def _format_time(self, time_per_unit, unit_name):
        """`` 3s/step``, `` 12ms/step`` or `` 250us/step`` (leading space)."""
        if time_per_unit >= 1 or time_per_unit == 0:
            return f" {time_per_unit:.0f}s/{unit_name}"
        if time_per_unit >= 1e-3:
            return f" {time_per_unit * 1e3:.0f}ms/{unit_name}"
        return f" {time_per_unit * 1e6:.0f}us/{unit_name}"

    def _estimate_step_duration(self, current, now):
        """Seconds per step. The first step (often slow: warm-up) is left out
        of the estimate once later steps are known."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit
