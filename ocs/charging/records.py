"""The charged-session record: what the exporter turns into invoice rows.

Written by the closing Lua scripts (terminate, abandon, direct debit, refund)
into the partition's stream ``ocs:{pNN}:records`` as one field ``r`` holding a
msgpack map, in the same script call as the debit (DESIGN.md "Data flow" 3).
Money is integer micro-units of ``currency``; ``charged`` is the gross amount
taken from the balance, split once into ``net`` + ``tax`` at ``tax_rate_ppm``
(parts per million) with half-up rounding of ``net`` (policies/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

RECORD_FIELD = b"r"
RECORD_VERSION = 2  # what the scripts write; version 1 is still read

# Version 2 (the scripts since layout 2): the same record with short keys,
# positional services and units as codes, about half the bytes of version 1
# in the stream and the AOF. The record id is not stored: it is
# "<account>/<session>", "ev/<account>/<event id>" for events and refunds.
_UNITS = {
    1: "money",
    2: "total_octets",
    3: "input_octets",
    4: "output_octets",
    5: "seconds",
    6: "events",
}


@dataclass(frozen=True, slots=True)
class ServiceCharge:
    """Usage and charge of one service in one record."""

    service: str  # ServiceKey.key(): "rg/sid"
    name: str  # policy service name
    rating_group: int | None
    service_id: int | None
    used: dict[str, int]  # UnitType.value -> units
    charged: int  # micro-units (gross)
    shortfall: int = 0  # usage the balance could not cover, micro-units
    from_buckets: dict[str, int] = field(default_factory=dict)  # bucket id -> units taken


@dataclass(frozen=True, slots=True)
class ChargedRecord:
    """One charged session or one-shot event, as written to the stream.

    kind: "session" | "event" (direct debit) | "refund" (charged < 0).
    cause: TerminationCause.value for sessions, the action for events.
    """

    record_id: str
    kind: str
    account: str
    identities: tuple[str, ...]
    session: str
    owner: str
    start: int  # unix seconds
    end: int
    cause: str
    policy_version: str
    currency: str
    charged: int
    net: int
    tax: int
    tax_rate_ppm: int
    shortfall: int
    services: tuple[ServiceCharge, ...]
    version: int = RECORD_VERSION


class RecordDecodeError(ValueError):
    """A stream entry that is not a valid record (goes to the dead-letter stream)."""


def encode_record(rec: ChargedRecord) -> bytes:
    """The record in version 1 (what tools and tests write; the scripts write 2)."""
    return msgpack.packb(_to_map(rec), use_bin_type=True)  # type: ignore[no-any-return]


def _to_map(rec: ChargedRecord) -> dict[str, Any]:
    return {
        "v": 1,
        "id": rec.record_id,
        "kind": rec.kind,
        "account": rec.account,
        "identities": list(rec.identities),
        "session": rec.session,
        "owner": rec.owner,
        "start": rec.start,
        "end": rec.end,
        "cause": rec.cause,
        "policy_version": rec.policy_version,
        "currency": rec.currency,
        "charged": rec.charged,
        "net": rec.net,
        "tax": rec.tax,
        "tax_rate_ppm": rec.tax_rate_ppm,
        "shortfall": rec.shortfall,
        "services": [
            {
                "service": s.service,
                "name": s.name,
                "rating_group": s.rating_group,
                "service_id": s.service_id,
                "used": s.used,
                "charged": s.charged,
                "shortfall": s.shortfall,
                "from_buckets": s.from_buckets,
            }
            for s in rec.services
        ],
    }


def decode_record(data: bytes) -> ChargedRecord:
    """Decode one stream entry's ``r`` field (version 1 or 2); RecordDecodeError if malformed."""
    try:
        m = msgpack.unpackb(data, raw=False, strict_map_key=False)
        if m.get("v") == 2:
            return _decode_v2(m)
        services = tuple(
            ServiceCharge(
                service=str(s["service"]),
                name=str(s.get("name", "")),
                rating_group=_opt_int(s.get("rating_group")),
                service_id=_opt_int(s.get("service_id")),
                used={str(k): int(v) for k, v in (s.get("used") or {}).items()},
                charged=int(s["charged"]),
                shortfall=int(s.get("shortfall", 0)),
                from_buckets={str(k): int(v) for k, v in (s.get("from_buckets") or {}).items()},
            )
            for s in m["services"]
        )
        return ChargedRecord(
            record_id=str(m["id"]),
            kind=str(m["kind"]),
            account=str(m["account"]),
            identities=tuple(str(i) for i in m.get("identities") or ()),
            session=str(m.get("session", "")),
            owner=str(m.get("owner", "")),
            start=int(m["start"]),
            end=int(m["end"]),
            cause=str(m.get("cause", "")),
            policy_version=str(m.get("policy_version", "")),
            currency=str(m["currency"]),
            charged=int(m["charged"]),
            net=int(m["net"]),
            tax=int(m["tax"]),
            tax_rate_ppm=int(m.get("tax_rate_ppm", 0)),
            shortfall=int(m.get("shortfall", 0)),
            services=services,
            version=int(m.get("v", 1)),
        )
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        msgpack.exceptions.ExtraData,
        msgpack.exceptions.FormatError,
        msgpack.exceptions.StackError,
    ) as exc:
        raise RecordDecodeError(f"undecodable record: {exc!r}") from exc


def _pairs(flat: Any, key: Any) -> dict[str, int]:
    items = list(flat or ())
    return {key(items[i]): int(items[i + 1]) for i in range(0, len(items), 2)}


def _decode_v2(m: dict[str, Any]) -> ChargedRecord:
    kind, account, session = str(m["k"]), str(m["a"]), str(m.get("s", ""))
    services = tuple(
        ServiceCharge(
            service=str(s[0]),
            name=str(s[1]),
            rating_group=None if s[2] == -1 else int(s[2]),
            service_id=None if s[3] == -1 else int(s[3]),
            used=_pairs(s[4], lambda c: _UNITS[int(c)]),
            charged=int(s[5]),
            shortfall=int(s[6]),
            from_buckets=_pairs(s[7], str),
        )
        for s in m["sv"]
    )
    return ChargedRecord(
        record_id=f"{account}/{session}" if kind == "session" else f"ev/{account}/{session}",
        kind=kind,
        account=account,
        identities=tuple(str(i) for i in m.get("i") or ()),
        session=session,
        owner=str(m.get("o", "")),
        start=int(m["t0"]),
        end=int(m["t1"]),
        cause=str(m.get("c", "")),
        policy_version=str(m.get("p", "")),
        currency=str(m["cu"]),
        charged=int(m["ch"]),
        net=int(m["n"]),
        tax=int(m["x"]),
        tax_rate_ppm=int(m.get("r", 0)),
        shortfall=int(m.get("sf", 0)),
        services=services,
        version=2,
    )


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)
