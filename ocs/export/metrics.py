"""Prometheus metrics of the exporter, in its own registry.

``ocs export`` serves :data:`REGISTRY` and nothing else, and the server
never serves it: each process shows only its own series (an alert on
``ocs_export_healthy`` fires for the exporter, not for every server that
happens to import this module).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, PlatformCollector, ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

RECORDS_EXPORTED = Counter(
    "ocs_export_records", "Charged records written to disk and acknowledged", registry=REGISTRY
)
ROWS_EXPORTED = Counter("ocs_export_rows", "Invoice rows written to disk", registry=REGISTRY)
DEAD_LETTERS = Counter(
    "ocs_export_dead_letters",
    "Stream entries moved to the dead-letter stream",
    ["reason"],
    registry=REGISTRY,
)
FILES_WRITTEN = Counter(
    "ocs_export_files_written",
    "Files made durable and renamed into place",
    ["kind"],
    registry=REGISTRY,
)
RECONCILED = Counter(
    "ocs_export_reconciled",
    "Pending entries found already on disk after a crash or takeover, acknowledged only",
    registry=REGISTRY,
)
WRITE_ERRORS = Counter(
    "ocs_export_write_errors", "Failed batch writes (nothing acknowledged)", registry=REGISTRY
)
LAG = Gauge(
    "ocs_export_lag_seconds",
    "Age of the oldest stream entry not yet acknowledged",
    registry=REGISTRY,
)
HEALTHY = Gauge(
    "ocs_export_healthy", "1 when the last write succeeded, 0 while retrying", registry=REGISTRY
)
PERIODS_CLOSED = Counter(
    "ocs_export_periods_closed", "Billing periods closed (manifest written)", registry=REGISTRY
)

AUDIT_EXPORTED = Counter(
    "ocs_export_audit_entries",
    "Audit entries written to disk and acknowledged",
    registry=REGISTRY,
)
AUDIT_DEAD_LETTERS = Counter(
    "ocs_export_audit_dead_letters",
    "Audit stream entries moved to the audit dead-letter stream",
    ["reason"],
    registry=REGISTRY,
)
AUDIT_RECONCILED = Counter(
    "ocs_export_audit_reconciled",
    "Pending audit entries found already on disk after a crash or takeover, acknowledged only",
    registry=REGISTRY,
)
AUDIT_WRITE_ERRORS = Counter(
    "ocs_export_audit_write_errors",
    "Failed audit batch writes (nothing acknowledged)",
    registry=REGISTRY,
)
AUDIT_LAG = Gauge(
    "ocs_export_audit_lag_seconds",
    "Age of the oldest audit stream entry not yet acknowledged",
    registry=REGISTRY,
)
AUDIT_HEALTHY = Gauge(
    "ocs_export_audit_healthy",
    "1 when the last audit write succeeded, 0 while retrying",
    registry=REGISTRY,
)
AUDIT_PERIODS_CLOSED = Counter(
    "ocs_export_audit_periods_closed",
    "Billing periods whose audit part was closed (audit-manifest.json written)",
    registry=REGISTRY,
)
EXCLUDED = Counter(
    "ocs_export_excluded",
    "Entries of load-test accounts left out (export.exclude_test_accounts), acknowledged",
    ["feed"],
    registry=REGISTRY,
)


@dataclass(frozen=True)
class FeedMetrics:
    """The series one feed (charged records, audit entries) updates."""

    exported: Counter
    rows: Counter | None
    dead_letters: Counter
    reconciled: Counter
    write_errors: Counter
    lag: Gauge
    healthy: Gauge
    periods_closed: Counter


RECORDS = FeedMetrics(
    RECORDS_EXPORTED,
    ROWS_EXPORTED,
    DEAD_LETTERS,
    RECONCILED,
    WRITE_ERRORS,
    LAG,
    HEALTHY,
    PERIODS_CLOSED,
)
AUDIT = FeedMetrics(
    AUDIT_EXPORTED,
    None,
    AUDIT_DEAD_LETTERS,
    AUDIT_RECONCILED,
    AUDIT_WRITE_ERRORS,
    AUDIT_LAG,
    AUDIT_HEALTHY,
    AUDIT_PERIODS_CLOSED,
)
