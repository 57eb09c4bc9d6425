"""Whether a process, named by its pid, still exists (kill(2) with signal 0).

The lock files of the embedded Redis, of ``ocs serve`` (preflight) and the
exporter's consumer names record a pid; a holder that no longer exists has
left its lock or its name behind, free to take over.
"""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Does a process ``pid`` exist (one owned by another user counts; a zombie too)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
