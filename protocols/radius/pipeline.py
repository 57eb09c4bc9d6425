"""The request path of the RADIUS servers, between the socket and the charging API.

``prepare`` (synchronous, no I/O): client by source address, guarded decode
and authentication (:mod:`codec`), duplicate cache. It returns the cached
answer for a retransmission, ``None`` for a drop (counted per client and
reason, logged once per source per interval), or a :class:`Prepared` request.

``process`` (async): the one charging call, then the answer, which is cached
and returned for sending. No answer on StorageUnavailable or an unexpected
error, so the NAS retries (standards §3.4); its cache entry is forgotten so
the retry is processed again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import structlog

from ocs.charging.port import ChargingApi
from ocs.vocabulary.errors import StorageUnavailable
from ocs.vocabulary.types import SessionRef, TerminationCause
from protocols.radius import metrics as m
from protocols.radius.accounting import AccountingMapper, AcctOutcome, AcctResult
from protocols.radius.accounting_record import StatusType, parse_wire
from protocols.radius.authorize import Authorizer
from protocols.radius.clients import ClientTable
from protocols.radius.codec import (
    ACCESS_ACCEPT,
    ACCESS_REQUEST,
    ACCOUNTING_RESPONSE,
    STATUS_SERVER,
    PortKind,
    RadiusRequest,
    decode_request,
    encode_reply,
)
from protocols.radius.drops import DropLog, DropReason, RadiusDrop
from protocols.radius.dupcache import DupKey, DuplicateCache, Lookup
from protocols.radius.sessions import LiveSessions
from protocols.radius.settings import ClientConfig, RadiusConfig

log = structlog.get_logger("ocs.radius")

_CODES = m.CODES  # metric label of each RADIUS code
_LATENCY = tuple(m.LATENCY.child(name) for name in m.CODES)  # per request code

CutOff = Callable[[SessionRef, TerminationCause], None]


class Prepared(NamedTuple):  # immutable; cheaper to build than a frozen dataclass
    request: RadiusRequest
    client: ClientConfig
    source: str
    port: PortKind
    dup_key: DupKey


class Pipeline:
    """Shared by the auth and accounting listeners of one front end."""

    def __init__(
        self,
        cfg: RadiusConfig,
        charging: ChargingApi,
        live: LiveSessions,
        on_cut_off: CutOff,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cfg = cfg
        self._clients = ClientTable(cfg.clients)
        self._dups = DuplicateCache(cfg.duplicate_ttl, cfg.duplicate_max)
        self._droplog = DropLog(cfg.drop_log_interval)
        self._accounting = AccountingMapper(charging, cfg)
        self._authorizer = Authorizer(charging, cfg, live)
        self._live = live
        self._on_cut_off = on_cut_off
        self._clock = clock
        # The per-request debug events go to a logger resolved now, as `ocs serve` has
        # configured it: through the lazy module proxy each call costs ~4 µs even
        # when debug is filtered out. Drops and info events keep the proxy.
        self._debug = log.bind().debug

    @property
    def clients(self) -> ClientTable:
        return self._clients

    @property
    def nas_restarts_waiting(self) -> int:
        """Accounting-On/Off requests waiting for their close."""
        return self._accounting.restarts.waiting

    def close(self) -> None:
        """Stop the work requests left behind (Accounting-On/Off closes in progress)."""
        self._accounting.restarts.stop()

    def drop(self, source: str, nas: str, reason: DropReason, detail: str = "") -> None:
        m.inc(m.DROPS, nas, reason.value)
        suppressed = self._droplog.should_log(source, self._clock())
        if suppressed is not None:
            log.warning(
                "radius_dropped",
                source=source,
                nas=nas,
                reason=reason.value,
                detail=detail,
                suppressed_since_last=suppressed,
            )

    def prepare(self, data: bytes, host: str, port: int, kind: PortKind) -> Prepared | bytes | None:
        client = self._clients.lookup(host)
        if client is None:
            self.drop(host, m.UNKNOWN_NAS, DropReason.UNKNOWN_CLIENT)
            return None
        try:
            req = decode_request(
                data, kind, client.secret_bytes(), client.require_message_authenticator
            )
        except RadiusDrop as exc:
            self.drop(host, client.name, exc.reason, exc.detail)
            return None
        key: DupKey = (host, port, req.identifier, req.authenticator)
        seen = self._dups.begin(key, self._clock())
        if seen is Lookup.PENDING:
            self.drop(host, client.name, DropReason.DUPLICATE_IN_PROGRESS)
            return None
        if isinstance(seen, bytes):
            m.inc(m.DUPLICATES, client.name)
            return seen
        m.inc(m.REQUESTS, client.name, _CODES[req.code])
        return Prepared(req, client, host, kind, key)

    async def process(self, prep: Prepared) -> bytes | None:
        answer: bytes | None = None
        started = time.perf_counter()
        try:
            answer = await self._answer(prep)
        except RadiusDrop as exc:
            self.drop(prep.source, prep.client.name, exc.reason, exc.detail)
        except StorageUnavailable as exc:
            self.drop(prep.source, prep.client.name, DropReason.STORAGE_UNAVAILABLE, repr(exc))
        except Exception as exc:  # never let one request stop the server
            log.exception("radius_internal_error", source=prep.source, error=repr(exc))
            self.drop(prep.source, prep.client.name, DropReason.INTERNAL_ERROR, repr(exc))
        self._dups.complete(prep.dup_key, answer, self._clock())
        if answer is not None:
            m.inc(m.RESPONSES, prep.client.name, _CODES[answer[0]])
        _LATENCY[prep.request.code].observe(time.perf_counter() - started)
        return answer

    async def _answer(self, prep: Prepared) -> bytes:
        req = prep.request
        if req.code == STATUS_SERVER:  # RFC 5997 §3
            code = ACCESS_ACCEPT if prep.port is PortKind.AUTH else ACCOUNTING_RESPONSE
            return encode_reply(req, code)
        received = int(self._clock())
        if req.code == ACCESS_REQUEST:
            return await self._authorise(prep, received)
        return await self._account(prep, received)

    async def _authorise(self, prep: Prepared, received: int) -> bytes:
        ans = await self._authorizer.handle(prep.request.packet, prep.client, prep.source, received)
        m.inc(m.AUTH_OUTCOMES, prep.client.name, ans.reason)
        self._debug("radius_authorised", nas=prep.client.name, reason=ans.reason, code=ans.code)
        if ans.session is not None:
            self._live.seen(ans.session.session_id, ans.session.attributes, None, None)
        return encode_reply(prep.request, ans.code, ans.attributes)

    async def _account(self, prep: Prepared, received: int) -> bytes:
        rec = parse_wire(prep.request.raw, prep.request.first)
        result = await self._accounting.handle(rec, prep.client, prep.source, received)
        m.inc(m.ACCT_OUTCOMES, prep.client.name, m.status_name(rec.status), result.outcome.value)
        self._debug(
            "radius_accounted",
            nas=prep.client.name,
            status=rec.status,
            acct_session_id=rec.session_id,
            outcome=result.outcome.value,
            detail=result.detail,
        )
        if result.outcome is AcctOutcome.REJECTED:
            log.info(
                "radius_accounting_rejected",
                nas=prep.client.name,
                status=rec.status,
                acct_session_id=rec.session_id,
                user_name=rec.user_name or "",  # masked by the logging setup
                error=result.detail,
            )
        self._track(rec.status, rec.counters.total_octets, rec.counters.seconds, result)
        return encode_reply(prep.request, ACCOUNTING_RESPONSE)

    def _track(self, status: int, total: int | None, seconds: int | None, res: AcctResult) -> None:
        if res.session is None:
            return
        if status == StatusType.STOP:
            self._live.forget(res.session.session_id)
        else:
            self._live.seen(res.session.session_id, res.session.attributes, total, seconds)
        if res.cut_off is not None:
            self._on_cut_off(res.session, res.cut_off)
