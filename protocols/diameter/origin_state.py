"""Our Origin-State-Id and the peers' ones (RFC 6733 §8.16; standards §1.7).

Ours must grow after every restart. Choice: seconds since the Unix epoch at
start, raised to ``last + 1`` when a state file under the data directory is
configured. Time alone needs no writable disk and no Redis (protocols/ never
calls it) and gives every worker started together the same value; the file
guards against a clock stepped backwards and against two restarts within a
second. The file is updated under an exclusive lock so workers starting at
once still move it forward.

Peers': a value higher than the last one we saw from the same Origin-Host
means the peer restarted and its older sessions are dead; 0 or no AVP allows
no inference.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path


def next_origin_state_id(state_file: Path | None = None, now: float | None = None) -> int:
    value = int(time.time() if now is None else now) & 0xFFFFFFFF
    if state_file is None:
        return value
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with open(state_file.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            last = int(state_file.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            last = 0
        value = max(value, last + 1) & 0xFFFFFFFF
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(f"{value}\n")
        os.replace(tmp, state_file)
    return value


class PeerRestarts:
    """Last Origin-State-Id seen per peer; optionally kept in a JSON file across our restarts."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._file = state_file
        self._seen: dict[str, int] = self._load()

    def observe(self, origin_host: str, value: int) -> bool:
        """Record a value; True when it is higher than the one seen before (a restart)."""
        if not value:
            return False
        if origin_host not in self._seen and self._file is not None:
            self._seen.update(self._load())  # another worker (or our last run) may know it
        last = self._seen.get(origin_host)
        if last == value:
            return False
        self._seen[origin_host] = max(value, last or 0)
        self._save(origin_host)
        return last is not None and value > last

    def _load(self) -> dict[str, int]:
        if self._file is None:
            return {}
        try:
            loaded = json.loads(self._file.read_text())
            return {str(k): int(v) for k, v in loaded.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _save(self, origin_host: str) -> None:
        """Read-merge-write under a lock: workers share the file."""
        if self._file is None:
            return
        self._file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._file.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            merged = self._load()
            merged[origin_host] = max(merged.get(origin_host, 0), self._seen[origin_host])
            tmp = self._file.with_suffix(".tmp")
            tmp.write_text(json.dumps(merged, sort_keys=True))
            os.replace(tmp, self._file)
