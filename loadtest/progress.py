"""The live view of a run (rich): offered vs achieved rate, live p50/p99, failures, time left.

Each generator process sends a snapshot twice a second: its counters, the
failures so far, and the latency histograms of its last complete seconds.
The view merges the newest second that every process has completed, so the
live p50/p99 are of the same second across processes, and shows per
process counters below. Rendered only on a terminal.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from loadtest.histogram import Histogram, merged
from loadtest.spec import LoadSpec, Model

FIELDS = (
    "started",
    "completed",
    "active",
    "answered",
    "in_flight",
    "failed",
    "timeouts",
    "refused",
    "broken",
)


def latest_second(snapshots: dict[int, dict[str, Any]]) -> tuple[int, Histogram] | None:
    """The newest second every process reported complete, and its merged latency."""
    recent = [snap.get("recent") or {} for snap in snapshots.values()]
    if not recent or not all(recent):
        return None
    common = set.intersection(*(set(r) for r in recent))
    if not common:
        return None
    second = max(common, key=int)
    return int(second), merged(Histogram.from_dict(r[second]) for r in recent)


class ProgressView:
    """Aggregates the processes' snapshots and renders them (only on a terminal)."""

    def __init__(
        self,
        processes: int,
        title: str,
        console: Console | None = None,
        spec: LoadSpec | None = None,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.title = title
        self.spec = spec
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

    def offered(self) -> str:
        spec = self.spec
        if spec is None:
            return "offered ?"
        if spec.model is Model.OPEN:
            return f"offered {spec.rate:,.0f}/s"
        return f"closed loop, {spec.concurrency:,} sessions"

    def time_left(self, elapsed: float) -> str:
        spec = self.spec
        if spec is None:
            return f"{elapsed:6.1f} s"
        if elapsed < spec.duration:
            return f"{elapsed:6.1f} s of {spec.duration:g} s, {spec.duration - elapsed:5.1f} s left"
        return f"{elapsed:6.1f} s: draining open sessions (at most {spec.drain:g} s)"

    def headline(self) -> Text:
        elapsed = time.monotonic() - self.began
        latest = latest_second(self.snapshots)
        if latest is None:
            live = "p50 -, p99 -"
        else:
            second, hist = latest
            live = (
                f"p50 {hist.percentile(50) / 1000:.2f} ms, p99 {hist.percentile(99) / 1000:.2f} ms"
                f" (second {second})"
            )
        failed = self.total("failed")
        text = Text()
        text.append(f"{self.title}  {self.time_left(elapsed)}\n", style="bold")
        text.append(f"{self.offered()}, achieved {self.rate:,.0f} answers/s   {live}   ")
        text.append(
            f"failures {failed:,} (timeouts {self.total('timeouts'):,})",
            style="red" if failed else "",
        )
        return text

    def render(self) -> Group:
        table = Table()
        table.add_column("process")
        for name in FIELDS:
            table.add_column(name.replace("_", " "), justify="right")
        for index in sorted(self.snapshots):
            snap = self.snapshots[index]
            table.add_row(str(index), *(f"{int(snap.get(f, 0)):,}" for f in FIELDS))
        if len(self.snapshots) > 1:
            table.add_row("all", *(f"{self.total(f):,}" for f in FIELDS), style="bold")
        return Group(self.headline(), table)
