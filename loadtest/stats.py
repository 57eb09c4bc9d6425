"""What a generator process measured: latencies, outcomes, a per-second series, its own CPU.

Latencies are microseconds from the moment a request is queued for the
socket to the moment its answer is read, in one :class:`Histogram` per
(command, result) pair and one per second of the run. Every process keeps
its own :class:`Stats`; the parent merges them (all counts add up).
"""

from __future__ import annotations

import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loadtest.histogram import Histogram

# Result reported for a request that got no answer in time, or lost its connection.
TIMEOUT = "timeout"
DISCONNECTED = "disconnected"


def cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


@dataclass
class Second:
    """One second of the run: answers (all commands), failures, their latencies."""

    answered: int = 0
    failed: int = 0  # timeouts, disconnections and non-success results
    latency: Histogram = field(default_factory=Histogram)


@dataclass
class Stats:
    """Everything one process (or, merged, the whole run) measured."""

    latency: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    seconds: dict[int, Second] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    mscc_results: Counter[str] = field(default_factory=Counter)
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    wall: float = 0.0  # seconds from the first request to the last answer

    def answer(self, command: str, result: str, micros: int, second: int, ok: bool) -> None:
        key = (command, result)
        hist = self.latency.get(key)
        if hist is None:
            hist = self.latency[key] = Histogram()
        hist.record(micros)
        sec = self.seconds.get(second)
        if sec is None:
            sec = self.seconds[second] = Second()
        sec.answered += 1
        sec.latency.record(micros)
        if not ok:
            sec.failed += 1

    def failure(self, command: str, result: str, second: int) -> None:
        """A request that got no answer (timeout, connection lost)."""
        self.counters[f"{command} {result}"] += 1
        self.counters[result] += 1
        sec = self.seconds.get(second)
        if sec is None:
            sec = self.seconds[second] = Second()
        sec.failed += 1

    def merge(self, other: Stats) -> None:
        for key, hist in other.latency.items():
            self.latency.setdefault(key, Histogram()).merge(hist)
        for idx, sec in other.seconds.items():
            mine = self.seconds.setdefault(idx, Second())
            mine.answered += sec.answered
            mine.failed += sec.failed
            mine.latency.merge(sec.latency)
        self.counters.update(other.counters)
        self.mscc_results.update(other.mscc_results)
        self.cpu_user += other.cpu_user
        self.cpu_system += other.cpu_system
        self.wall = max(self.wall, other.wall)

    @property
    def answered(self) -> int:
        return sum(h.count for h in self.latency.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency": [
                {"command": c, "result": r, "histogram": h.to_dict()}
                for (c, r), h in sorted(self.latency.items())
            ],
            "seconds": {
                str(i): {"answered": s.answered, "failed": s.failed, "latency": s.latency.to_dict()}
                for i, s in sorted(self.seconds.items())
            },
            "counters": dict(self.counters),
            "mscc_results": dict(self.mscc_results),
            "cpu_user": self.cpu_user,
            "cpu_system": self.cpu_system,
            "wall": self.wall,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stats:
        st = cls()
        for row in data.get("latency", []):
            st.latency[(row["command"], row["result"])] = Histogram.from_dict(row["histogram"])
        for idx, sec in data.get("seconds", {}).items():
            st.seconds[int(idx)] = Second(
                int(sec["answered"]), int(sec["failed"]), Histogram.from_dict(sec["latency"])
            )
        st.counters = Counter({str(k): int(v) for k, v in data.get("counters", {}).items()})
        st.mscc_results = Counter({str(k): int(v) for k, v in data.get("mscc_results", {}).items()})
        st.cpu_user = float(data.get("cpu_user", 0.0))
        st.cpu_system = float(data.get("cpu_system", 0.0))
        st.wall = float(data.get("wall", 0.0))
        return st
