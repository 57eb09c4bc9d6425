"""A script error this version does not know is a StoreProtocolError naming it, never a guess."""

from __future__ import annotations

import pytest

from ocs.charging.api import ChargingService
from ocs.policy.loader import PolicySet
from ocs.store.calls import StoreProtocolError
from ocs.store.scripts import HOT_FUNCTIONS
from ocs.vocabulary import errors
from ocs.vocabulary.types import (
    EventAction,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    TerminationCause,
    Usage,
)
from tests.core_fixtures import NewAccount, unique_session

# A library whose every function refuses with a code no ocs version uses
# (the session scripts answer 'E' and the code, the others a msgpack map).
SESSION_SCRIPTS = ("initiate", "update", "terminate")
MYSTERY = "\n".join(
    ["#!lua name=mystery_lib"]
    + [
        f"redis.register_function('mystery_lib_{name}', function(KEYS, ARGV) return "
        + ("'Emystery_code'" if name in SESSION_SCRIPTS else "cmsgpack.pack({e = 'mystery_code'})")
        + " end)"
        for name in HOT_FUNCTIONS
    ]
)


@pytest.fixture
async def mystery(charging: ChargingService, test_policies: PolicySet) -> ChargingService:
    service = ChargingService(charging.redis, test_policies, charging.partitions)
    await service.store.load()
    await charging.redis.function_load(MYSTERY, replace=True)
    service.store.library = "mystery_lib"
    return service


async def test_unknown_session_script_error_names_its_code(
    mystery: ChargingService, new_account: NewAccount
) -> None:
    """initiate / update / terminate: an unknown code is StoreProtocolError, not UnknownSession."""
    acct = await new_account()
    s = SessionRef(unique_session())
    ask = [ServiceRequest(ServiceKey(10), Usage())]
    calls = [
        lambda: mystery.initiate(s, acct.identity, ask),
        lambda: mystery.update(s, "1", ask, acct.identity),
        lambda: mystery.terminate(s, "2", ask, TerminationCause.NORMAL, acct.identity),
    ]
    for call in calls:
        with pytest.raises(StoreProtocolError, match="mystery_code"):
            await call()


async def test_unknown_event_script_error_names_its_code(
    mystery: ChargingService, new_account: NewAccount
) -> None:
    """A one-shot event: an unknown code is StoreProtocolError, not UserUnknown."""
    acct = await new_account()
    with pytest.raises(StoreProtocolError, match="mystery_code") as raised:
        await mystery.event(
            "ev-" + unique_session(),
            acct.identity,
            ServiceKey(40),
            EventAction.DIRECT_DEBIT,
            Usage(events=1),
        )
    assert not isinstance(raised.value, errors.ChargingError)
