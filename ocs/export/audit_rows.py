"""Audit rows: one row per audit entry (operator changes, :mod:`ocs.audit`).

Written by ``ocs export`` beside the invoice rows of the same period
(``audit.csv`` / ``audit.jsonl``), by the same exactly-once machinery. A row
names the change (op, account, bucket, amounts before and after), who made
it, how (api, cli, import, system), in which request, why, and under which
idempotency reference; ``money_change_*`` is what it did to the account's
money (micro-units exact, minor units per ISO 4217, a decimal string), and
``details`` the rest of the entry as sorted JSON (status or plan from/to,
identities, session). Amounts of a change that touched no bucket are 0 with
an empty ``bucket``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ocs.audit import AuditEntry
from ocs.export.money import decimal_string, to_minor
from ocs.export.periods import iso_local
from ocs.export.rows import Row, RowStyle, coerce_columns

AUDIT_COLUMNS: dict[str, type] = {
    "entry_id": str,
    "partition": int,
    "audit_id": str,
    "at": str,
    "at_ms": int,
    "op": str,
    "account": str,
    "who": str,
    "via": str,
    "request_id": str,
    "reason": str,
    "reference": str,
    "currency": str,
    "bucket": str,
    "unit": str,
    "delta": int,
    "before": int,
    "after": int,
    "expires": str,
    "money_before_micro": int,
    "money_after_micro": int,
    "money_change_micro": int,
    "money_change_minor": int,
    "money_change": str,
    "details": str,
}


def audit_rows(entry_id: str, partition: int, entry: AuditEntry, style: RowStyle) -> list[Row]:
    """The one row of an audit entry."""
    exponent = style.currencies.exponent(entry.currency) if entry.currency else 2
    change = entry.money_change
    row: Row = {
        "entry_id": entry_id,
        "partition": partition,
        "audit_id": f"p{partition:02d}/{entry_id}",
        "at": iso_local(entry.at_ms // 1000, style.zone),
        "at_ms": entry.at_ms,
        "op": entry.op,
        "account": entry.account,
        "who": entry.who,
        "via": entry.via,
        "request_id": entry.request_id,
        "reason": entry.reason,
        "reference": entry.reference,
        "currency": entry.currency,
        "bucket": entry.bucket,
        "unit": entry.unit,
        "delta": entry.delta or 0,
        "before": entry.before or 0,
        "after": entry.after or 0,
        "expires": iso_local(entry.expires, style.zone) if entry.expires else "",
        "money_before_micro": entry.money_before or 0,
        "money_after_micro": entry.money_after or 0,
        "money_change_micro": change,
        "money_change_minor": to_minor(change, exponent),
        "money_change": decimal_string(change, exponent),
        "details": json.dumps(entry.details, sort_keys=True, ensure_ascii=False),
    }
    return [row]


def coerce_audit_row(raw: Mapping[str, Any]) -> Row:
    """A row read back from CSV or JSON, with the declared column types."""
    return coerce_columns(raw, AUDIT_COLUMNS, "audit")


def audit_totals(rows: Iterable[Row]) -> dict[str, Any]:
    """Entries, entries per operation and the money change per currency (micro-units)."""
    ops: dict[str, int] = {}
    money: dict[str, int] = {}
    n = 0
    for row in rows:
        n += 1
        ops[row["op"]] = ops.get(row["op"], 0) + 1
        money[row["currency"]] = money.get(row["currency"], 0) + int(row["money_change_micro"])
    return {
        "rows": n,
        "ops": dict(sorted(ops.items())),
        "money_change_micro": dict(sorted(money.items())),
    }
