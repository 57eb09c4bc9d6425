"""Bulk import of accounts: thousands per second, pipelined, idempotent per row.

Used by ``ocs account import FILE.csv|.jsonl`` and ``POST /accounts:batch``.
A row is what ``POST /accounts`` takes: ``id`` (optional), ``identities``
(a list, or in CSV one cell separated by spaces or ``;``), ``plan``, the
opening money as ``money`` (a decimal string) or ``money_minor`` /
``money_micro`` (integers), ``test`` (a load-test account) and ``ref`` (the
row's idempotency reference; default: a digest of the row itself). A row
without an id gets the id its reference gives (:func:`ocs.accounts.id_for_reference`),
so importing a file twice creates nothing the second time: those rows
answer ``already``.

Each chunk of rows is three pipelined round trips: claim every identity
(SET NX; one already pointing at the row's account is the row's own, from an
earlier run), run every row's create.lua (which writes its audit entry,
``via: import``), release the claims of rows refused on the way. Plans with
recurring allowances are then renewed for the accounts created. A refused
row (bad value, unknown plan, identity taken, id taken) is reported with its
line and the reason; the others go in.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ocs import rules
from ocs.accounts import Accounts, BucketSpec, id_for_reference
from ocs.audit import Actor
from ocs.plans import Renewals
from ocs.policy.loader import PolicySet
from ocs.store.client import storage_errors
from ocs.store.keys import ACCOUNTS_INDEX, identity_index
from ocs.vocabulary.types import UnitType

CHUNK = 1000
RENEW_CONCURRENCY = 32
FIELDS = ("id", "identities", "plan", "money", "money_minor", "money_micro", "test", "ref")


@dataclass(frozen=True, slots=True)
class Refused:
    line: int  # 1-based row number (CSV: counting the header as line 1)
    account: str | None
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    already: int = 0
    refused: list[Refused] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "already": self.already,
            "refused": [
                {"line": r.line, "account": r.account, "reason": r.reason} for r in self.refused
            ],
        }


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    account: str
    identities: tuple[str, ...]
    plan: str
    currency: str
    money: int
    test: bool
    ref: str


def csv_rows(text: io.TextIOBase | Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) of a CSV file with a header naming the fields (see module docstring)."""
    reader = csv.DictReader(text)
    unknown = sorted(set(reader.fieldnames or ()) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown CSV columns {unknown}; expected some of {list(FIELDS)}")
    for n, row in enumerate(reader, start=2):
        yield n, {k: v for k, v in row.items() if v not in (None, "")}


def jsonl_rows(text: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) of a JSON Lines file (blank lines skipped; a bad line is a refused row)."""
    for n, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield n, {"__error__": f"not JSON: {exc.msg}"}
            continue
        yield n, value if isinstance(value, dict) else {"__error__": "not a JSON object"}


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("", "0", "false", "no"):
        return False
    raise ValueError(f"test: expected true or false, got {value!r}")


def _money(raw: Mapping[str, Any], currency: str) -> int:
    texts, minor, micro = raw.get("money"), raw.get("money_minor"), raw.get("money_micro")
    if isinstance(texts, int | float) and not isinstance(texts, bool):
        raise ValueError('money: expected a decimal string such as "10.00"')
    try:
        value = rules.money(
            None if texts is None else str(texts),
            None if minor is None else int(minor),
            None if micro is None else int(micro),
            currency,
            optional=True,
        )
    except ValueError as exc:
        raise ValueError(f"money: {exc}") from None
    if value < 0:
        raise ValueError("money: must not be negative")
    return value


def prepare(line: int, raw: Mapping[str, Any], policies: PolicySet) -> _Row:
    """A row checked against the rules; ValueError says what is wrong."""
    if "__error__" in raw:
        raise ValueError(str(raw["__error__"]))
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown fields {unknown}")
    ids = raw.get("identities")
    if isinstance(ids, str):
        ids = [p for p in ids.replace(";", " ").split() if p]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError("identities: expected at least one TYPE:VALUE")
    keys = tuple(rules.identity(i).key() for i in ids)
    if len(set(keys)) != len(keys):
        raise ValueError("identities: the same identity twice")
    plan_name = str(raw.get("plan", ""))
    plan = policies.plans.get(plan_name)
    if plan is None:
        raise ValueError(f"plan: unknown plan {plan_name!r}")
    money = _money(raw, plan.currency)
    test = _flag(raw.get("test", False))
    given = raw.get("id")
    if given is not None:
        rules.account_id(str(given))
    ref = raw.get("ref")
    if ref is None:
        canon = json.dumps(
            [given, sorted(keys), plan_name, money, test], separators=(",", ":")
        ).encode()
        ref = "import-" + hashlib.sha256(canon).hexdigest()[:32]
    rules.reference(str(ref))
    account = str(given) if given is not None else id_for_reference(str(ref))
    return _Row(line, account, keys, plan_name, plan.currency, money, test, str(ref))


class Importer:
    """Create accounts from rows, a chunk per pipeline (see module docstring)."""

    def __init__(
        self, accounts: Accounts, policies: PolicySet, actor: Actor, chunk: int = CHUNK
    ) -> None:
        self.accounts = accounts
        self.redis = accounts.redis
        self.policies = policies
        self.actor = actor
        self.chunk = chunk

    async def run(self, rows: Iterable[tuple[int, Mapping[str, Any]]]) -> ImportReport:
        report = ImportReport()
        batch: list[_Row] = []
        for line, raw in rows:
            report.rows += 1
            try:
                batch.append(prepare(line, raw, self.policies))
            except ValueError as exc:
                report.refused.append(Refused(line, _account_hint(raw), str(exc)))
            if len(batch) >= self.chunk:
                await self._chunk(batch, report)
                batch = []
        if batch:
            await self._chunk(batch, report)
        report.refused.sort(key=lambda r: r.line)
        return report

    async def _chunk(self, rows: list[_Row], report: ImportReport) -> None:
        async with storage_errors():
            claimed, good = await self._claim(rows, report)
            created = await self._create(good, claimed, report)
        await self._renew(created)
        await asyncio.sleep(0)  # let the worker's other requests in between chunks

    async def _claim(
        self, rows: list[_Row], report: ImportReport
    ) -> tuple[dict[int, list[str]], list[_Row]]:
        """SET NX every identity; a row whose identity points elsewhere is refused."""
        pipe = self.redis.pipeline(transaction=False)
        for row in rows:
            for key in row.identities:
                pipe.set(identity_index(key), row.account, nx=True)
        replies = await pipe.execute()
        claimed: dict[int, list[str]] = {}
        doubtful: list[tuple[_Row, str]] = []
        i = 0
        for row in rows:
            mine = claimed.setdefault(row.line, [])
            for key in row.identities:
                if replies[i]:
                    mine.append(identity_index(key))
                else:
                    doubtful.append((row, key))
                i += 1
        taken: dict[int, str] = {}
        if doubtful:
            pipe = self.redis.pipeline(transaction=False)
            for _, key in doubtful:
                pipe.get(identity_index(key))
            owners = await pipe.execute()
            for (row, key), owner in zip(doubtful, owners, strict=True):
                if owner != row.account.encode():
                    taken.setdefault(row.line, f"identity {key} already belongs to an account")
        good = [r for r in rows if r.line not in taken]
        refused = [r for r in rows if r.line in taken]
        await self._release([k for r in refused for k in claimed.get(r.line, [])])
        for r in refused:
            report.refused.append(Refused(r.line, r.account, taken[r.line]))
        return claimed, good

    async def _create(
        self, rows: list[_Row], claimed: dict[int, list[str]], report: ImportReport
    ) -> list[_Row]:
        if not rows:
            return []
        script = self.accounts.scripts.create
        # Loaded first (on every primary of a cluster): a cluster's pipeline
        # does not load scripts on NOSCRIPT as one server's pipeline does.
        script.sha = await self.redis.script_load(script.script)
        pipe = self.redis.pipeline(transaction=False)
        for row in rows:
            keys = self.accounts.keys(row.account)
            request = {
                "now": _now(),
                "acct": row.account,
                "currency": row.currency,
                "plan": row.plan,
                "ids": list(row.identities),
                "buckets": [BucketSpec(UnitType.MONEY, row.money).to_lua()],
                "test": 1 if row.test else 0,
                "ref": row.ref,
                "au": self.actor.to_lua(),
            }
            script_keys = [keys.account, keys.ids, keys.ref(row.ref), keys.audit]
            pipe.evalsha(
                script.sha,
                len(script_keys),
                *script_keys,
                msgpack.packb(request, use_bin_type=True),
            )
        replies = await pipe.execute()
        created: list[_Row] = []
        release: list[str] = []
        index: list[str] = []
        for row, raw in zip(rows, replies, strict=True):
            reply = msgpack.unpackb(raw, raw=False)
            if reply.get("e") == "exists":
                report.refused.append(
                    Refused(row.line, row.account, f"account {row.account} already exists")
                )
                release.extend(claimed.get(row.line, []))
            elif reply.get("dup"):
                report.already += 1
                index.append(row.account)
            else:
                report.created += 1
                created.append(row)
                index.append(row.account)
        if index:
            await self.redis.sadd(ACCOUNTS_INDEX, *index)
        await self._release(release)
        return created

    async def _release(self, keys: list[str]) -> None:
        """Free identity claims (each in its own Cluster slot: one DEL each, pipelined)."""
        if keys:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.delete(key)
            await pipe.execute()

    async def _renew(self, created: list[_Row]) -> None:
        due = [r for r in created if self.policies.plans[r.plan].allowances]
        if not due:
            return
        renewals = Renewals(self.redis, self.accounts.partitions, self.policies)
        limit = asyncio.Semaphore(RENEW_CONCURRENCY)

        async def one(row: _Row) -> None:
            async with limit:
                await renewals.renew_account(row.account)

        await asyncio.gather(*(one(r) for r in due))


def _now() -> int:
    import time

    return int(time.time())


def _account_hint(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("id") if isinstance(raw, Mapping) else None
    return str(value) if value is not None else None
