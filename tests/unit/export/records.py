"""Charged records for export tests, in the stream's real format."""

from __future__ import annotations

import uuid

from ocs.charging.records import ChargedRecord, ServiceCharge


def record(
    account: str = "acct-1",
    charged: tuple[int, ...] = (1_200_000, 600_000),
    ppm: int = 200_000,
    currency: str = "EUR",
    end: int = 1_764_201_600,
    kind: str = "session",
    record_id: str | None = None,
) -> ChargedRecord:
    """A record of one service per amount in ``charged``; tax split as the core does."""
    total = sum(charged)
    net = (total * 1_000_000 * 2 + (1_000_000 + ppm)) // (2 * (1_000_000 + ppm))
    services = tuple(
        ServiceCharge(
            service=f"{10 * (i + 1)}/",
            name=f"svc{i + 1}",
            rating_group=10 * (i + 1),
            service_id=None,
            used={"total_octets": 1000 * (i + 1), "seconds": 60},
            charged=c,
        )
        for i, c in enumerate(charged)
    )
    return ChargedRecord(
        record_id=record_id or uuid.uuid4().hex,
        kind=kind,
        account=account,
        identities=("e164:33612345678",),
        session=f"gw;{uuid.uuid4().hex[:8]}",
        owner="gw",
        start=end - 120,
        end=end,
        cause="normal",
        policy_version="v1",
        currency=currency,
        charged=total,
        net=net,
        tax=total - net,
        tax_rate_ppm=ppm,
        shortfall=0,
        services=services,
    )
