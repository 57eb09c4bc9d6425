"""Process-wide metrics of the core (the front ends define their own).

Exposed by ``/metrics`` (:mod:`ocs.http`) from the default registry.
"""

from __future__ import annotations

from prometheus_client import Counter, Info

BUILD = Info("ocs_build", "ocs version and policy set in force")  # ocs_build_info
POLICY_RELOADS = Counter("ocs_policy_reloads", "Policy reloads", ["outcome"])
SESSIONS_ABANDONED = Counter("ocs_sessions_abandoned", "Sessions closed by supervision")
EMBEDDED_REDIS_RESTARTS = Counter(
    "ocs_embedded_redis_restarts", "Embedded Redis server restarts after it died"
)
