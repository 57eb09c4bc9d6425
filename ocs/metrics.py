"""Process-wide metrics of the core (the front ends define their own).

Registries: the server's processes use prometheus-client's default registry
(this module, the front ends' metrics modules, the process collector); the
exporter has its own (:mod:`ocs.export.metrics`), so each process's
``/metrics`` shows only what that process does. With ``--workers N`` the
supervisor merges its workers' (:mod:`ocs.node_ops`) and adds the families
named in :data:`OWN_FAMILIES`, which only it counts.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Info

BUILD = Info("ocs_build", "ocs version and policy set in force")  # ocs_build_info
POLICY_RELOADS = Counter("ocs_policy_reloads", "Policy reloads", ["outcome"])
SESSIONS_ABANDONED = Counter("ocs_sessions_abandoned", "Sessions closed by supervision")
EMBEDDED_REDIS_RESTARTS = Counter(
    "ocs_embedded_redis_restarts", "Embedded Redis server restarts after it died"
)
WORKER_RESTARTS = Counter(
    "ocs_worker_restarts", "Worker processes restarted by the supervisor after they died"
)
WORKERS_RUNNING = Gauge("ocs_workers_running", "Worker processes running (--workers N)")

# What the supervisor of N workers contributes from its own process.
OWN_FAMILIES = frozenset(
    {"ocs_embedded_redis_restarts", "ocs_worker_restarts", "ocs_workers_running"}
)
