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

Exceptions (issue 13, item 14) are logged without stack-frame locals (a
frame's locals hold MSISDNs, identity keys, whole requests: one crash was
36 KB with identities in clear), bounded in size (:data:`MAX_FRAMES` per
exception, :data:`MAX_CHAIN` chained exceptions, :data:`MAX_TEXT` characters
per message), and with identity keys in their messages masked like the
identity fields. The same holds for records of the standard ``logging``
module (asyncio's "exception was never retrieved", libraries): they go
through the same chain, so every front end and every library logs crashes
one way.

Tests: :func:`processors` is the chain without its renderer, so a test can
end it with ``structlog.testing.LogCapture`` and see exactly what would be
written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

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


# Bounds of one logged exception: a deep recursion or a long chain stays a few KB.
MAX_FRAMES = 20  # per exception: the first and last 10 frames, and how many were skipped
MAX_CHAIN = 3  # exceptions of a chain (__cause__ / __context__) or of a group
MAX_TEXT = 512  # characters of a message (exc_value, error, a formatted traceback line)
MAX_TRACEBACK = 8192  # characters of a formatted traceback (console output)

# Identities written inside free text: ``e164:336...`` keys, and Identity reprs.
_IDENTITY_IN_TEXT = re.compile(
    r"\b(?P<kind>e164|imsi|sip|nai|private|tel):(?P<value>[^\s'\",;)\]}>]+)"
    r"|(?P<repr>IdentityType\.\w+: '\w+'>, value=)'(?P<repr_value>[^']*)'"
)
_TEXT_KEYS = ("error", "detail")  # free-text fields that often carry an exception's repr


def _mask_match(match: re.Match[str]) -> str:
    if match["kind"]:
        return f"{match['kind']}:{mask(match['value'])}"
    return f"{match['repr']}'{mask(match['repr_value'])}'"


def mask_text(text: str) -> str:
    """Identity keys and Identity reprs inside free text, masked."""
    return _IDENTITY_IN_TEXT.sub(_mask_match, text)


def _bounded(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...[{len(text) - limit} characters]...{text[-(limit // 2) :]}"


class _Exceptions:
    """structlog processor: ``exc_info`` -> ``exception``, without locals, bounded and
    masked: a list of dicts for JSON, a traceback string for the console."""

    def __init__(self, mask_ids: bool, json_out: bool) -> None:
        self._mask = mask_ids
        # JSON: a list of dicts per exception; console: the stdlib's text (no locals).
        self._render = (
            structlog.processors.ExceptionRenderer(
                ExceptionDictTransformer(show_locals=False, max_frames=MAX_FRAMES)
            )
            if json_out
            else structlog.processors.ExceptionRenderer()
        )

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if "exc_info" in event:
            self._render(_, __, event)
            exc = event.get("exception")
            if isinstance(exc, list):
                event["exception"] = self._stacks(exc)
            elif isinstance(exc, str):
                event["exception"] = self._text(exc, MAX_TRACEBACK)
        for key in _TEXT_KEYS:
            value = event.get(key)
            if isinstance(value, str):
                event[key] = self._text(value)
        return event

    def _text(self, text: str, limit: int = MAX_TEXT) -> str:
        return _bounded(mask_text(text) if self._mask else text, limit)

    def _stacks(self, stacks: list[Any]) -> list[Any]:
        kept = [s for s in stacks[:MAX_CHAIN] if isinstance(s, dict)]
        for stack in kept:
            stack["exc_value"] = self._text(str(stack.get("exc_value", "")))
            notes = stack.get("exc_notes") or []
            stack["exc_notes"] = [self._text(str(n)) for n in notes[:MAX_CHAIN]]
            nested = stack.get("exceptions")
            if isinstance(nested, list) and nested:
                stack["exceptions"] = [
                    self._stacks(n) if isinstance(n, list) else n for n in nested[:MAX_CHAIN]
                ]
        if len(stacks) > MAX_CHAIN:
            kept.append({"exc_type": "...", "exc_value": f"{len(stacks) - MAX_CHAIN} more"})
        return kept


def _logger_name(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The stdlib logger's name on records that come from the ``logging`` module."""
    record = event.get("_record")
    if record is not None:
        event.setdefault("logger", record.name)
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
    chain.append(_Exceptions(mask_ids, json_out))
    return chain


def _renderer(json_out: bool, colors: bool) -> Any:
    if json_out:
        return structlog.processors.JSONRenderer()
    # Exceptions arrive formatted (bounded, masked); the default would re-render them
    # with rich, locals included.
    return structlog.dev.ConsoleRenderer(
        colors=colors, exception_formatter=structlog.dev.plain_traceback
    )


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
    chain = processors(mask_ids, json_out)
    renderer = _renderer(json_out, colors=tty)
    structlog.configure(
        processors=[*chain, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_STDERR),
        cache_logger_on_first_use=True,
    )
    _route_stdlib(numeric, chain, renderer)


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` puts on the root logger (replaced, never doubled)."""


def _route_stdlib(level: int, chain: list[Any], renderer: Any) -> None:
    """Records of the ``logging`` module through the same chain and renderer."""
    handler = _StdlibHandler(_STDERR)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_logger_name, *chain],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
