"""Units a service is rated in, and units it is not (issue 13 item 3), without Redis.

An event charges exactly the quantity its record states; a session report
that counts only units the service is not rated in is refused, not recorded
as free usage.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ocs.charging.events import event_charge
from ocs.charging.requests import rate_request
from ocs.policy.loader import load_policies
from ocs.policy.quantities import MAX_QUANTITY as MAX
from ocs.vocabulary.types import (
    EventAction,
    ServiceKey,
    ServiceRequest,
    ServiceStatus,
    UnitType,
    Usage,
    UsedUnits,
)

TEST_POLICIES = Path(__file__).parents[2] / "policies"
DEBIT, REFUND = EventAction.DIRECT_DEBIT, EventAction.REFUND
SECONDS, OCTETS, EVENTS = UnitType.SECONDS, UnitType.TOTAL_OCTETS, UnitType.EVENTS


@pytest.mark.parametrize(
    ("action", "units", "unit", "expected"),
    [
        (DEBIT, None, EVENTS, (1, Usage(events=1))),  # no units: the event itself
        (DEBIT, Usage(), SECONDS, (1, Usage(seconds=1))),
        (DEBIT, Usage(events=120), SECONDS, None),  # the case: never "1 second"
        (DEBIT, Usage(seconds=120), SECONDS, (120, Usage(seconds=120))),
        (DEBIT, Usage(seconds=0), SECONDS, (0, Usage(seconds=0))),  # zero is zero, not one
        (DEBIT, Usage(seconds=60, events=5), SECONDS, (60, Usage(seconds=60))),
        (DEBIT, Usage(input_octets=3, output_octets=4), OCTETS, (7, Usage(total_octets=7))),
        (DEBIT, Usage(money=500), SECONDS, None),  # a debit in money is not a time
        (REFUND, Usage(money=500), EVENTS, (0, Usage(money=500))),  # a refund of money
        (REFUND, Usage(money=-500), EVENTS, None),  # signed CC-Money: would be a debit
        (REFUND, Usage(events=2), EVENTS, (2, Usage(events=2))),
        (REFUND, Usage(seconds=2), EVENTS, None),
        (EventAction.PRICE_ENQUIRY, Usage(events=3), OCTETS, None),
        (
            EventAction.CHECK_BALANCE,
            Usage(total_octets=2**64 - 1),
            OCTETS,
            (MAX, Usage(total_octets=MAX)),
        ),
    ],
)
def test_event_charge(
    action: EventAction, units: Usage | None, unit: UnitType, expected: object
) -> None:
    """The quantity an event charges and the usage its record states, or None (5031)."""
    assert event_charge(action, units, unit) == expected


@pytest.mark.parametrize(
    ("used", "status"),
    [
        (Usage(events=120), ServiceStatus.RATING_FAILED),  # voice reported in events only
        (Usage(total_octets=5_000), ServiceStatus.RATING_FAILED),
        (Usage(events=0), None),  # zero elsewhere loses nothing
        (Usage(seconds=30, total_octets=5_000), None),  # the rated unit is there
        (Usage(), None),  # an empty report
    ],
)
def test_session_report_in_other_units(used: Usage, status: ServiceStatus | None) -> None:
    """A report counting only units the service is not rated in gets RATING_FAILED."""
    policies = load_policies(TEST_POLICIES)
    voice = ServiceRequest(ServiceKey(30), Usage(), (UsedUnits(used),))
    rated = rate_request(policies, "basic", [voice], 0)
    if status is None:
        assert rated.fixed == {} and len(rated.services) == 1
    else:
        assert rated.fixed[0].status is status and rated.services == []
