"""The Nchf_ConvergedCharging resources (TS 32.291 §6.1.3) on the protocol-neutral charging API.

============================================  ========  =====================  =======
request                                       API call  success                 failure
============================================  ========  =====================  =======
POST {apiRoot}/nchf-convergedcharging/v3/     initiate  201, Location,          4xx/5xx
  chargingdata                                          ChargingDataResponse    Problem
POST .../chargingdata/{ChargingDataRef}/      update    200, ChargingData-      ...
  update                                                Response
POST .../chargingdata/{ChargingDataRef}/      terminate 204                     ...
  release
============================================  ========  =====================  =======

``invocationSequenceNumber`` is the charging API's request key: a repeated
request (a retransmission after a time-out) is answered from the first
answer and charged once. The resource id of a create is a digest of what
names the session (:func:`protocols.nchf.codec.charging_data_ref`), so a
repeated create finds its first answer too. Sessions are owned by
``nchf:<consumer>`` and keep the consumer's ``notifyUri`` as an attribute,
which is where :mod:`protocols.nchf.notify` sends notifications.
Supervision is the core's: a session with no update within its supervision
time is released and recorded ``abandoned``; a later update gets 404.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog

from ocs.charging.port import ChargingApi
from ocs.vocabulary import errors
from ocs.vocabulary.types import SessionRef
from protocols.nchf import codec, problems, schema
from protocols.nchf.config import ConsumerConfig, NchfConfig
from protocols.nchf.metrics import METRICS
from protocols.nchf.problems import PROBLEM_JSON, Cause
from protocols.nchf.transport import Request, Response

log = structlog.get_logger("ocs.nchf")

API_PATH = "/nchf-convergedcharging/v3"
_REF = re.compile(r"[0-9a-f]{24}")  # what charging_data_ref makes
_JSON_TYPES = ("application/json", "application/problem+json")


def _problem(cause: Cause, detail: str = "", invalid: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(cause.status, problems.problem(cause, detail, tuple(invalid)), PROBLEM_JSON)


def _bad(pointer: str, reason: str, cause: str) -> Response:
    """400 naming the attribute (TS 29.571 InvalidParam: a JSON Pointer and why)."""
    return _problem(
        Cause(400, cause, problems.title_of(cause)), f"{pointer}: {reason}", ((pointer, reason),)
    )


class NchfApplication:
    """Routes one HTTP request to the charging API and maps the outcome back."""

    def __init__(self, charging: ChargingApi, cfg: NchfConfig) -> None:
        self.charging = charging
        self.cfg = cfg
        self.root = cfg.api_root
        self.base = (urlsplit(cfg.api_root).path.rstrip("/") if cfg.api_root else "") + API_PATH
        self.failover = "FAILOVER_SUPPORTED" if cfg.session_failover else "FAILOVER_NOT_SUPPORTED"
        self.consumers: Sequence[ConsumerConfig] = cfg.allowed_consumers
        self.failure_handling = cfg.failure_handling.upper() if cfg.failure_handling else None
        self.clock = time.time

    async def handle(self, req: Request) -> Response:
        path = req.path.partition("?")[0]
        op, ref = self._route(path)
        resp = await self._serve(req, path, op, ref)
        METRICS.requests[(op or "other", resp.status)] += 1
        return resp

    async def _serve(self, req: Request, path: str, op: str | None, ref: str | None) -> Response:
        if op is None:
            return _problem(problems.RESOURCE_URI_STRUCTURE_NOT_FOUND, f"no resource {path}")
        if req.method != "POST":
            return Response(
                405,
                problems.problem(problems.Cause(405, "", "Method not allowed"), req.method),
                PROBLEM_JSON,
                (("allow", "POST"),),
            )
        content_type = req.content_type.partition(";")[0].strip().lower()
        if content_type and content_type not in _JSON_TYPES:
            return _problem(problems.Cause(415, "", "Unsupported media type"), content_type)
        try:
            body = json.loads(req.body)
        except (ValueError, UnicodeDecodeError):
            return _problem(problems.INVALID_MSG_FORMAT, "the body is not JSON")
        if not isinstance(body, dict):
            return _problem(problems.INVALID_MSG_FORMAT, "the body is not a JSON object")
        try:
            schema.validate(body)
            parsed = codec.parse_request(
                body, self.cfg.limits.max_units, self.cfg.limits.max_containers
            )
        except (schema.SchemaViolation, codec.BadRequest) as exc:
            return _bad(exc.pointer, exc.reason, exc.cause)
        if op == "create" and body.get("oneTimeEvent"):
            reason = "one-time events (IEC/PEC) are not served: session charging only"
            return _bad("/oneTimeEvent", reason, "OPTIONAL_IE_INCORRECT")
        if not self._allowed(req.peer, body):
            log.info("nchf_consumer_refused", peer=req.peer, consumer=parsed.consumer)
            return _problem(problems.Cause(403, "", "Forbidden"), "consumer not allowed")
        try:
            if op == "create":
                return await self._create(req, body, parsed)
            if ref is None or not _REF.fullmatch(ref):
                raise errors.UnknownSession(ref or "")
            if op == "update":
                return await self._update(ref, parsed)
            return await self._release(ref, parsed)
        except errors.ChargingError as exc:
            cause = problems.for_exception(exc, self.cfg.storage_failure_status)
            log.info("nchf_request_failed", op=op, ref=ref, error=type(exc).__name__)
            return _problem(cause, type(exc).__name__)

    def _route(self, path: str) -> tuple[str | None, str | None]:
        if not path.startswith(self.base):
            return None, None
        rest = path[len(self.base) :]
        if rest == "/chargingdata":
            return "create", None
        parts = rest.split("/")
        if len(parts) == 4 and parts[1] == "chargingdata" and parts[3] in ("update", "release"):
            return parts[3], parts[2]
        return None, None

    def _allowed(self, peer: str, body: dict[str, Any]) -> bool:
        if not self.consumers:
            return True
        nf = body.get("nfConsumerIdentification") or {}
        names = {nf.get("nFName"), nf.get("nFFqdn")}
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            address = None
        for c in self.consumers:
            if c.network is not None and (address is None or address not in c.network):
                continue
            if c.nf_name is not None and c.nf_name not in names:
                continue
            return True
        return False

    def _session(self, ref: str, parsed: codec.NchfRequest, opening: bool) -> SessionRef:
        attrs: tuple[tuple[str, str], ...] = ()
        if opening or parsed.notify_uri is not None:
            attrs = ((codec.A_CONSUMER, parsed.consumer),)
            if parsed.notify_uri is not None:
                attrs += ((codec.A_NOTIFY_URI, parsed.notify_uri),)
        return SessionRef(ref, codec.OWNER_PREFIX + parsed.consumer, attrs)

    async def _create(
        self, req: Request, body: dict[str, Any], parsed: codec.NchfRequest
    ) -> Response:
        if parsed.subscriber is None:
            reason = "is missing: needed to find the account"
            invalid = (("/subscriberIdentifier", reason),)
            return _problem(problems.CHARGING_FAILED, "/subscriberIdentifier " + reason, invalid)
        ref = codec.charging_data_ref(body, parsed.consumer)
        session = self._session(ref, parsed, opening=True)
        answer = await self.charging.initiate(
            session, parsed.subscriber, parsed.services, parsed.request_key
        )
        log.debug("nchf_created", ref=ref, replayed=answer.replayed)
        root = self.root or f"{req.scheme}://{req.authority}"
        location = f"{root}{API_PATH}/chargingdata/{ref}"
        out = codec.response_body(
            answer, parsed, self.clock(), self.failover, self.failure_handling
        )
        return Response(201, out, headers=(("location", location),))

    async def _update(self, ref: str, parsed: codec.NchfRequest) -> Response:
        session = self._session(ref, parsed, opening=False)
        answer = await self.charging.update(session, parsed.request_key, parsed.services)
        return Response(200, codec.response_body(answer, parsed, self.clock()))

    async def _release(self, ref: str, parsed: codec.NchfRequest) -> Response:
        session = self._session(ref, parsed, opening=False)
        await self.charging.terminate(session, parsed.request_key, parsed.services)
        return Response(204, b"")
