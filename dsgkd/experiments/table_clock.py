"""A table invocation's wall time, by phase, kept on disk as it goes.

A table on 2 cores outlives a session, and results.json is written only when an invocation finishes, so an
invocation cut off by a session's end used to vanish from the table's time (the negative world of 2026-12-06
reported 88.9 min, its last invocation alone). The clock saves OUT/invocation.json after every phase and every minute; the next
invocation adopts what it finds there as interrupted, and the finished one hands every record to results.json, so
`meta.invocations` sums to the table's real wall time (to the last minute of an interrupted invocation) and says
where it went.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from dsgkd.storage import atomic_write_text

FILE = "invocation.json"


class TableClock:
    """Also saved every `beat` seconds by a daemon thread, so a cut-off invocation counts up to its last minute,
    not its last finished phase (its `seconds` then exceed the sum of its phases by the phase it was in)."""

    def __init__(self, out: Path, record: dict, beat: float = 60.0):
        self.path = Path(out) / FILE
        saved = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else None
        self.interrupted = [*saved["interrupted"], saved["current"] | {"interrupted": True}] if saved else []
        self.record = {**record, "seconds": 0.0, "phases": {}}
        self.started = self.last = time.time()
        self.owner, self.saved = f"{os.getpid()}@{self.started}", False
        self.lock, self.stopped = threading.Lock(), threading.Event()
        self._save()
        threading.Thread(target=self._beat, args=(beat,), daemon=True).start()

    def _beat(self, beat: float) -> None:
        while not self.stopped.wait(beat):
            self._save()

    def lap(self, phase: str) -> None:
        """The time since the last lap goes to `phase` (added, when a phase name comes back)."""
        now = time.time()
        phases = self.record["phases"]
        phases[phase] = round(phases.get(phase, 0.0) + now - self.last, 1)
        self.last = now
        self._save()

    def invocations(self) -> list[dict]:
        """Every interrupted invocation since the last finished one, then this one."""
        self.record["seconds"] = round(time.time() - self.started, 1)
        return [*self.interrupted, self.record]

    def close(self) -> None:
        """After results.json holds the invocations: nothing is left to adopt."""
        self.stopped.set()
        with self.lock:
            self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        with self.lock:
            if self.stopped.is_set() or (self.saved and not self._still_mine()):
                self.stopped.set()  # a later invocation in this process adopted or closed the file
                return
            self.record["seconds"] = round(time.time() - self.started, 1)
            atomic_write_text(self.path, json.dumps({"owner": self.owner, "interrupted": self.interrupted,
                                                     "current": self.record}, indent=1))
            self.saved = True

    def _still_mine(self) -> bool:
        return self.path.is_file() and json.loads(self.path.read_text(encoding="utf-8")).get("owner") == self.owner


def phase_minutes(invocations: list[dict]) -> dict[str, float]:
    """Minutes per phase over every invocation that recorded phases."""
    total: dict[str, float] = {}
    for inv in invocations:
        for phase, seconds in inv.get("phases", {}).items():
            total[phase] = total.get(phase, 0.0) + seconds / 60
    return total
