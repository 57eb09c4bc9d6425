"""The one table from charging outcomes to Gy Result-Codes (RFC 4006 §9, standards §2.8).

Per-service statuses are values (one CCA can mix 2001 and 4012 across MSCCs);
request-level failures are exceptions of :mod:`ocs.vocabulary.errors`, each with
its code here. StorageUnavailable has no fixed code: the deployment chooses
(see :mod:`protocols.diameter.config`, default 3004).
"""

from __future__ import annotations

from ocs.vocabulary import errors
from ocs.vocabulary.types import ServiceStatus
from protocols.diameter.constants import ResultCode

SERVICE_STATUS: dict[ServiceStatus, ResultCode] = {
    ServiceStatus.GRANTED: ResultCode.SUCCESS,
    ServiceStatus.CREDIT_LIMIT_REACHED: ResultCode.CREDIT_LIMIT_REACHED,
    ServiceStatus.SERVICE_DENIED: ResultCode.END_USER_SERVICE_DENIED,
    ServiceStatus.RATING_FAILED: ResultCode.RATING_FAILED,
    ServiceStatus.NOT_APPLICABLE: ResultCode.CREDIT_CONTROL_NOT_APPLICABLE,
}

EXCEPTIONS: dict[type[errors.ChargingError], ResultCode] = {
    errors.UserUnknown: ResultCode.USER_UNKNOWN,
    errors.UnknownSession: ResultCode.UNKNOWN_SESSION_ID,
    errors.AccountBlocked: ResultCode.END_USER_SERVICE_DENIED,
    errors.InvalidRequest: ResultCode.UNABLE_TO_COMPLY,
}


def for_status(status: ServiceStatus) -> ResultCode:
    return SERVICE_STATUS[status]


def for_exception(exc: errors.ChargingError, storage_failure: ResultCode) -> ResultCode:
    if isinstance(exc, errors.StorageUnavailable):
        return storage_failure
    for cls in type(exc).__mro__:
        code = EXCEPTIONS.get(cls)
        if code is not None:
            return code
    return ResultCode.UNABLE_TO_COMPLY
