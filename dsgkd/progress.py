"""Progress of the long steps (stand-in builds, teacher-cache builds, the steps of an epoch), shown as a log reader
or a person at a terminal needs it.

On a terminal: a tqdm bar with rate and ETA. Anywhere else (a log file, a Ray worker, CI) a bar's carriage returns
become one unreadable line, so one plain line is printed every 10% or every 30 s, whichever comes first, never a
line per item. `DSGKD_PROGRESS=0` turns both off (a table runs hundreds of fits side by side and says when each is
done), `DSGKD_PROGRESS=lines` forces the plain lines. Everything goes to stderr, as tqdm's does.
"""
from __future__ import annotations

import os
import sys
import time

ENV = "DSGKD_PROGRESS"
LINE_SECONDS = 30.0
LINE_FRACTION = 0.1


def mode() -> str:
    """"off", "lines" or "bar": the environment's choice, else a bar on a terminal and lines elsewhere."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    if value in ("lines", "bar"):
        return value
    return "bar" if sys.stderr.isatty() else "lines"


class Lines:
    """A plain progress line at most every `LINE_FRACTION` of the total or `LINE_SECONDS`, and one at the end."""

    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit = max(int(total), 1), desc, unit
        self.n, self.started = 0, time.monotonic()
        self.last_time, self.last_n = self.started, 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n >= self.total or self.n - self.last_n >= LINE_FRACTION * self.total or now - self.last_time >= LINE_SECONDS:
            self._print(now)

    def _print(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.n / elapsed
        eta = (self.total - self.n) / rate if rate > 0 else float("inf")
        print(f"{self.desc}: {self.n}/{self.total} {self.unit} ({self.n / self.total:.0%}), {rate:.3g} {self.unit}/s, "
              f"{elapsed:.0f} s elapsed, ETA {eta:.0f} s", file=sys.stderr, flush=True)
        self.last_time, self.last_n = now, self.n

    def close(self) -> None:
        if self.n < self.total and self.n > self.last_n:
            self._print(time.monotonic())


class Off:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class Progress:
    """`with Progress(total, "epoch 3", "batches") as bar: ... bar.update()`: a bar, lines or nothing (`mode()`)."""

    def __init__(self, total: int, desc: str, unit: str = "it", *, enabled: bool = True):
        chosen = mode() if enabled else "off"
        if chosen == "bar":
            from tqdm.auto import tqdm

            self.impl = tqdm(total=total, desc=desc, unit=f" {unit}", leave=False, dynamic_ncols=True)
        elif chosen == "lines":
            self.impl = Lines(total, desc, unit)
        else:
            self.impl = Off()

    def update(self, n: int = 1) -> None:
        self.impl.update(n)

    def close(self) -> None:
        self.impl.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
