"""The one table from charging outcomes to Nchf answers (TS 32.291 §6.1.6.3.14, §6.1.7.3).

Per rating group, a ServiceStatus becomes a ``resultCode`` of the
MultipleUnitInformation (one answer can mix SUCCESS and QUOTA_LIMIT_REACHED,
as a Gy CCA mixes 2001 and 4012). A request-level failure (an exception of
:mod:`ocs.vocabulary.errors`) becomes an HTTP status with a ProblemDetails
body (TS 29.571 §5.2.4.1) whose ``cause`` is one of TS 32.291 table
6.1.7.3-1 or of the common causes of TS 29.500 table 5.2.7.2-1.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from ocs.vocabulary import errors
from ocs.vocabulary.types import ServiceStatus

PROBLEM_JSON = "application/problem+json"

RESULT_CODES: dict[ServiceStatus, str] = {
    ServiceStatus.GRANTED: "SUCCESS",
    ServiceStatus.CREDIT_LIMIT_REACHED: "QUOTA_LIMIT_REACHED",
    ServiceStatus.SERVICE_DENIED: "END_USER_SERVICE_DENIED",
    ServiceStatus.RATING_FAILED: "RATING_FAILED",
    ServiceStatus.NOT_APPLICABLE: "QUOTA_MANAGEMENT_NOT_APPLICABLE",
}


class Cause(NamedTuple):
    status: int
    cause: str
    title: str


# TS 32.291 table 6.1.7.3-1
CHARGING_FAILED = Cause(400, "CHARGING_FAILED", "Charging failed")
USER_UNKNOWN = Cause(404, "USER_UNKNOWN", "User unknown")
END_USER_REQUEST_DENIED = Cause(403, "END_USER_REQUEST_DENIED", "End user request denied")
# TS 29.500 table 5.2.7.2-1
INVALID_MSG_FORMAT = Cause(400, "INVALID_MSG_FORMAT", "Invalid message format")
MANDATORY_IE_MISSING = Cause(400, "MANDATORY_IE_MISSING", "Mandatory IE missing")
RESOURCE_URI_STRUCTURE_NOT_FOUND = Cause(
    404, "RESOURCE_URI_STRUCTURE_NOT_FOUND", "Resource URI structure not found"
)
NF_CONGESTION = Cause(503, "NF_CONGESTION", "NF congestion")
SYSTEM_FAILURE = Cause(500, "SYSTEM_FAILURE", "System failure")
# No cause of TS 29.500 names an unknown resource id: CONTEXT_NOT_FOUND is what
# other SBI producers send for an unknown context (TS 29.502, TS 29.518).
CONTEXT_NOT_FOUND = Cause(404, "CONTEXT_NOT_FOUND", "Charging data resource not found")

EXCEPTIONS: dict[type[errors.ChargingError], Cause] = {
    errors.UserUnknown: USER_UNKNOWN,
    errors.AccountBlocked: END_USER_REQUEST_DENIED,
    errors.UnknownSession: CONTEXT_NOT_FOUND,
    errors.InvalidRequest: CHARGING_FAILED,
}


def for_exception(exc: errors.ChargingError, storage_failure: int = 503) -> Cause:
    if isinstance(exc, errors.StorageUnavailable):
        return NF_CONGESTION if storage_failure == 503 else SYSTEM_FAILURE
    for cls in type(exc).__mro__:
        found = EXCEPTIONS.get(cls)
        if found is not None:
            return found
    return SYSTEM_FAILURE


def title_of(cause: str) -> str:
    """``MANDATORY_IE_MISSING`` -> ``Mandatory IE missing``."""
    words = cause.split("_")
    head = words[0].capitalize()
    return " ".join([head, *(w if w in ("IE", "NF", "URI") else w.lower() for w in words[1:])])


def problem(
    cause: Cause,
    detail: str = "",
    invalid: tuple[tuple[str, str], ...] = (),
    cause_name: str | None = None,
) -> bytes:
    """A ProblemDetails body; ``invalid`` lists (JSON Pointer, reason) pairs."""
    body: dict[str, Any] = {"title": cause.title, "status": cause.status}
    name = cause_name or cause.cause
    if name:
        body["cause"] = name
    if detail:
        body["detail"] = detail
    if invalid:
        body["invalidParams"] = [{"param": p, "reason": r} for p, r in invalid]
    return json.dumps(body, separators=(",", ":")).encode()
