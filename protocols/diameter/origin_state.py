"""Our Origin-State-Id and the peers' ones (RFC 6733 §8.16; standards §1.7).

Ours is one value per node start, shared by every worker of the node, and it
grows after every restart: RFC 6733 §8.16 has a peer that sees a higher value
from the same Origin-Host treat us as restarted (sessions lost), so two
workers of one node must never show two values. ``ocs serve`` (or its worker
supervisor) stamps the node's start once (``FrontendContext.node_start``, ns
since the epoch) and hands it to every worker, including one it restarts.

The value is that start in seconds, raised to ``last + 1`` when a state file
under the data directory is configured: the file guards against a clock
stepped backwards and two starts within a second. It holds ``value
node_start`` and is updated under an exclusive lock, so the first worker of
a start moves it forward and the others (or a restarted worker) of the same
start read the same value back. Time alone needs no writable disk and no
Redis (protocols/ never calls it).

Peers': a value higher than the last one we saw from the same Origin-Host
means the peer restarted and its older sessions are dead; 0 or no AVP allows
no inference. Bounded whatever peers send: at most :data:`MAX_PEERS` hosts
(the least recently seen go first, in memory and in the file), each under a
key of at most 255 characters (a longer Origin-Host, which no FQDN is, is kept
under its digest). A peer forgotten that way is not known to restart:
its older sessions are then released by the core's supervision timer.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

NS = 1_000_000_000
MAX_PEERS = 4096  # peers' Origin-State-Ids kept (about 1.5 MB at most)
MAX_HOST = 255  # an FQDN's length (RFC 1035): the longest Origin-Host kept as is


def next_origin_state_id(
    state_file: Path | None = None, now: float | None = None, node_start: int | None = None
) -> int:
    """Our Origin-State-Id for the node start ``node_start`` (ns since the epoch).

    Without ``node_start`` every call is a start of its own (a process alone).
    """
    if now is None:
        now = node_start / NS if node_start is not None else time.time()
    value = int(now) & 0xFFFFFFFF
    if state_file is None:
        return value
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with open(state_file.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        last, start = _read(state_file)
        if node_start is not None and start == node_start:
            return last  # another worker of this node start chose it
        value = max(value, last + 1) & 0xFFFFFFFF
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(f"{value} {node_start or 0}\n")
        os.replace(tmp, state_file)
    return value


def _read(state_file: Path) -> tuple[int, int | None]:
    """(last value, the node start that chose it); (0, None) when unreadable."""
    try:
        fields = state_file.read_text().split()
        return int(fields[0]), (int(fields[1]) if len(fields) > 1 else None)
    except (OSError, ValueError, IndexError):
        return 0, None


def _key(origin_host: str) -> str:
    """The host itself, or a fixed-size digest of one longer than any FQDN."""
    if len(origin_host) <= MAX_HOST:
        return origin_host
    return "#" + hashlib.sha256(origin_host.encode("utf-8", "surrogatepass")).hexdigest()


def _bounded(seen: dict[str, int]) -> dict[str, int]:
    """Keep the ``MAX_PEERS`` most recently seen (insertion order is recency), in place."""
    while len(seen) > MAX_PEERS:
        del seen[next(iter(seen))]
    return seen


class PeerRestarts:
    """Last Origin-State-Id seen per peer; optionally kept in a JSON file across our
    restarts. At most :data:`MAX_PEERS` peers, the least recently seen forgotten first."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._file = state_file
        self._seen: dict[str, int] = self._load()

    def __len__(self) -> int:
        return len(self._seen)

    def observe(self, origin_host: str, value: int) -> bool:
        """Record a value; True when it is higher than the one seen before (a restart)."""
        if not value:
            return False
        key = _key(origin_host)
        if key not in self._seen and self._file is not None:
            self._seen.update(self._load())  # another worker (or our last run) may know it
        last = self._seen.pop(key, None)
        self._seen[key] = max(value, last or 0)  # now the most recently seen
        _bounded(self._seen)
        if last == value:
            return False
        self._save(key)
        return last is not None and value > last

    def _load(self) -> dict[str, int]:
        if self._file is None:
            return {}
        try:
            loaded = json.loads(self._file.read_text())
            return _bounded({str(k): int(v) for k, v in loaded.items()})
        except (OSError, ValueError, AttributeError):
            return {}

    def _save(self, key: str) -> None:
        """Read-merge-write under a lock: workers share the file."""
        if self._file is None:
            return
        self._file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._file.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            merged = self._load()
            value = max(merged.pop(key, 0), self._seen[key])
            merged[key] = value  # last: the most recently seen
            tmp = self._file.with_suffix(".tmp")
            tmp.write_text(json.dumps(_bounded(merged)))
            os.replace(tmp, self._file)
