"""Structured logging: identity masking, context merge, JSON/console output."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from ocs.logging import configure, mask, processors
from ocs.vocabulary.types import Identity, IdentityType


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """configure() is process-wide: put the previous configuration back afterwards."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
    structlog.contextvars.clear_contextvars()


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("33612345678", "3361*****78"),
        ("208011234567890", "2080*********90"),
        ("e164:33612345678", "e164:3361*****78"),
        ("imsi:208011234567890", "imsi:2080*********90"),
        ("alice@isp.example", "al**e@isp.example"),
        ("nai:alice@isp.example", "nai:al**e@isp.example"),
        ("abcd", "****"),
        ("", ""),
    ],
)
def test_mask_keeps_a_short_prefix_and_suffix(value: str, masked: str) -> None:
    """Masked values keep enough to correlate events, not to identify the subscriber."""
    assert mask(value) == masked


def test_identity_keys_are_masked_in_events() -> None:
    """subscriber/identity/user_name/msisdn/imsi values are masked; other keys are not."""
    log = structlog.get_logger("test")
    with capture_logs(processors=processors(mask_ids=True)) as logs:
        log.info(
            "quota_granted",
            subscriber="33612345678",
            msisdn="33612345678",
            imsi="208011234567890",
            user_name="alice@isp.example",
            identity=Identity(IdentityType.E164, "33612345678"),
            identities=[Identity(IdentityType.IMSI, "208011234567890"), "nai:bob@isp.example"],
            session="gw1;42",
            granted=1000,
        )
    (event,) = logs
    assert event["subscriber"] == event["msisdn"] == "3361*****78"
    assert event["imsi"] == "2080*********90"
    assert event["user_name"] == "al**e@isp.example"
    assert event["identity"] == "e164:3361*****78"
    assert event["identities"] == ["imsi:2080*********90", "nai:***@isp.example"]
    assert (event["session"], event["granted"]) == ("gw1;42", 1000)
    assert event["log_level"] == "info" and "timestamp" in event


def test_masking_can_be_turned_off() -> None:
    """logging.mask_identities: false leaves identities as they are."""
    log = structlog.get_logger("test")
    with capture_logs(processors=processors(mask_ids=False)) as logs:
        log.info("session_started", subscriber="33612345678")
    assert logs[0]["subscriber"] == "33612345678"


def test_context_is_merged_and_masked(restore_structlog: None) -> None:
    """Context bound with contextvars (peer, subscriber) is in every event, masked too."""
    structlog.contextvars.bind_contextvars(peer="pgw1.example.net", subscriber="33612345678")
    log = structlog.get_logger("test")
    with capture_logs(processors=processors()) as logs:
        log.debug("ccr_received", request_number=0)
    assert logs[0]["peer"] == "pgw1.example.net"
    assert logs[0]["subscriber"] == "3361*****78"


def test_json_output_on_stderr(restore_structlog: None, capsys: pytest.CaptureFixture[str]) -> None:
    """format json: one JSON object per line on stderr, masked, at the configured level."""
    configure(level="info", fmt="json")
    log = structlog.get_logger("json-test")
    log.debug("not_shown", subscriber="33612345678")
    log.info("session_closed", subscriber="33612345678", charged=150)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "session_closed" and event["level"] == "info"
    assert event["subscriber"] == "3361*****78" and event["charged"] == 150
    assert event["timestamp"].endswith("Z")


def test_auto_is_json_when_stderr_is_not_a_terminal(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """format auto, stderr not a TTY (a container, a service manager): JSON."""
    configure(fmt="auto")
    structlog.get_logger("auto-test").warning("redis_slow", ms=12)
    assert json.loads(capsys.readouterr().err)["event"] == "redis_slow"


def test_console_output(restore_structlog: None, capsys: pytest.CaptureFixture[str]) -> None:
    """format console: readable key=value lines, identities masked there too."""
    configure(level="debug", fmt="console")
    structlog.get_logger("console-test").debug("ccr_received", msisdn="33612345678")
    err = capsys.readouterr().err
    assert "ccr_received" in err and "3361*****78" in err and "33612345678" not in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err)


def test_json_exception_is_structured(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception logged in JSON mode is a structured traceback, still one line."""
    configure(fmt="json")
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("exc-test").exception("handler_failed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["exception"][0]["exc_type"] == "ValueError"


def test_logging_follows_a_swapped_stderr(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Configured while a harness had swapped stderr, then closed it: logs go to the new one."""
    swapped = io.StringIO()
    real = sys.stderr
    sys.stderr = swapped
    try:
        configure(fmt="json")
        log = structlog.get_logger("swap-test")
        log.info("first")
    finally:
        sys.stderr = real
    assert json.loads(swapped.getvalue())["event"] == "first"
    swapped.close()
    log.info("second")  # not "I/O operation on closed file"
    assert json.loads(capsys.readouterr().err)["event"] == "second"
