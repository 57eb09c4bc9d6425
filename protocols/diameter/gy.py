"""The Gy application (RFC 4006 §5-§6, 3GPP TS 32.299): one CCR -> one charging call -> one CCA.

CCR-I/U/T map to ``initiate``/``update``/``terminate`` with ``request_key`` =
the CC-Request-Number (so the core answers repeats from its record, standards
§2.5); CCR-EVENT maps to ``event`` with Requested-Action. Sessions are owned by
``diameter:<Origin-Host>`` so that pushes (RAR/ASR) and peer-restart cleanup
find their peer. Request-level failures map through
:mod:`protocols.diameter.result_codes`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

import structlog
from diameter.message.avp import Avp

from ocs.charging.port import ChargingApi
from ocs.vocabulary import errors
from ocs.vocabulary.types import (
    ChargingAnswer,
    EventAction,
    EventAnswer,
    ServiceKey,
    ServiceRequest,
    ServiceStatus,
    SessionRef,
)
from protocols.diameter import answers, gy_answer
from protocols.diameter import avps as A
from protocols.diameter.capabilities import PeerInfo
from protocols.diameter.codec import Decoded, Problem, wrap_in_parents
from protocols.diameter.constants import AvpCode, CcRequestType, ResultCode
from protocols.diameter.fastpath import FastCcr, Request, fast_decode, reference
from protocols.diameter.fastpath_cca import CcaEncoder
from protocols.diameter.gy_parse import GyReject, parse_ccr
from protocols.diameter.gy_request import DEFAULT_CONTEXTS, GyRequest, Served
from protocols.diameter.local import LocalNode
from protocols.diameter.message import DEFAULT_LIMITS, Limits
from protocols.diameter.result_codes import for_exception, for_status

log = structlog.get_logger("ocs.diameter.gy")

OWNER_PREFIX = "diameter:"


def owner_of(origin_host: str) -> str:
    return OWNER_PREFIX + origin_host


@dataclass(slots=True)
class GyApplication:
    charging: ChargingApi
    local: LocalNode
    contexts: Sequence[str] = DEFAULT_CONTEXTS
    # 3004 by default: see protocols.diameter.config.DiameterConfig.storage_failure_result_code.
    storage_failure: ResultCode = ResultCode.TOO_BUSY
    check_destination: bool = True
    # RFC 4006 §8.14 / §8.15: sent in CCA-I (and event CCAs) to override the client's
    # own failure handling when it cannot reach us; None sends nothing.
    failure_handling: int | None = None
    direct_debiting_failure_handling: int | None = None
    limits: Limits = DEFAULT_LIMITS
    encoder: CcaEncoder = field(init=False)
    served: Served = field(init=False)
    # (origin host, realm, state id) -> (owner, attributes) of their sessions
    _owners: dict[tuple[str, str, int | None], tuple[str, tuple[tuple[str, str], ...]]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self.encoder = CcaEncoder(self.local)
        self.served = Served.of(
            self.local.origin_host, self.local.origin_realm, self.contexts, self.check_destination
        )

    def fast_request(self, raw: bytes) -> FastCcr | None:
        """The fast path's reading of a CCR when this application serves it as read (the
        check the reference path makes too: :meth:`Served.refusal`), else None: then the
        reference decoder reads it and the reference path answers, refusal included."""
        fast = fast_decode(raw, self.limits)
        if fast is None:
            return None
        req = fast.request
        refused = self.served.refusal(
            fast.destination_host,
            fast.destination_realm,
            fast.context,
            req.request_type,
            bool(req.subscribers),
        )
        return fast if refused is None else None

    async def handle(self, request: Request, peer: PeerInfo) -> bytes:
        """Serve one well-formed CCR; always returns the CCA (or error answer) bytes. A fast
        request was found servable as read; a reference one is checked here."""
        if isinstance(request, FastCcr):
            req = request.request
        else:
            if request.problem is not None:
                return answers.error_answer(request, self.local, request.problem)
            try:
                req = parse_ccr(request, self.served)
            except GyReject as reject:
                return answers.error_answer(request, self.local, reject.problem)
        log.debug(
            "gy_request",
            session=req.session_id,
            type=req.request_type.name,
            number=req.request_number,
            services=len(req.services),
        )
        try:
            if req.request_type is CcRequestType.EVENT:
                msg = reference(request)  # an EVENT is never the fast path's
                return self._event_cca(msg, req, await self._event(req, peer), peer)
            ans = await self._session(req, peer)
        except errors.ChargingError as exc:
            code = for_exception(exc, self.storage_failure)
            log.info(
                "gy_request_failed",
                session=req.session_id,
                error=type(exc).__name__,
                result=int(code),
            )
            problem = Problem(code, detail=type(exc).__name__)
            return answers.error_answer(request, self.local, problem)
        ccfh = self.failure_handling if req.request_type is CcRequestType.INITIAL else None
        if isinstance(request, FastCcr):
            cca = self.encoder.session_cca(request, ans, peer.supports_3gpp, ccfh)
            if cca is not None:
                return cca
        return self._session_cca(reference(request), req, ans, peer, ccfh)

    def _session_ref(self, req: GyRequest, peer: PeerInfo) -> SessionRef:
        state = req.origin_state_id or peer.origin_state_id
        key = (peer.origin_host, peer.origin_realm, state)
        shared = self._owners.get(key)  # owner and attributes: the same for all its CCRs
        if shared is None:
            attrs = [("origin_host", peer.origin_host), ("origin_realm", peer.origin_realm)]
            if state:
                attrs.append(("origin_state_id", str(state)))
            if len(self._owners) >= 1024:
                self._owners.clear()  # bounded whatever the peers send
            shared = self._owners[key] = (owner_of(peer.origin_host), tuple(attrs))
        return SessionRef(req.session_id, *shared)

    def _session(self, req: GyRequest, peer: PeerInfo) -> Awaitable[ChargingAnswer]:
        """The core's call for a CCR-I/U/T (awaited by the caller: no coroutine of ours)."""
        session = self._session_ref(req, peer)
        if req.request_type is CcRequestType.INITIAL:
            return self.charging.initiate(session, req.subscribers, req.services, req.request_key)
        if req.request_type is CcRequestType.UPDATE:
            return self.charging.update(session, req.request_key, req.services)
        return self.charging.terminate(
            session, req.request_key, req.services, req.termination_cause
        )

    async def _event(self, req: GyRequest, peer: PeerInfo) -> EventAnswer:
        service = req.services[0] if req.services else ServiceRequest(ServiceKey())
        units = service.requested
        if not units or units.is_empty():
            units = service.used[0].usage if service.used else units
        return await self.charging.event(
            req.event_id,
            req.subscribers,
            service.service,
            req.requested_action,
            units if units and not units.is_empty() else None,
            owner=owner_of(peer.origin_host),
        )

    def _session_cca(
        self,
        msg: Decoded,
        req: GyRequest,
        ans: ChargingAnswer,
        peer: PeerInfo,
        failure_handling: int | None,
    ) -> bytes:
        tgpp = peer.supports_3gpp
        body = answers.cca_echo(msg)
        failed: list[Avp] = []
        if req.multiple_services:
            code = ResultCode.SUCCESS
            body += gy_answer.msccs(ans.services, tgpp)
            failed = self._rating_failures(msg, [o.status for o in ans.services])
        elif ans.services:
            outcome = ans.services[0]
            code = for_status(outcome.status)
            body += gy_answer.quota_avps(outcome, tgpp)
            if code is ResultCode.RATING_FAILED:
                failed = self._context_avp(msg)
        else:
            code = ResultCode.SUCCESS
        if failure_handling is not None:
            body.append(A.new(AvpCode.CREDIT_CONTROL_FAILURE_HANDLING, failure_handling))
        return answers.answer(msg, self.local, code, body, failed=failed)

    def _event_cca(self, msg: Decoded, req: GyRequest, ev: EventAnswer, peer: PeerInfo) -> bytes:
        code = for_status(ev.status)
        extra: list[Avp] = []
        if (
            ev.action is EventAction.DIRECT_DEBIT
            and ev.units is not None
            and ev.status is ServiceStatus.GRANTED
        ):
            extra.append(gy_answer.gsu(ev.units))
        elif ev.action is EventAction.CHECK_BALANCE:
            extra.append(A.new(AvpCode.CHECK_BALANCE_RESULT, 0 if ev.enough_credit else 1))
        elif ev.action is EventAction.PRICE_ENQUIRY and ev.status is ServiceStatus.GRANTED:
            extra.append(gy_answer.cost_information(ev))
        body = answers.cca_echo(msg)
        if self.direct_debiting_failure_handling is not None:
            ddfh = self.direct_debiting_failure_handling
            body.append(A.new(AvpCode.DIRECT_DEBITING_FAILURE_HANDLING, ddfh))
        if req.multiple_services:
            members = [*extra]
            if ev.service.rating_group is not None:
                members.append(A.new(AvpCode.RATING_GROUP, ev.service.rating_group))
            members.append(A.new(AvpCode.RESULT_CODE, int(code)))
            body.append(A.group(AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL, members))
            failed = self._rating_failures(msg, [ev.status])  # the event's one MSCC
            return answers.answer(msg, self.local, ResultCode.SUCCESS, body, failed=failed)
        body += extra
        failed = self._context_avp(msg) if code is ResultCode.RATING_FAILED else []
        return answers.answer(msg, self.local, code, body, failed=failed)

    @staticmethod
    def _context_avp(msg: Decoded) -> list[Avp]:
        avp = A.find(msg.avps, AvpCode.SERVICE_CONTEXT_ID)
        return [avp] if avp is not None else []

    @staticmethod
    def _rating_failures(msg: Decoded, statuses: Sequence[ServiceStatus]) -> list[Avp]:
        """5031 needs a Failed-AVP (standards §2.8): the MSCC's Rating-Group (else its
        Service-Identifier), in its MSCC; ``statuses`` in the order of the request's MSCCs."""
        out = []
        requested = A.find_all(msg.avps, AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL)
        for status, mscc in zip(statuses, requested, strict=False):
            if status is ServiceStatus.RATING_FAILED:
                key = A.find(A.children(mscc), AvpCode.RATING_GROUP) or A.find(
                    A.children(mscc), AvpCode.SERVICE_IDENTIFIER
                )
                if key is not None:
                    out.append(wrap_in_parents((mscc,), key))
        return out
