"""Why a RADIUS datagram was dropped without an answer (standards §3.7).

Every silent discard has one :class:`DropReason`; the transport counts it per
NAS and logs it at most once per source and interval (:class:`DropLog`) so a
flood of garbage cannot flood the log.
"""

from __future__ import annotations

import enum
from collections import OrderedDict


class DropReason(enum.Enum):
    """One reason per silent discard; the value is the metric label."""

    TOO_SHORT = "too_short"  # fewer than 20 octets received
    BAD_LENGTH = "bad_length"  # Length field < 20 or > 4096 (RFC 2865 §3)
    TRUNCATED = "truncated"  # fewer octets received than Length says
    BAD_ATTRIBUTE = "bad_attribute"  # attribute length < 2 or past the end
    BAD_ATTRIBUTE_VALUE = "bad_attribute_value"  # e.g. a 3-octet integer
    WRONG_CODE = "wrong_code"  # code not served on this port
    UNKNOWN_CLIENT = "unknown_client"  # source address not configured
    BAD_AUTHENTICATOR = "bad_authenticator"  # Request Authenticator mismatch
    BAD_MESSAGE_AUTHENTICATOR = "bad_message_authenticator"
    MISSING_MESSAGE_AUTHENTICATOR = "missing_message_authenticator"  # BlastRADIUS
    PROXY_STATE_WITHOUT_MA = "proxy_state_without_ma"  # limit_proxy_state
    MISSING_STATUS_TYPE = "missing_status_type"
    MISSING_SESSION_ID = "missing_session_id"
    DUPLICATE_IN_PROGRESS = "duplicate_in_progress"  # original still being charged
    STORAGE_UNAVAILABLE = "storage_unavailable"  # no answer so the NAS retries
    INTERNAL_ERROR = "internal_error"  # unexpected failure: no answer, NAS retries
    OVERLOAD = "overload"  # too many requests in flight
    NAS_RESTART_QUEUE_FULL = "nas_restart_queue_full"  # Accounting-On/Off: too many waiting


class RadiusDrop(Exception):
    """The one error the packet layer raises: discard silently, count ``reason``."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class DropLog:
    """Decides whether a drop from a source is logged: once per source per interval,
    saying how many drops from that source were not logged since the last line.

    Sans-IO: the caller passes the clock. Bounded to ``max_sources`` entries so
    spoofed sources cannot grow it without limit.
    """

    def __init__(self, interval: float = 60.0, max_sources: int = 4096) -> None:
        self._interval = interval
        self._max = max_sources
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def should_log(self, source: str, now: float) -> int | None:
        """None: stay quiet. Otherwise log, with the returned count of suppressed drops."""
        last = self._last.get(source)
        if last is not None and now - last[0] < self._interval:
            self._last[source] = (last[0], last[1] + 1)
            return None
        self._last[source] = (now, 0)
        self._last.move_to_end(source)
        while len(self._last) > self._max:
            self._last.popitem(last=False)
        return 0 if last is None else last[1]
