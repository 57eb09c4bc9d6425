"""Invoice rows: one row per charged record per service.

A record (one charged session or one-shot event) names one or more services
(rating group / service id); the invoice line is one service of one record,
so the row grain is (record, service) and the service columns are plain
values. The record's gross ``charged`` is spread over its services in
proportion to each service's own charge, and its ``tax`` in proportion to
those shares (largest remainder, :func:`ocs.export.money.allocate`): the rows
of one record add up exactly to the record, and every row keeps
``net = charged - tax``. A record without services gives one row with an
empty service.

Each row also carries its stream entry id and partition: the exporter uses
them to find what is already on disk after a crash, and ``verify`` to prove no
entry appears twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from ocs.charging.records import ChargedRecord, ServiceCharge
from ocs.export.money import Currencies, allocate, decimal_string, ppm_percent, to_minor
from ocs.export.periods import iso_local
from ocs.vocabulary.types import UnitType

Row = dict[str, Any]

UNIT_COLUMNS: tuple[str, ...] = tuple(f"used_{u.value}" for u in UnitType)

# Column name -> type; order is the CSV column order.
COLUMNS: dict[str, type] = {
    "entry_id": str,
    "partition": int,
    "record_id": str,
    "kind": str,
    "account": str,
    "identity": str,
    "session": str,
    "service": str,
    "service_name": str,
    "rating_group": str,
    "service_id": str,
    "start": str,
    "end": str,
    **dict.fromkeys(UNIT_COLUMNS, int),
    "currency": str,
    "charged_minor": int,
    "charged": str,
    "tax_rate": str,
    "tax_minor": int,
    "tax": str,
    "net_minor": int,
    "net": str,
    "charged_micro": int,
    "tax_micro": int,
    "net_micro": int,
    "tax_rate_ppm": int,
    "cause": str,
    "policy_version": str,
}


@dataclass(frozen=True, slots=True)
class RowStyle:
    """How rows render: time zone, identity masking, currency exponents."""

    zone: ZoneInfo
    currencies: Currencies
    mask_identities: bool = True
    mask_keep_last: int = 4


def mask_identity(identity: str, keep_last: int) -> str:
    """``e164:33612345678`` -> ``e164:*******5678`` (type kept, value masked)."""
    kind, sep, value = identity.partition(":")
    if not sep:
        kind, value = "", identity
    keep = min(keep_last, len(value) // 2)
    masked = "*" * (len(value) - keep) + (value[len(value) - keep :] if keep else "")
    return f"{kind}:{masked}" if sep else masked


def record_rows(entry_id: str, partition: int, rec: ChargedRecord, style: RowStyle) -> list[Row]:
    """The invoice rows of one record (see module docstring)."""
    services: list[ServiceCharge | None] = list(rec.services) or [None]
    weights = [s.charged if s is not None else rec.charged for s in services]
    gross_parts = allocate(rec.charged, weights)
    tax_parts = allocate(rec.tax, gross_parts)
    exponent = style.currencies.exponent(rec.currency)
    identities = [
        mask_identity(i, style.mask_keep_last) if style.mask_identities else i
        for i in rec.identities
    ]
    common: Row = {
        "entry_id": entry_id,
        "partition": partition,
        "record_id": rec.record_id,
        "kind": rec.kind,
        "account": rec.account,
        "identity": " ".join(identities),
        "session": rec.session,
        "start": iso_local(rec.start, style.zone),
        "end": iso_local(rec.end, style.zone),
        "currency": rec.currency,
        "tax_rate": ppm_percent(rec.tax_rate_ppm),
        "tax_rate_ppm": rec.tax_rate_ppm,
        "cause": rec.cause,
        "policy_version": rec.policy_version,
    }
    rows = []
    for svc, gross, tax in zip(services, gross_parts, tax_parts, strict=True):
        rows.append(_row(common, svc, gross, tax, exponent))
    return rows


def _row(common: Row, svc: ServiceCharge | None, gross: int, tax: int, exponent: int) -> Row:
    used = svc.used if svc is not None else {}
    charged_minor = to_minor(gross, exponent)
    tax_minor = to_minor(tax, exponent)
    row: Row = {
        **common,
        "service": svc.service if svc else "",
        "service_name": svc.name if svc else "",
        "rating_group": "" if svc is None or svc.rating_group is None else str(svc.rating_group),
        "service_id": "" if svc is None or svc.service_id is None else str(svc.service_id),
        **{f"used_{u.value}": int(used.get(u.value, 0)) for u in UnitType},
        "charged_minor": charged_minor,
        "charged": decimal_string(gross, exponent),
        "tax_minor": tax_minor,
        "tax": decimal_string(tax, exponent),
        "net_minor": charged_minor - tax_minor,
        "net": decimal_string(gross - tax, exponent),
        "charged_micro": gross,
        "tax_micro": tax,
        "net_micro": gross - tax,
    }
    return {name: row[name] for name in COLUMNS}


def coerce_row(raw: Mapping[str, Any]) -> Row:
    """A row read back from CSV or JSON, with the declared column types."""
    return coerce_columns(raw, COLUMNS, "row")


def coerce_columns(raw: Mapping[str, Any], columns: Mapping[str, type], what: str) -> Row:
    """``raw`` with each of ``columns`` turned to its declared type; ValueError naming
    the missing and unexpected columns (``what columns differ``) when they differ."""
    if set(raw) != set(columns):
        missing = sorted(set(columns) - set(raw))
        extra = sorted(set(raw) - set(columns))
        raise ValueError(f"{what} columns differ: missing {missing}, unexpected {extra}")
    return {name: kind(raw[name]) for name, kind in columns.items()}
