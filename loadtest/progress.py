"""The live view of a run (rich): sessions, requests, rate, in flight, failures, per process."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

FIELDS = (
    "started",
    "completed",
    "active",
    "answered",
    "in_flight",
    "timeouts",
    "refused",
    "broken",
)


class ProgressView:
    """Aggregates the processes' snapshots and renders them (only on a terminal)."""

    def __init__(self, processes: int, title: str, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.title = title
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.processes = processes
        self.began = time.monotonic()
        self._last = (self.began, 0)
        self.rate = 0.0
        self.live: Live | None = None

    def __enter__(self) -> ProgressView:
        if self.console.is_terminal:
            self.live = Live(self.render(), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(None, None, None)

    def update(self, index: int, snapshot: dict[str, Any]) -> None:
        self.snapshots[index] = snapshot
        now = time.monotonic()
        answered = self.total("answered")
        then, before = self._last
        if now - then >= 1.0:
            self.rate = (answered - before) / (now - then)
            self._last = (now, answered)
        if self.live is not None:
            self.live.update(self.render())

    def total(self, name: str) -> int:
        return sum(int(s.get(name, 0)) for s in self.snapshots.values())

    def render(self) -> Table:
        elapsed = time.monotonic() - self.began
        table = Table(title=f"{self.title}  {elapsed:6.1f} s   {self.rate:,.0f} answers/s")
        table.add_column("process")
        for name in FIELDS:
            table.add_column(name.replace("_", " "), justify="right")
        for index in sorted(self.snapshots):
            snap = self.snapshots[index]
            table.add_row(str(index), *(f"{int(snap.get(f, 0)):,}" for f in FIELDS))
        if len(self.snapshots) > 1:
            table.add_row("all", *(f"{self.total(f):,}" for f in FIELDS), style="bold")
        return table
