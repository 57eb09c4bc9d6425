"""Structured logging: structlog key-value events, JSON in production.

One event per request at debug, one per session at info (DESIGN.md
"Principles"); request context (session, peer) is bound with contextvars.
Subscriber identities are masked unless configured otherwise: an operator's
logs should not be a subscriber directory.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

IDENTITY_KEYS = frozenset(
    {
        "subscriber",
        "identity",
        "identities",
        "user_name",
        "msisdn",
        "imsi",
        "calling_station_id",
        "nai",
    }
)


def mask(value: str) -> str:
    """Keep enough to correlate, not to identify: ``33612345678 -> 336*****678``."""
    kind, sep, body = value.partition(":")
    if sep and kind in ("e164", "imsi", "sip", "nai", "private"):
        return f"{kind}:{mask(body)}"
    if len(value) <= 4:
        return "*" * len(value)
    keep = max(1, min(3, len(value) // 4))
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def mask_identities(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask the values of identity-bearing keys."""
    for key in IDENTITY_KEYS.intersection(event):
        value = event[key]
        if isinstance(value, str):
            event[key] = mask(value)
        elif isinstance(value, list | tuple):
            event[key] = [mask(str(v)) for v in value]
    return event


def configure(level: str = "info", fmt: str = "auto", mask_ids: bool = True) -> None:
    """Set up structlog (and stdlib logging under it) once per process."""
    json_out = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if mask_ids:
        processors.append(mask_identities)
    processors.append(structlog.processors.format_exc_info)
    processors.append(
        structlog.processors.JSONRenderer()
        if json_out
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
