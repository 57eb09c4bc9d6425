"""Prometheus metrics of the exporter, in its own registry.

``ocs export`` serves :data:`REGISTRY` and nothing else, and the server
never serves it: each process shows only its own series (an alert on
``ocs_export_healthy`` fires for the exporter, not for every server that
happens to import this module).
"""

from __future__ import annotations

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
