"""Structured logging: identity masking, context merge, JSON/console output."""

from __future__ import annotations

import io
import json
import logging
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


MSISDN = "33612345678"


def _crash(depth: int, msisdn: str) -> None:
    """Raise from ``depth`` frames down, with identities and a large value in the locals."""
    identity_key = f"e164:{msisdn}"
    request = {"subscriber": msisdn, "state": "LOCAL-STATE-" * 1_000}
    if depth:
        _crash(depth - 1, msisdn)
    raise LookupError(f"no plan for {identity_key} in {len(request)} fields: {'y' * 20_000}")


def _crash_chain(links: int) -> None:
    try:
        if links:
            _crash_chain(links - 1)
        else:
            _crash(5, MSISDN)
    except LookupError as exc:
        raise LookupError(f"link {links} for e164:{MSISDN}") from exc


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_crash_logs_carry_no_locals_no_identities_and_stay_small(
    restore_structlog: None, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """A crash 300 frames deep, chained 10 times, with an MSISDN and 20 KB in every frame's
    locals and in its message: no identity in clear, no locals, a few KB (issue 13 item 14;
    before: every frame's locals, the MSISDN and identity key in clear, ~36 KB a request)."""
    configure(fmt=fmt, mask_ids=True)
    try:
        _crash_chain(10)
    except LookupError as exc:
        structlog.get_logger("ocs.diameter").exception("diameter_request_crashed", error=repr(exc))
    try:
        _crash(300, MSISDN)
    except LookupError:
        structlog.get_logger("ocs.radius").exception("radius_internal_error")
    err = capsys.readouterr().err
    print(f"{fmt}: {len(err)} characters for two crashes")
    assert MSISDN not in err
    assert "3361*****78" in err  # masked, still there to correlate
    assert "LOCAL-STATE" not in err  # no frame locals
    assert len(err) < 2 * 12_000
    if fmt == "json":
        chained, deep = (json.loads(line) for line in err.strip().splitlines())
        assert len(chained["exception"]) <= 4  # 3 kept + "n more"
        assert len(deep["exception"][0]["frames"]) <= 21  # 10 + 10 + "skipped"
        assert all(set(f) == {"filename", "lineno", "name"} for f in deep["exception"][0]["frames"])


def test_stdlib_records_go_through_the_same_chain(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """asyncio's "exception was never retrieved" and library logs: JSON, masked, bounded."""
    configure(fmt="json", mask_ids=True)
    configure(fmt="json", mask_ids=True)  # configured twice: still one handler
    try:
        _crash(50, MSISDN)
    except LookupError as exc:
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=exc)
    (line,) = capsys.readouterr().err.strip().splitlines()
    event = json.loads(line)
    assert (event["event"], event["level"], event["logger"]) == (
        "Task exception was never retrieved",
        "error",
        "asyncio",
    )
    assert MSISDN not in line and "LOCAL-STATE" not in line
    assert event["exception"][0]["exc_type"] == "LookupError"
    assert len(line) < 12_000


def test_masking_off_leaves_messages_but_still_no_locals(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """logging.mask_identities: false: messages as they are, locals still never logged."""
    configure(fmt="json", mask_ids=False)
    try:
        _crash(3, MSISDN)
    except LookupError:
        structlog.get_logger("t").exception("crash")
    err = capsys.readouterr().err
    assert f"e164:{MSISDN}" in err and "LOCAL-STATE" not in err
