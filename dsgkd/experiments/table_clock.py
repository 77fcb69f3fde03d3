"""A table invocation's wall time, by phase, kept on disk as it goes.

A table on 2 cores outlives a session, and results.json is written only when an invocation finishes, so an
invocation cut off by a session's end used to vanish from the table's time (the negative world of 2026-12-06
reported 88.9 min, its last invocation alone). The clock saves OUT/invocation.json after every phase; the next
invocation adopts what it finds there as interrupted, and the finished one hands every record to results.json, so
`meta.invocations` sums to the table's real wall time (to the last phase an interrupted invocation completed) and
says where it went.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from dsgkd.storage import atomic_write_text

FILE = "invocation.json"


class TableClock:
    def __init__(self, out: Path, record: dict):
        self.path = Path(out) / FILE
        saved = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else None
        self.interrupted = [*saved["interrupted"], saved["current"] | {"interrupted": True}] if saved else []
        self.record = {**record, "seconds": 0.0, "phases": {}}
        self.started = self.last = time.time()
        self._save()

    def lap(self, phase: str) -> None:
        """The time since the last lap goes to `phase` (added, when a phase name comes back)."""
        now = time.time()
        phases = self.record["phases"]
        phases[phase] = round(phases.get(phase, 0.0) + now - self.last, 1)
        self.record["seconds"] = round(now - self.started, 1)
        self.last = now
        self._save()

    def invocations(self) -> list[dict]:
        """Every interrupted invocation since the last finished one, then this one."""
        self.record["seconds"] = round(time.time() - self.started, 1)
        return [*self.interrupted, self.record]

    def close(self) -> None:
        """After results.json holds the invocations: nothing is left to adopt."""
        self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps({"interrupted": self.interrupted, "current": self.record}, indent=1))


def phase_minutes(invocations: list[dict]) -> dict[str, float]:
    """Minutes per phase over every invocation that recorded phases."""
    total: dict[str, float] = {}
    for inv in invocations:
        for phase, seconds in inv.get("phases", {}).items():
            total[phase] = total.get(phase, 0.0) + seconds / 60
    return total
