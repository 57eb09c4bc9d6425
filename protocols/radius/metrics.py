"""Prometheus metrics of the RADIUS front end.

Labelled by configured client name (``nas``), not by source address, so the
label set stays bounded by the configuration; sources matching no client are
counted under ``nas="unknown"``. Packet codes and Acct-Status-Types are
labelled by name (``code="accounting_response"``, ``status="interim"``).

:func:`inc` is how the request path counts: ``Counter.labels()`` costs a few
µs per call (label validation, a lock), so the labelled children are looked up
once and kept (a request counts three). The cache is bounded: a NAS sending random status
values cannot grow it without limit (the children themselves stay in
prometheus-client, as they always did).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from ocs.metrics import LATENCY_BUCKETS, FastHistograms, registered

UNKNOWN_NAS = "unknown"

# Label values are names (Prometheus conventions): the packet code and the
# Acct-Status-Type as words; anything else one "other" (a NAS picks them freely).
CODE_NAMES = {
    1: "access_request",
    2: "access_accept",
    3: "access_reject",
    4: "accounting_request",
    5: "accounting_response",
    11: "access_challenge",
    12: "status_server",
    40: "disconnect_request",
    41: "disconnect_ack",
    42: "disconnect_nak",
    43: "coa_request",
    44: "coa_ack",
    45: "coa_nak",
}
CODES = tuple(CODE_NAMES.get(code, "other") for code in range(256))  # label of each code
STATUS_NAMES = {1: "start", 2: "stop", 3: "interim", 7: "accounting_on", 8: "accounting_off"}


def status_name(status: int) -> str:
    """The ``status`` label of an Acct-Status-Type (RFC 2866 §5.1)."""
    return STATUS_NAMES.get(status, "other")


REQUESTS = Counter(
    "ocs_radius_requests", "RADIUS requests accepted for processing", ["nas", "code"]
)
RESPONSES = Counter("ocs_radius_responses", "RADIUS responses sent", ["nas", "code"])
DROPS = Counter("ocs_radius_drops", "RADIUS datagrams dropped without answer", ["nas", "reason"])
DUPLICATES = Counter(
    "ocs_radius_duplicates", "Retransmissions answered from the duplicate cache", ["nas"]
)
ACCT_OUTCOMES = Counter(
    "ocs_radius_accounting", "Accounting-Requests by outcome", ["nas", "status", "outcome"]
)
AUTH_OUTCOMES = Counter("ocs_radius_authorisations", "Access-Request outcomes", ["nas", "reason"])
DAE_SENT = Counter("ocs_radius_dae_sent", "CoA/Disconnect requests sent", ["nas", "kind"])
DAE_ACK = Counter("ocs_radius_dae_ack", "CoA/Disconnect ACKs received", ["nas", "kind"])
DAE_NAK = Counter(
    "ocs_radius_dae_nak", "CoA/Disconnect NAKs received", ["nas", "kind", "error_cause"]
)
DAE_FAILED = Counter(
    "ocs_radius_dae_failed",
    "CoA/Disconnect pushes that could not be sent (reason: no_target, error)",
    ["nas", "kind", "reason"],
)
DAE_SUPPRESSED = Counter(
    "ocs_radius_dae_suppressed",
    "CoA/Disconnect requests not sent because radius.dae.enabled is false",
    ["nas", "kind"],
)
DAE_TIMEOUTS = Counter(
    "ocs_radius_dae_timeouts", "CoA/Disconnect requests never answered", ["nas", "kind"]
)

# Accounting-On/Off queue (protocols/radius/restarts.py): not labelled per NAS, whose
# key comes from the packet (NAS-IP-Address / NAS-Identifier).
NAS_RESTART_WAITING = Gauge(
    "ocs_radius_nas_restart_waiting", "Accounting-On/Off requests waiting for their close"
)
NAS_RESTART_CLOSES = Counter(
    "ocs_radius_nas_restart_closes", "Closes of a NAS's sessions run for Accounting-On/Off"
)
NAS_RESTART_REQUESTS = Counter(
    "ocs_radius_nas_restart_requests", "Accounting-On/Off requests answered by those closes"
)
NAS_RESTART_SESSIONS = Counter(
    "ocs_radius_nas_restart_sessions", "Sessions closed by Accounting-On/Off"
)
# Time from taking a request up to its answer (or drop), per request code; plain
# ints on the request path like Diameter's (ocs.metrics.FastHistograms).
LATENCY = registered(
    FastHistograms(
        "ocs_radius_request_seconds",
        "Time from a request's processing start to its answer",
        ("code",),
        LATENCY_BUCKETS,
    )
)
NAS_RESTART_SECONDS = Histogram(
    "ocs_radius_nas_restart_seconds",
    "Time one close of a NAS's sessions took",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
)

_CHILDREN_MAX = 4096
_children: dict[tuple[Counter, tuple[str, ...]], Any] = {}


def inc(counter: Counter, *labels: str) -> None:
    """``counter.labels(*labels).inc()``, with the child looked up once."""
    key = (counter, labels)
    child = _children.get(key)
    if child is None:
        if len(_children) >= _CHILDREN_MAX:
            _children.clear()
        child = _children[key] = counter.labels(*labels)
    child.inc()
