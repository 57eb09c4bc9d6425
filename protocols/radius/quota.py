"""A grant as RADIUS reply attributes, in the NAS's vendor flavour (standards §3.6).

Time quota: Session-Timeout (27) with Termination-Action (29) = RADIUS-Request
so the NAS asks again when it runs out (Default when the grant is final).
Volume quota, as session totals (the NAS compares them with its counters since
the session started, so a CoA after a top-up carries used-so-far + new grant):

- Mikrotik (14988): Total-Limit (17) + Total-Limit-Gigawords (18)
- ChilliSpot/Coova (14559): Max-Total-Octets (3) + Max-Total-Gigawords (23),
  Max-Input/Output-Octets (1/2) + Gigawords (21/22) for directional grants
- WISPr (14122): no volume attribute; Session-Terminate-Time (9) for time
- generic: no volume attribute (the NAS reports Interims; we Disconnect)

Acct-Interim-Interval (85) always (>= 60 s, RFC 2869 §5.16); Idle-Timeout (28)
when configured.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ocs.vocabulary.types import Usage
from protocols.radius.counters import split
from protocols.radius.settings import Flavour

TERMINATION_DEFAULT = 0
TERMINATION_RADIUS_REQUEST = 1
U32_MAX = (1 << 32) - 1

Attr = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class QuotaBase:
    """Usage already counted by the NAS in this session (zero for an Access-Accept)."""

    total_octets: int = 0
    input_octets: int = 0
    output_octets: int = 0
    seconds: int = 0


def _octets_pair(flavour: Flavour, total: int, kind: str) -> list[Attr]:
    octets, gigawords = split(total)
    names = {
        (Flavour.MIKROTIK, "total"): ("Mikrotik-Total-Limit", "Mikrotik-Total-Limit-Gigawords"),
        (Flavour.CHILLISPOT, "total"): (
            "ChilliSpot-Max-Total-Octets",
            "ChilliSpot-Max-Total-Gigawords",
        ),
        (Flavour.CHILLISPOT, "input"): (
            "ChilliSpot-Max-Input-Octets",
            "ChilliSpot-Max-Input-Gigawords",
        ),
        (Flavour.CHILLISPOT, "output"): (
            "ChilliSpot-Max-Output-Octets",
            "ChilliSpot-Max-Output-Gigawords",
        ),
    }.get((flavour, kind))
    if names is None:
        return []
    out: list[Attr] = [(names[0], octets)]
    if gigawords:
        out.append((names[1], gigawords))
    return out


def volume_attributes(flavour: Flavour, granted: Usage, base: QuotaBase) -> list[Attr]:
    """Vendor volume limits for ``granted`` on top of what the session already used."""
    out: list[Attr] = []
    if granted.total_octets is not None:
        out += _octets_pair(flavour, base.total_octets + granted.total_octets, "total")
    if granted.input_octets is not None:
        out += _octets_pair(flavour, base.input_octets + granted.input_octets, "input")
    if granted.output_octets is not None:
        out += _octets_pair(flavour, base.output_octets + granted.output_octets, "output")
    return out


def wispr_terminate_time(now: int, seconds: int) -> str:
    """WISPr-Session-Terminate-Time: ISO 8601 with UTC offset."""
    when = dt.datetime.fromtimestamp(now + seconds, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def grant_attributes(
    flavour: Flavour,
    granted: Usage,
    *,
    now: int,
    final: bool,
    validity_time: int | None = None,
    base: QuotaBase = QuotaBase(),
) -> list[Attr]:
    """Session-Timeout / Termination-Action and vendor limits for one grant."""
    out: list[Attr] = []
    seconds = granted.seconds
    if validity_time is not None and (seconds is None or validity_time < seconds):
        seconds, final = validity_time, False  # ask again when the grant's validity ends
    if seconds is not None:
        out.append(("Session-Timeout", min(base.seconds + seconds, U32_MAX)))
        action = TERMINATION_DEFAULT if final else TERMINATION_RADIUS_REQUEST
        out.append(("Termination-Action", action))
        if flavour is Flavour.WISPR:
            out.append(("WISPr-Session-Terminate-Time", wispr_terminate_time(now, seconds)))
    out += volume_attributes(flavour, granted, base)
    return out


def session_attributes(interim_interval: int, idle_timeout: int | None) -> list[Attr]:
    out: list[Attr] = [("Acct-Interim-Interval", interim_interval)]
    if idle_timeout is not None:
        out.append(("Idle-Timeout", idle_timeout))
    return out
