"""Request-level failures of the charging API.

Each class carries the protocol-neutral meaning; each front end maps it through
its own table (Gy: 5030 USER_UNKNOWN, 5002 UNKNOWN_SESSION_ID, a configured
code for storage failure; RADIUS: Access-Reject, or silence so the NAS retries).
"""

from __future__ import annotations


class ChargingError(Exception):
    """Base of every request-level failure of the charging API."""


class UserUnknown(ChargingError):
    """No account has this identity (Gy 5030)."""


class PlanUnknown(UserUnknown):
    """The account's plan is not in the policy set in force (reloads refuse
    to drop a plan in use, so only a set started without it): the subscriber
    cannot be rated, and is answered as unknown (Gy 5030), nothing changed."""


class AccountBlocked(ChargingError):
    """The account exists but is blocked or deleted (Gy 4010 at command level)."""


class UnknownSession(ChargingError):
    """Update/terminate for a session that is not open: never started, closed
    or abandoned by supervision (Gy 5002)."""


class StorageUnavailable(ChargingError):
    """Redis could not be reached or failed; nothing was changed or the change
    is unknown and a retry is safe because every script is idempotent."""


class InvalidRequest(ChargingError):
    """The request is not meaningful (e.g. negative usage, no services)."""


class RequestTooOld(InvalidRequest):
    """A numbered request (Gy CC-Request-Number, Nchf invocation sequence
    number) older than the answers its session keeps: it may have been
    charged already and its answer is gone, so it is refused and nothing
    changes (Gy 5012 DIAMETER_UNABLE_TO_COMPLY, Nchf CHARGING_FAILED; see
    ocs/charging/api.py "Idempotency")."""
