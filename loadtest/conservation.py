"""The conservation check: what left the balances is exactly what the records say.

After a run, every session the run opened is closed (the generator
terminated most; any left open, because a request timed out or failed, is
closed here with the core's own abandon script, which debits and records
like a termination). Then, for every test account and every bucket:

- money buckets: the fall of the total amount equals the sum of ``charged``
  of the account's records written since the run began (ocs/charging/
  records.py; refunds count negative);
- unit buckets (octets, seconds, events): the fall of each bucket's amount
  equals the units the records took from it (``from_buckets``);
- nothing is left reserved.

All integers, compared to the micro-unit. Reservations never change an
amount (the scripts debit only usage), so the check holds whatever was
reserved; the last rule checks that closing released everything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loadtest.provision import Balances
from ocs.charging.api import ChargingService
from ocs.charging.records import RECORD_FIELD, ChargedRecord, RecordDecodeError, decode_record
from ocs.store.client import Store, text
from ocs.store.keys import records_stream
from ocs.vocabulary.types import TerminationCause

READ_BATCH = 1000


@dataclass
class Conservation:
    accounts: int = 0
    records: int = 0
    sessions_closed_by_check: int = 0
    money_decrease: int = 0  # micro-units, all accounts
    money_recorded: int = 0
    unit_decrease: dict[str, int] = field(default_factory=dict)  # unit -> units
    unit_recorded: dict[str, int] = field(default_factory=dict)
    reserved_left: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    undecodable: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.reserved_left == 0 and self.undecodable == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "accounts": self.accounts,
            "records": self.records,
            "sessions_closed_by_check": self.sessions_closed_by_check,
            "money_decrease": self.money_decrease,
            "money_recorded": self.money_recorded,
            "unit_decrease": self.unit_decrease,
            "unit_recorded": self.unit_recorded,
            "reserved_left": self.reserved_left,
            "undecodable_records": self.undecodable,
            "mismatches": self.mismatches[:20],
            "mismatch_count": len(self.mismatches),
        }


async def close_leftover_sessions(charging: ChargingService, account_ids: Iterable[str]) -> int:
    """Abandon (debit, release, record) every session still open on these accounts."""
    closed = 0
    for acct in account_ids:
        for raw in await charging.redis.smembers(charging.store.keys(acct).sessions):
            reply = await charging.abandon(acct, text(raw), TerminationCause.OTHER, force=True)
            closed += int(reply.closed)
    return closed


async def read_records(
    client: Store, partitions: int, since_ms: int, accounts: set[str]
) -> tuple[list[ChargedRecord], int]:
    """Records of these accounts appended since ``since_ms``, and how many were undecodable."""
    out: list[ChargedRecord] = []
    bad = 0
    for p in range(partitions):
        stream = records_stream(p)
        start = f"{since_ms}-0"
        while True:
            entries: list[Any] = (
                await client.xrange(stream, min=start, max="+", count=READ_BATCH) or []
            )
            for _, fields in entries:
                raw = (fields or {}).get(RECORD_FIELD)
                try:
                    rec = decode_record(raw if isinstance(raw, bytes) else b"")
                except RecordDecodeError:
                    bad += 1
                    continue
                if rec.account in accounts:
                    out.append(rec)
            if len(entries) < READ_BATCH:
                break
            last = text(entries[-1][0])
            ms, _, seq = last.partition("-")
            start = f"{ms}-{int(seq) + 1}"
    return out, bad


def compare(before: Balances, after: Balances, records: Iterable[ChargedRecord]) -> Conservation:
    """Per account and bucket: the fall of the amount against what the records say."""
    result = Conservation(accounts=len(before))
    charged: dict[str, int] = defaultdict(int)
    taken: dict[tuple[str, str], int] = defaultdict(int)
    for rec in records:
        result.records += 1
        charged[rec.account] += rec.charged
        for svc in rec.services:
            for bucket, units in svc.from_buckets.items():
                taken[(rec.account, bucket)] += units
    for acct, old in before.items():
        new = after.get(acct, {})
        money_fall = sum(b.amount for b in old.values() if b.unit == "money") - sum(
            b.amount for b in new.values() if b.unit == "money"
        )
        result.money_decrease += money_fall
        result.money_recorded += charged[acct]
        if money_fall != charged[acct]:
            result.mismatches.append(
                {
                    "account": acct,
                    "unit": "money",
                    "decrease": money_fall,
                    "recorded": charged[acct],
                }
            )
        for bucket_id in sorted(set(old) | set(new)):
            b_old, b_new = old.get(bucket_id), new.get(bucket_id)
            known = b_old or b_new
            unit = known.unit if known is not None else "?"
            if b_new is not None:
                result.reserved_left += b_new.reserved
            if unit == "money":
                continue
            fall = (b_old.amount if b_old else 0) - (b_new.amount if b_new else 0)
            rec_units = taken[(acct, bucket_id)]
            result.unit_decrease[unit] = result.unit_decrease.get(unit, 0) + fall
            result.unit_recorded[unit] = result.unit_recorded.get(unit, 0) + rec_units
            if fall != rec_units:
                result.mismatches.append(
                    {
                        "account": acct,
                        "bucket": bucket_id,
                        "unit": unit,
                        "decrease": fall,
                        "recorded": rec_units,
                    }
                )
    return result
