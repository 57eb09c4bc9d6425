"""Recurring allowances of plans: periods and their atomic, idempotent renewal.

A plan's allowance (``policies/``: ``plans.<name>.allowances``) is renewed
once per billing period, on the cycle day, in the policy time zone: a fresh
bucket expiring at the period's end, plus the rolled-over share of what was
left. renew.lua records the period renewed per allowance, so running the
renewal twice (``ocs serve``'s schedule and a cron ``ocs plan renew``)
renews once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import structlog

from ocs.audit import Actor
from ocs.policy.loader import PolicySet
from ocs.policy.models import Allowance
from ocs.store.client import Store, storage_errors, text
from ocs.store.keys import ACCOUNTS_INDEX, AccountKeys
from ocs.store.layout import StoreMigrationNeeded
from ocs.store.scripts import Scripts
from ocs.vocabulary.errors import UserUnknown

log = structlog.get_logger("ocs.plans")


@dataclass(frozen=True, slots=True)
class Period:
    """One billing period of an allowance: [start, end) in unix seconds."""

    ident: str
    start: int
    end: int


def _add_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, d.day)


def period_of(allowance: Allowance, now: int, zone: str) -> Period:
    """The period containing ``now`` (cycle day 1..28, so every month has it)."""
    tz = ZoneInfo(zone)
    today = datetime.fromtimestamp(now, tz).date()
    if allowance.period == "daily":
        start, end = today, today + timedelta(days=1)
    elif allowance.period == "weekly":
        back = (today.isoweekday() - allowance.cycle_day) % 7
        start = today - timedelta(days=back)
        end = start + timedelta(days=7)
    else:
        start = today.replace(day=allowance.cycle_day)
        if start > today:
            prev = start.replace(day=1) - timedelta(days=1)
            start = prev.replace(day=allowance.cycle_day)
        end = _add_month(start)

    def at(d: date) -> int:
        return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())

    return Period(f"{allowance.period[0]}{start.isoformat()}", at(start), at(end))


def _allowance_args(policies: PolicySet, name: str, a: Allowance, now: int) -> dict[str, Any]:
    period = period_of(a, now, policies.timezone)
    pairs: list[int] = []  # flat (rating group, service id) pairs, -1: any
    for sname in a.services:
        svc = policies.services[sname]
        pairs += (
            -1 if svc.rating_group is None else svc.rating_group,
            -1 if svc.service_id is None else svc.service_id,
        )
    return {
        "name": name,
        "unit": a.unit.value,
        "amount": a.amount,
        "svc": pairs,
        "exp": period.end,
        "pct": a.rollover_percent,
        "max": a.rollover_max or 0,
        "pri": a.priority,
        "period": period.ident,
    }


class Renewals:
    """Renew allowances for one account or for all."""

    def __init__(self, client: Store, partitions: int, policies: PolicySet) -> None:
        self.redis = client
        self.partitions = partitions
        self.policies = policies
        self.scripts = Scripts.register(client)

    async def renew_account(self, account_id: str, now: int | None = None) -> int:
        """Renew what is due for one account; returns how many allowances."""
        ts = int(time.time()) if now is None else now
        keys = AccountKeys(account_id, self.partitions)
        async with storage_errors():
            raw = await self.redis.hget(keys.account, "plan")
        if raw is None:
            raise UserUnknown(f"no account {account_id}")
        plan = self.policies.plans.get(text(raw))
        if plan is None or not plan.allowances:
            return 0
        renewed = 0
        # One call per period identity: allowances of one plan may differ in period.
        groups: dict[str, list[dict[str, Any]]] = {}
        for name, allowance in plan.allowances.items():
            args = _allowance_args(self.policies, name, allowance, ts)
            groups.setdefault(args["period"], []).append(args)
        for period, allowances in groups.items():
            request = {
                "now": ts,
                "acct": account_id,
                "plan": text(raw),
                "period": period,
                "allowances": allowances,
                "au": Actor.system().to_lua(),  # its audit entry (ocs/audit.py)
            }
            async with storage_errors():
                reply = msgpack.unpackb(
                    await self.scripts.renew(
                        keys=[keys.account, keys.audit],
                        args=[msgpack.packb(request, use_bin_type=True)],
                    ),
                    raw=False,
                )
            if reply.get("e") == "migrate":
                raise StoreMigrationNeeded(f"account {account_id}")
            renewed += int(reply.get("renewed", 0))
        return renewed

    async def renew_all(self, now: int | None = None) -> tuple[int, int]:
        """Renew every account; returns (accounts seen, allowances renewed)."""
        seen = renewed = 0
        async with storage_errors():
            cursor: int = 0
            while True:
                cursor, members = await self.redis.sscan(ACCOUNTS_INDEX, cursor, count=500)
                for member in members:
                    seen += 1
                    try:
                        renewed += await self.renew_account(text(member), now)
                    except UserUnknown:
                        continue
                if cursor == 0:
                    break
        if renewed:
            log.info("allowances_renewed", accounts=seen, renewed=renewed)
        return seen, renewed
