"""Structured logging: structlog key-value events, JSON in production.

One event per request at debug, one per session at info (DESIGN.md
"Principles"); request context (session, peer) is bound with
``structlog.contextvars.bind_contextvars`` and merged into every event.
Output is JSON lines on stderr, or a readable console rendering when stderr
is a terminal (``logging.format: auto``).

Subscriber identities are masked unless configured otherwise
(``logging.mask_identities``): an operator's logs should not be a subscriber
directory. The values of identity-bearing keys (:data:`IDENTITY_KEYS`) keep
a short prefix and suffix, enough to correlate two events, not to identify
anyone: ``33612345678 -> 3361*****78``; ``e164:33612345678 ->
e164:3361*****78``; a NAI keeps its realm (``alice@isp.example ->
al**e@isp.example``).

Tests: :func:`processors` is the chain without its renderer, so a test can
end it with ``structlog.testing.LogCapture`` and see exactly what would be
written.
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
        "username",
        "msisdn",
        "imsi",
        "nai",
        "sip_uri",
        "subscription_id",
        "calling_station_id",
    }
)
# ``type:value`` forms of ocs.vocabulary.types.Identity.key() (and tel: URIs).
_IDENTITY_KINDS = frozenset({"e164", "imsi", "sip", "nai", "private", "tel"})


def mask(value: str) -> str:
    """Keep enough to correlate, not to identify: ``33612345678 -> 3361*****78``."""
    kind, sep, body = value.partition(":")
    if sep and kind in _IDENTITY_KINDS:
        return f"{kind}:{mask(body)}"
    local, at, realm = value.rpartition("@")
    if at and local:
        return f"{mask(local)}@{realm}"  # the realm names an operator, not a person
    if len(value) <= 4:
        return "*" * len(value)
    head, tail = min(4, (len(value) + 1) // 3), min(2, len(value) // 4)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def _mask_any(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_any(v) for v in value]
    key = getattr(value, "key", None)  # ocs.vocabulary.types.Identity
    return mask(key() if callable(key) else str(value))


def mask_identities(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask the values of identity-bearing keys."""
    for key in IDENTITY_KEYS.intersection(event):
        event[key] = _mask_any(event[key])
    return event


def processors(mask_ids: bool = True, json_out: bool = True) -> list[Any]:
    """The processor chain before the renderer."""
    chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if mask_ids:
        chain.append(mask_identities)
    if json_out:  # the console renderer formats exceptions itself
        chain.append(structlog.processors.dict_tracebacks)
    return chain


def _renderer(json_out: bool, colors: bool) -> Any:
    if json_out:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=colors)


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now, not the object it was at configure time.

    A test harness (click's CliRunner, pytest's capsys) swaps and later closes
    sys.stderr; loggers cached while it was swapped must not keep writing to
    the closed stream.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR: Any = _CurrentStderr()


def configure(level: str = "info", fmt: str = "auto", mask_ids: bool = True) -> None:
    """Set up structlog (and stdlib logging under it) for this process, on stderr.

    ``fmt``: ``json``, ``console``, or ``auto`` (console when stderr is a
    terminal, JSON otherwise). Loggers are cached on first use (speed on the
    request path), so configure before logging.
    """
    tty = sys.stderr.isatty()
    json_out = fmt == "json" or (fmt == "auto" and not tty)
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[*processors(mask_ids, json_out), _renderer(json_out, colors=tty)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_STDERR),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=numeric, stream=_STDERR, format="%(levelname)s %(name)s %(message)s")
