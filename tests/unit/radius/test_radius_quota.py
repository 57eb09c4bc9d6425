"""Grants as reply attributes per vendor flavour (standards §3.6)."""

from __future__ import annotations

from ocs.vocabulary.types import Usage
from protocols.radius.quota import QuotaBase, grant_attributes, session_attributes
from protocols.radius.settings import Flavour


def test_time_grant_sets_session_timeout_and_reauth() -> None:
    """Session-Timeout with Termination-Action RADIUS-Request; Default when final."""
    attrs = grant_attributes(Flavour.GENERIC, Usage(seconds=300), now=0, final=False)
    assert attrs == [("Session-Timeout", 300), ("Termination-Action", 1)]
    attrs = grant_attributes(Flavour.GENERIC, Usage(seconds=300), now=0, final=True)
    assert attrs == [("Session-Timeout", 300), ("Termination-Action", 0)]


def test_validity_time_caps_session_timeout() -> None:
    """A volume grant valid 600 s: the NAS asks again after 600 s."""
    attrs = grant_attributes(
        Flavour.GENERIC, Usage(total_octets=10), now=0, final=True, validity_time=600
    )
    assert attrs == [("Session-Timeout", 600), ("Termination-Action", 1)]


def test_mikrotik_total_limit_with_gigawords() -> None:
    big = 3 * 2**32 + 17
    attrs = grant_attributes(Flavour.MIKROTIK, Usage(total_octets=big), now=0, final=False)
    assert attrs == [("Mikrotik-Total-Limit", 17), ("Mikrotik-Total-Limit-Gigawords", 3)]
    small = grant_attributes(Flavour.MIKROTIK, Usage(total_octets=10_000), now=0, final=False)
    assert small == [("Mikrotik-Total-Limit", 10_000)]


def test_chillispot_limits_are_session_totals() -> None:
    """A CoA after top-up carries used-so-far + grant (the NAS compares session totals)."""
    attrs = grant_attributes(
        Flavour.CHILLISPOT,
        Usage(total_octets=2**32),
        now=0,
        final=False,
        base=QuotaBase(total_octets=5),
    )
    assert attrs == [("ChilliSpot-Max-Total-Octets", 5), ("ChilliSpot-Max-Total-Gigawords", 1)]


def test_wispr_time_grant_has_terminate_time() -> None:
    attrs = grant_attributes(Flavour.WISPR, Usage(seconds=60), now=1_700_000_000, final=False)
    assert ("WISPr-Session-Terminate-Time", "2023-11-14T22:14:20+00:00") in attrs
    assert ("Session-Timeout", 60) in attrs


def test_generic_volume_grant_has_no_vendor_attributes() -> None:
    assert grant_attributes(Flavour.GENERIC, Usage(total_octets=5), now=0, final=False) == []


def test_session_attributes() -> None:
    assert session_attributes(600, None) == [("Acct-Interim-Interval", 600)]
    assert session_attributes(60, 30) == [("Acct-Interim-Interval", 60), ("Idle-Timeout", 30)]
