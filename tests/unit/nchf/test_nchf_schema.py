"""Request validation against the bundled OpenAPI subset: the first bad attribute, named."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.nchf import schema
from protocols.nchf.config import NotifyConfig
from protocols.nchf.notify import backoff_delays

GOOD: dict[str, Any] = {
    "nfConsumerIdentification": {"nodeFunctionality": "SMF"},
    "invocationTimeStamp": "2026-01-01T00:00:00.123+02:00",
    "invocationSequenceNumber": 0,
    "multipleUnitUsage": [
        {
            "ratingGroup": 10,
            "requestedUnit": {"totalVolume": 2**64 - 1},
            "usedUnitContainer": [{"localSequenceNumber": 1, "time": 2**32 - 1}],
        }
    ],
}


def test_a_full_request_and_unknown_attributes_pass() -> None:
    """Valid bodies pass, with attributes the schema does not name (TS 29.501 §5.2.4)."""
    schema.validate(GOOD)
    schema.validate({**GOOD, "pDUSessionChargingInformation": {"x": 1}, "newThing": [None]})


@pytest.mark.parametrize(
    ("body", "pointer", "cause"),
    [
        ({**GOOD, "invocationSequenceNumber": 2**32}, "/invocationSequenceNumber", "MANDATORY_IE_INCORRECT"),
        ({**GOOD, "invocationSequenceNumber": True}, "/invocationSequenceNumber", "MANDATORY_IE_INCORRECT"),
        ({**GOOD, "notifyUri": 5}, "/notifyUri", "OPTIONAL_IE_INCORRECT"),
        ({**GOOD, "multipleUnitUsage": []}, "/multipleUnitUsage", "OPTIONAL_IE_INCORRECT"),
        ({**GOOD, "multipleUnitUsage": [{"ratingGroup": 1, "requestedUnit": {"time": 2**32}}]}, "/multipleUnitUsage/0/requestedUnit/time", "OPTIONAL_IE_INCORRECT"),
        ({k: v for k, v in GOOD.items() if k != "invocationTimeStamp"}, "/invocationTimeStamp", "MANDATORY_IE_MISSING"),
    ],
)  # fmt: skip
def test_violations_name_the_attribute(body: dict[str, Any], pointer: str, cause: str) -> None:
    """The JSON Pointer of the first offending attribute and the TS 29.500 cause."""
    with pytest.raises(schema.SchemaViolation) as exc:
        schema.validate(body)
    assert (exc.value.pointer, exc.value.cause) == (pointer, cause)
    assert exc.value.reason


def test_json_pointer_escapes() -> None:
    """RFC 6901: '~' as ~0 and '/' as ~1."""
    assert schema.pointer(["a/b", "c~d", "0"]) == "/a~1b/c~0d/0"


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=20))  # fmt: skip
def test_any_json_either_passes_or_is_named(value: Any) -> None:
    """Whatever JSON arrives, validation passes or raises SchemaViolation, nothing else."""
    causes = {"MANDATORY_IE_MISSING", "MANDATORY_IE_INCORRECT", "OPTIONAL_IE_INCORRECT"}
    cause = ""
    try:
        schema.validate(value)
    except schema.SchemaViolation as exc:
        cause = exc.cause
    assert cause == "" or cause in causes


def test_notification_backoff_is_bounded() -> None:
    """Retries wait initial, doubled, capped at max_backoff; exactly `retries` of them."""
    cfg = NotifyConfig(retries=5, initial_backoff=0.5, max_backoff=3.0)
    assert backoff_delays(cfg) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delays(NotifyConfig(retries=0)) == []
