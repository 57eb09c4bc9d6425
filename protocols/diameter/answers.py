"""Answer and request builders (RFC 6733 §6.2, §7.2; standards §1.2, §1.6).

Every answer: the request's Hop-by-Hop and End-to-End ids, R cleared, the P bit
copied, Session-Id first when the request had one, our Origin-Host/Realm,
every Proxy-Info in order, never Destination-Host/Realm. 3xxx answers carry the
E bit and the generic grammar; 5xxx answers use the command's own answer (a CCA
echoes Auth-Application-Id, CC-Request-Type and CC-Request-Number).
"""

from __future__ import annotations

from collections.abc import Sequence

from diameter.message import Message, MessageHeader
from diameter.message.avp import Avp

from protocols.diameter import avps as A
from protocols.diameter.codec import Decoded, Problem
from protocols.diameter.constants import (
    APP_CREDIT_CONTROL,
    FLAG_ERROR,
    FLAG_PROXYABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMIT,
    VERSION,
    AvpCode,
    Command,
    ResultCode,
)
from protocols.diameter.fastpath import Request, reference
from protocols.diameter.local import LocalNode
from protocols.diameter.message import Header


def encode(header: MessageHeader, avps: Sequence[Avp]) -> bytes:
    return bytes(Message(header, list(avps)).as_bytes())


def answer_header(req: Header, error: bool = False) -> MessageHeader:
    flags = (req.flags & FLAG_PROXYABLE) | (FLAG_ERROR if error else 0)
    return MessageHeader(
        VERSION,
        0,
        flags,
        req.command_code,
        req.application_id,
        req.hop_by_hop,
        req.end_to_end,
    )


def answer(
    req: Decoded,
    local: LocalNode,
    result_code: int,
    body: Sequence[Avp] = (),
    *,
    error_bit: bool = False,
    failed: Sequence[Avp] = (),
    error_message: str | None = None,
) -> bytes:
    """Any answer: Session-Id first, Result-Code, our identity, body, Failed-AVP, Proxy-Info."""
    out: list[Avp] = []
    session = A.find(req.avps, AvpCode.SESSION_ID)
    if session is not None:
        out.append(session)
    out.append(A.new(AvpCode.RESULT_CODE, int(result_code)))
    out.extend(A.identity_avps(local.origin_host, local.origin_realm))
    out.extend(body)
    if error_message:
        out.append(A.new(AvpCode.ERROR_MESSAGE, error_message[:200], mandatory=False))
    if failed:
        out.append(A.group(AvpCode.FAILED_AVP, failed))
    out.extend(A.find_all(req.avps, AvpCode.PROXY_INFO))
    return encode(answer_header(req.header, error_bit), out)


def capabilities(local: LocalNode) -> list[Avp]:
    """Our CER/CEA capability AVPs (RFC 6733 §5.3.1; standards §1.3)."""
    out = [A.new(AvpCode.HOST_IP_ADDRESS, ip) for ip in local.host_ip_addresses]
    out.append(A.new(AvpCode.VENDOR_ID, local.vendor_id))
    out.append(A.new(AvpCode.PRODUCT_NAME, local.product_name, mandatory=False))
    out.append(A.new(AvpCode.ORIGIN_STATE_ID, local.origin_state_id))
    out.extend(A.new(AvpCode.SUPPORTED_VENDOR_ID, v) for v in local.supported_vendor_ids)
    out.extend(A.new(AvpCode.AUTH_APPLICATION_ID, a) for a in local.auth_application_ids)
    out.append(A.new(AvpCode.FIRMWARE_REVISION, local.firmware_revision, mandatory=False))
    return out


def cea(
    req: Decoded,
    local: LocalNode,
    result_code: int,
    *,
    error_bit: bool = False,
    failed: Sequence[Avp] = (),
    error_message: str | None = None,
) -> bytes:
    body = capabilities(local)
    return answer(
        req,
        local,
        result_code,
        body,
        error_bit=error_bit,
        failed=failed,
        error_message=error_message,
    )


def dwa(
    req: Decoded,
    local: LocalNode,
    result_code: int = ResultCode.SUCCESS,
    *,
    failed: Sequence[Avp] = (),
    error_message: str | None = None,
) -> bytes:
    body = [A.new(AvpCode.ORIGIN_STATE_ID, local.origin_state_id)]
    return answer(req, local, result_code, body, failed=failed, error_message=error_message)


def dpa(req: Decoded, local: LocalNode, result_code: int = ResultCode.SUCCESS) -> bytes:
    return answer(req, local, result_code)


def cca_echo(req: Decoded) -> list[Avp]:
    """What every CCA repeats from its CCR (RFC 4006 §3.2)."""
    out = [A.new(AvpCode.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL)]
    for code in (AvpCode.CC_REQUEST_TYPE, AvpCode.CC_REQUEST_NUMBER):
        avp = A.find(req.avps, code)
        if avp is not None:
            out.append(avp)
    return out


def error_answer(request: Request, local: LocalNode, problem: Problem) -> bytes:
    """The answer to a request the guarded decoder, the application or a limit refused
    (whichever decoder read it: these builders need the reference decoding's AVPs)."""
    req = reference(request)
    code = problem.result_code
    failed, message = problem.failed_avps, problem.detail or None
    if code.is_protocol_error:
        body = [A.new(AvpCode.ORIGIN_STATE_ID, local.origin_state_id)]
        return answer(req, local, code, body, error_bit=True, failed=failed, error_message=message)
    cmd, app = req.header.command_code, req.header.application_id
    if cmd == Command.CAPABILITIES_EXCHANGE:
        return cea(req, local, code, failed=failed, error_message=message)
    if cmd == Command.DEVICE_WATCHDOG:
        return dwa(req, local, code, failed=failed, error_message=message)
    body = cca_echo(req) if (cmd, app) == (Command.CREDIT_CONTROL, APP_CREDIT_CONTROL) else []
    return answer(req, local, code, body, failed=failed, error_message=message)


def framing_error_answer(raw_header: bytes, local: LocalNode) -> bytes:
    """5015 to a request whose length broke the framing (standards §1.8); then we close."""
    header = Header.parse(raw_header)
    req = Decoded(header, [], None, raw_header)
    return answer(
        req, local, ResultCode.INVALID_MESSAGE_LENGTH, error_message="invalid message length"
    )


def request(
    command: int,
    application_id: int,
    hop_by_hop: int,
    end_to_end: int,
    avps: Sequence[Avp],
    *,
    proxyable: bool = False,
    retransmit: bool = False,
) -> bytes:
    """A request of ours (DWR, DPR, RAR, ASR)."""
    flags = FLAG_REQUEST | (FLAG_PROXYABLE if proxyable else 0)
    flags |= FLAG_RETRANSMIT if retransmit else 0
    header = MessageHeader(VERSION, 0, flags, command, application_id, hop_by_hop, end_to_end)
    return encode(header, avps)
