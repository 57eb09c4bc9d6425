"""Children that do not outlive their parent (Linux ``PR_SET_PDEATHSIG``, prctl(2)).

The embedded Redis (SIGKILL) and the workers of ``ocs serve --workers N``
(SIGTERM: they drain) are started with :func:`die_with_parent` as their
``preexec_fn``. The kernel sends the signal when the *thread* that forked
the child exits, so start them from a thread that lives as long as they
should. A parent that dies between fork and the prctl call would never
signal: the child checks its parent is still the one that forked it and
exits otherwise.

``prctl`` is looked up in the parent, once: between fork and exec, in a
process that has other threads, the child must not load anything (the
dynamic loader's lock may be held by a thread that does not exist there).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable
from functools import cache
from typing import Any

PR_SET_PDEATHSIG = 1


@cache
def _prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no such call, nothing to arm
        return None


def die_with_parent(signum: int) -> Callable[[], None]:
    """A ``preexec_fn``: ``signum`` to the child when this thread exits."""
    prctl = _prctl()
    parent = os.getpid()

    def arm() -> None:
        if prctl is None:
            return
        with contextlib.suppress(OSError):
            prctl(PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before prctl: nobody would tell us
            os._exit(1)

    return arm
