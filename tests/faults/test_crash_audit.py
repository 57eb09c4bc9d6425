"""The crash audit's verdicts (tests/faults/crash_harness.py): what counts as lost and as
doubled, so that the crash tests' zeros mean something."""

from __future__ import annotations

from tests.faults.crash_harness import Entry, classify


def test_acknowledged_and_present_is_neither_lost_nor_doubled() -> None:
    """A record holding what was acknowledged, or more but no more than was sent: fine."""
    ledger = {"a": Entry(acked=10, sent=10, closed=True), "b": Entry(acked=5, sent=9)}
    assert classify(ledger, {"a": [10], "b": [9]}) == (0, 0, 0)


def test_less_than_acknowledged_is_lost() -> None:
    """11 MB acknowledged, 10 MB recorded (the issue's everysec case); a closed session
    without a record; a session acknowledged and absent."""
    ledger = {
        "short": Entry(acked=11, sent=11, closed=True),
        "gone": Entry(acked=0, sent=0, closed=True),
        "open": Entry(acked=4, sent=6),
    }
    assert classify(ledger, {"short": [10]}) == (3, 1 + 0 + 4, 0)


def test_two_records_or_more_than_sent_is_doubled() -> None:
    """One session recorded twice, another charged beyond what the gateway ever sent."""
    ledger = {"twice": Entry(acked=5, sent=5, closed=True), "more": Entry(acked=5, sent=5)}
    assert classify(ledger, {"twice": [5, 5], "more": [6]}) == (0, 0, 2)
