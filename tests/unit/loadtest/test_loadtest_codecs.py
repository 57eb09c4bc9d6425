"""Sans-IO parts of the load tester: histogram, Diameter/RADIUS templates (checked against
python-diameter and pyrad, the reference codecs), answer reading, the no-op CCA, the split
of a run over processes, and the conservation comparison."""

from __future__ import annotations

import pytest
from diameter.message import Message
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as rp

from loadtest import diameter_wire as wire
from loadtest.conservation import compare
from loadtest.diameter_templates import EVENT, INITIAL, TERMINATION, UPDATE, GyTemplates
from loadtest.histogram import Histogram, bucket_of, upper_bound
from loadtest.noop import cca_for
from loadtest.provision import Bucket
from loadtest.radius_templates import INTERIM, STOP, AcctTemplates, response_ok
from loadtest.spec import LoadSpec, Service
from ocs.charging.records import ChargedRecord, ServiceCharge
from protocols.radius.dictionary import load_dictionary

SERVICES = (Service(10), Service(30, "seconds", 30))


@given(st.integers(min_value=0, max_value=10**12))
def test_histogram_bucket_bounds_value_within_one_percent(value: int) -> None:
    """Every value falls in a bucket whose upper bound is >= it and < 1% above it."""
    upper = upper_bound(bucket_of(value))
    assert value <= upper <= value + value // 64 + 1


def test_histogram_percentiles_and_merge() -> None:
    """Percentiles read from merged histograms equal those of the combined data (to the bucket)."""
    a, b = Histogram(), Histogram()
    for v in range(1, 1001):
        (a if v % 2 else b).record(v)
    a.merge(b)
    assert a.count == 1000 and a.min == 1 and a.max == 1000
    assert 500 <= a.percentile(50) <= 508
    assert 990 <= a.percentile(99) <= 1000
    assert Histogram.from_dict(a.to_dict()).percentile(99.9) == a.percentile(99.9)
    assert Histogram().percentile(99) == 0


@pytest.mark.parametrize("request_type", [INITIAL, UPDATE, TERMINATION, EVENT])
def test_gy_template_render_decodes_as_python_diameter_sees_it(request_type: int) -> None:
    """A patched template decodes (python-diameter) with exactly the patched fields."""
    t = GyTemplates("gw1.lt", "lt", "example.net", "gw1.lt;abcd1234;", 15)
    tpl = t.get(request_type, SERVICES)
    data = bytes(tpl.render(b"0100000042", 7, 0x1234, 0x5678, b"996601234567890", [123456, 42]))
    msg = Message.from_bytes(data)
    assert msg.header.hop_by_hop_identifier == 0x1234
    assert msg.header.end_to_end_identifier == 0x5678
    assert msg.session_id == "gw1.lt;abcd1234;0100000042"
    assert msg.cc_request_type == request_type
    assert msg.cc_request_number == 7
    if request_type in (INITIAL, EVENT):
        assert msg.subscription_id[0].subscription_id_data == "996601234567890"
    if request_type in (UPDATE, TERMINATION):
        mscc = msg.multiple_services_credit_control
        assert [m.rating_group for m in mscc] == [10, 30]
        assert mscc[0].used_service_unit[0].cc_total_octets == 123456
        assert mscc[1].used_service_unit[0].cc_time == 42


def test_diameter_answer_reading() -> None:
    """Result-Code and per-MSCC codes are read from bytes; frames split on their length."""
    t = GyTemplates("gw1.lt", "lt", "example.net", "gw1.lt;abcd1234;", 15)
    ccr = bytes(t.get(UPDATE, SERVICES).render(b"0000000001", 1, 9, 9, b"", [1, 1]))
    cca = cca_for(ccr)
    assert wire.result_code(cca) == 2001
    assert Message.from_bytes(cca).session_id == "gw1.lt;abcd1234;0000000001"
    buf = bytearray(cca + cca[:30])
    frames = wire.split_frames(buf)
    assert frames == [cca] and bytes(buf) == cca[:30]
    with pytest.raises(wire.FrameError):
        wire.split_frames(bytearray(b"\x02" + cca[1:]))
    assert wire.result_code(cca[:20]) == 0  # no AVPs: reported as 0, never raised


def test_radius_template_is_a_valid_accounting_request() -> None:
    """pyrad accepts the patched packet's Request Authenticator and reads the patched fields."""
    secret = b"s3cret"
    t = AcctTemplates("ltnas", "lt1234-", 15)
    data, auth = t.by_status[STOP].render(
        17, b"0000000099", b"996601234567890", [5000, 7000, 60], secret
    )
    pkt = rp.AcctPacket(packet=data, secret=secret, dict=load_dictionary())
    assert pkt.VerifyAcctRequest()
    assert pkt.id == 17
    assert pkt["Acct-Session-Id"] == ["lt1234-0000000099"]
    assert pkt["User-Name"] == ["996601234567890"]
    assert pkt["Acct-Input-Octets"] == [5000] and pkt["Acct-Session-Time"] == [60]
    head = bytes((5, 17, 0, 20))
    good = head + __import__("hashlib").md5(head + auth + secret).digest()
    assert response_ok(good, auth, secret)
    assert not response_ok(good, auth, b"other")
    assert not response_ok(good[:19], auth, secret)
    _, auth2 = t.by_status[INTERIM].render(18, b"0000000099", b"996601234567890", [1, 2, 3], secret)
    assert auth2 != auth


def test_spec_split_over_processes() -> None:
    """Rate, concurrency, session count and subscribers are shared out; the sums are kept."""
    spec = LoadSpec(rate=900, concurrency=10, sessions=7, processes=3, subscribers=tuple("abcdefg"))
    parts = [spec.for_process(i) for i in range(3)]
    assert sum(p.rate for p in parts) == pytest.approx(900)
    assert sum(p.concurrency for p in parts) == 10
    assert sum(p.sessions or 0 for p in parts) == 7
    assert sorted(s for p in parts for s in p.subscribers) == list("abcdefg")
    assert LoadSpec(processes=2).for_process(1).sessions is None


def _record(account: str, charged: int, buckets: dict[str, int]) -> ChargedRecord:
    svc = ServiceCharge("10/", "internet", 10, None, {}, charged, 0, buckets)
    return ChargedRecord(
        "r",
        "session",
        account,
        (),
        "s",
        "o",
        0,
        0,
        "normal",
        "v",
        "EUR",
        charged,
        charged,
        0,
        0,
        0,
        (svc,),
    )


def test_conservation_compare() -> None:
    """Money and unit buckets must fall by exactly what records say; reservations left fail it."""
    before = {"a": {"main": Bucket("money", 1000, 0), "oct": Bucket("total_octets", 500, 0)}}
    after = {"a": {"main": Bucket("money", 900, 0), "oct": Bucket("total_octets", 300, 0)}}
    assert compare(before, after, [_record("a", 100, {"oct": 200})]).ok
    off = compare(before, after, [_record("a", 99, {"oct": 200})])
    assert not off.ok and off.mismatches[0]["unit"] == "money"
    reserved = {"a": {"main": Bucket("money", 900, 5), "oct": Bucket("total_octets", 300, 0)}}
    assert not compare(before, reserved, [_record("a", 100, {"oct": 200})]).ok
