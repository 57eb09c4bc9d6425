"""Consumer names: unique per process, and telling whether their owner is dead.

A name is ``host:pid:random``. An exporter on the same host whose pid no
longer exists is dead for sure, so its pending entries are taken over at
once (a restart after ``kill -9`` resumes immediately); any other consumer's
entries are taken over only after ``claim_idle_seconds`` without progress.
(Assumes exporters on one host name share one pid namespace.)
"""

from __future__ import annotations

import os
import secrets
import socket

from ocs.processes import pid_alive


def new_consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def staging_token(consumer: str) -> str:
    """A file-name-safe form of a consumer name (``:`` -> ``+``)."""
    return consumer.replace(":", "+").replace("/", "_")


def consumer_of_token(token: str) -> str:
    return token.replace("+", ":")


def is_dead_local(consumer: str) -> bool:
    """True when ``consumer`` belongs to a process of this host that has exited."""
    parts = consumer.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    return pid != os.getpid() and not pid_alive(pid)
