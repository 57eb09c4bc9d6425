"""Process-wide metrics of the core (the front ends define their own)."""

from __future__ import annotations

from prometheus_client import Counter, Info

BUILD = Info("ocs_build", "ocs version and policy set in force")
POLICY_RELOADS = Counter("ocs_policy_reloads", "Policy reloads", ["outcome"])
SESSIONS_ABANDONED = Counter("ocs_sessions_abandoned", "Sessions closed by supervision")
