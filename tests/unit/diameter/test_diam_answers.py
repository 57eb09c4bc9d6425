"""Answer builders (standards §1.2 every answer, §1.3 CEA, §1.6 error answers).

Answers are read back with python-diameter's own decoder (Message.from_bytes).
"""

from __future__ import annotations

from diameter.message import Message

from protocols.diameter import answers
from protocols.diameter.codec import decode
from protocols.diameter.local import LocalNode
from tests.unit.diameter.diam_wire import ccr, cer, dwr, grouped, message, u32, utf8

LOCAL = LocalNode("ocs.example", "example", origin_state_id=77)


def _read(data: bytes) -> Message:
    return Message.from_bytes(data, plain_msg=True)


def _codes(msg: Message) -> list[int]:
    return [a.code for a in msg.avps]


def _value(msg: Message, code: int) -> object:
    return next(a.value for a in msg.avps if a.code == code)


PROXY_1 = grouped(284, utf8(280, "proxy1"), utf8(33, "state1"))
PROXY_2 = grouped(284, utf8(280, "proxy2"), utf8(33, "state2"))


def test_every_answer_rules() -> None:
    """standards §1.2: ids, R cleared, P copied, Session-Id first, Proxy-Info order, no Dest-*."""
    req = decode(ccr(PROXY_1, PROXY_2, hbh=0xAABB, e2e=0xCCDD))
    out = _read(answers.answer(req, LOCAL, 2001, answers.cca_echo(req)))
    h = out.header
    assert (h.hop_by_hop_identifier, h.end_to_end_identifier) == (0xAABB, 0xCCDD)
    assert not h.is_request
    assert h.is_proxyable
    assert not h.is_error
    codes = _codes(out)
    assert codes[0] == 263
    assert 293 not in codes
    assert 283 not in codes
    proxies = [a for a in out.avps if a.code == 284]
    assert [p.value[0].value for p in proxies] == [b"proxy1", b"proxy2"]
    assert _value(out, 264) == b"ocs.example"
    assert _value(out, 296) == b"example"


def test_p_bit_not_invented() -> None:
    """standards §1.2: a request without P gets an answer without P."""
    req = decode(ccr(flags=0x80))
    assert not _read(answers.answer(req, LOCAL, 2001)).header.is_proxyable


def test_cea_capabilities() -> None:
    """standards §1.3: CEA capabilities; Product-Name/Firmware M=0; app 4; SVI 10415."""
    out = _read(answers.cea(decode(cer()), LOCAL, 2001))
    by_code = {a.code: a for a in out.avps}
    for code in (268, 264, 296, 257, 266, 269, 278, 265, 258, 267):
        assert code in by_code
    assert not by_code[269].is_mandatory
    assert not by_code[267].is_mandatory
    assert by_code[258].value == 4
    assert by_code[265].value == 10415
    assert by_code[278].value == 77


def test_protocol_error_uses_e_bit_and_generic_grammar() -> None:
    """standards §1.6: 3xxx only with E = 1, generic grammar with Origin-State-Id."""
    req = decode(message(271, utf8(263, "s1"), app=4))
    assert req.problem is not None
    out = _read(answers.error_answer(req, LOCAL, req.problem))
    assert out.header.is_error
    assert _value(out, 268) == 3001
    assert _codes(out)[0] == 263
    assert 278 in _codes(out)


def test_permanent_failure_in_cca_shape_without_e_bit() -> None:
    """standards §1.6: 5xxx with E = 0; the CCA echoes app id, Type, Number; Failed-AVP."""
    req = decode(ccr(u32(415, 3)))
    assert req.problem is not None
    out = _read(answers.error_answer(req, LOCAL, req.problem))
    assert not out.header.is_error
    assert _value(out, 268) == 5009
    assert _value(out, 258) == 4
    assert _value(out, 416) == 1
    assert _value(out, 415) == 0
    failed = next(a for a in out.avps if a.code == 279)
    assert failed.value[0].code == 415


def test_dwa_answers_2001_with_state_id() -> None:
    """standards §1.4: DWA with 2001 and our Origin-State-Id."""
    out = _read(answers.dwa(decode(dwr()), LOCAL))
    assert _value(out, 268) == 2001
    assert _value(out, 278) == 77
    assert out.header.command_code == 280


def test_framing_error_answer_is_5015() -> None:
    """standards §1.8: 5015 built from the bare header."""
    raw = message(272, app=4, length=18)[:20]
    out = _read(answers.framing_error_answer(raw, LOCAL))
    assert _value(out, 268) == 5015
    assert out.header.hop_by_hop_identifier == 0x1234


def test_error_message_has_no_m_bit() -> None:
    """Error-Message is sent with M = 0 (RFC 6733 §7.3)."""
    req = decode(ccr(context=None))
    assert req.problem is not None
    out = _read(answers.error_answer(req, LOCAL, req.problem))
    assert not next(a for a in out.avps if a.code == 281).is_mandatory
