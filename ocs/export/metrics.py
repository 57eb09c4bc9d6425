"""Prometheus metrics of the exporter (one set per process, default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECORDS_EXPORTED = Counter("ocs_export_records", "Charged records written to disk and acknowledged")
ROWS_EXPORTED = Counter("ocs_export_rows", "Invoice rows written to disk")
DEAD_LETTERS = Counter(
    "ocs_export_dead_letters", "Stream entries moved to the dead-letter stream", ["reason"]
)
FILES_WRITTEN = Counter(
    "ocs_export_files_written", "Files made durable and renamed into place", ["kind"]
)
RECONCILED = Counter(
    "ocs_export_reconciled",
    "Pending entries found already on disk after a crash or takeover, acknowledged only",
)
WRITE_ERRORS = Counter("ocs_export_write_errors", "Failed batch writes (nothing acknowledged)")
LAG = Gauge("ocs_export_lag_seconds", "Age of the oldest stream entry not yet acknowledged")
HEALTHY = Gauge("ocs_export_healthy", "1 when the last write succeeded, 0 while retrying")
PERIODS_CLOSED = Counter("ocs_export_periods_closed", "Billing periods closed (manifest written)")
