"""The ``ocs`` CLI, run as a subprocess against the suite's real Redis.

Each bad input gives one clear line on stderr and exit status 2, never a
traceback (issue "charging core" 9).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory, store_url: str) -> Path:
    path = tmp_path_factory.mktemp("cli") / "ocs.yaml"
    path.write_text(
        f"redis: {{url: '{store_url}'}}\npolicies: {{dir: '{ROOT / 'tests/policies'}'}}\n"
    )
    return path


def ocs(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocs", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def msisdn() -> str:
    return "e164:4470" + str(uuid.uuid4().int)[:9]


def test_create_topup_show_block_delete(config_file: Path) -> None:
    """The account life cycle through the CLI, with show --json reflecting each step."""
    ident = msisdn()
    created = ocs(
        config_file,
        "account",
        "create",
        "-i",
        ident,
        "-i",
        "imsi:" + ident[5:],
        "--plan",
        "basic",
        "--money",
        "2.50",
    )
    assert created.returncode == 0, created.stderr
    acct = created.stdout.strip()
    assert ocs(config_file, "account", "topup", ident, "1.25").returncode == 0
    assert (
        ocs(
            config_file,
            "account",
            "topup",
            acct,
            "1GB",
            "--unit",
            "total_octets",
            "--rating-group",
            "10",
            "--expires",
            "+30d",
        ).returncode
        == 0
    )
    shown = ocs(config_file, "account", "show", ident, "--json")
    view = json.loads(shown.stdout)
    assert view["account"] == acct and view["status"] == "active"
    money = [b for b in view["buckets"] if b["unit"] == "money"]
    assert [b["amount"] for b in money] == [3_750_000]
    bundle = [b for b in view["buckets"] if b["unit"] == "total_octets"]
    assert bundle[0]["amount"] == 1_000_000_000 and bundle[0]["services"] == [
        {"rating_group": 10, "service_id": None}
    ]
    assert sorted(view["identities"]) == sorted([ident, "imsi:" + ident[5:]])
    assert (
        ocs(config_file, "account", "adjust", acct, "-0.75", "--reason", "goodwill").returncode == 0
    )
    assert (
        json.loads(ocs(config_file, "account", "show", acct, "--json").stdout)["buckets"][0][
            "amount"
        ]
        == 3_000_000
    )
    assert acct in ocs(config_file, "account", "list").stdout.split()
    assert "blocked" in ocs(config_file, "account", "block", acct).stdout
    assert (
        json.loads(ocs(config_file, "account", "show", acct, "--json").stdout)["status"]
        == "blocked"
    )
    assert ocs(config_file, "account", "unblock", acct).returncode == 0
    assert ocs(config_file, "account", "delete", acct).returncode == 0
    gone = ocs(config_file, "account", "show", ident)
    assert gone.returncode == 2


def test_topup_reference_is_idempotent(config_file: Path) -> None:
    """The same --ref twice credits once."""
    ident = msisdn()
    assert ocs(config_file, "account", "create", "-i", ident, "--plan", "basic").returncode == 0
    for _ in range(2):
        assert (
            ocs(config_file, "account", "topup", ident, "5", "--ref", "pay-" + ident).returncode
            == 0
        )
    view = json.loads(ocs(config_file, "account", "show", ident, "--json").stdout)
    assert view["buckets"][0]["amount"] == 5_000_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("account", "show", "e164:0000000"), "no account has identity e164:0000000"),
        (("account", "show", "nosuchaccount"), "no account nosuchaccount"),
        (("account", "topup", "e164:0000000", "-5"), "must not be negative"),
        (("account", "topup", "e164:0000000", "1.0000001"), "finer than one micro-unit"),
        (("account", "topup", "e164:0000000", "lots"), "expected a decimal string"),
        (("account", "create", "-i", "msisdn:1", "--plan", "basic"), "unknown type 'msisdn'"),
        (("account", "create", "-i", "e164:1", "--plan", "gold"), "unknown plan 'gold'"),
        (("account", "topup", "e164:0000000", "1", "--expires", "tomorrow"), "expected +30d"),
        (("policy", "check", "/nonexistent.yaml"), "no such file"),
    ],
)
def test_bad_input_is_one_clear_line(
    config_file: Path, args: tuple[str, ...], message: str
) -> None:
    """Bad input: exit 2, one line on stderr naming the problem, no traceback."""
    result = ocs(config_file, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_policy_check_names_the_bad_key(config_file: Path, tmp_path: Path) -> None:
    """`ocs policy check` on a broken file names file and key path."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  data: {rating_group: 10, colour: blue}\n")
    result = ocs(config_file, "policy", "check", str(bad))
    assert result.returncode == 2
    assert f"{bad}: services.data.colour: unknown key" in result.stderr
    good = ocs(config_file, "policy", "check", str(ROOT / "tests/policies/test.yaml"))
    assert good.returncode == 0 and "version" in good.stdout


def test_bad_config_is_named(tmp_path: Path) -> None:
    """A bad configuration value names the file, key path and the allowed values."""
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text("redis: {appendfsync: sometimes}\n")
    result = ocs(cfg, "account", "list")
    assert result.returncode == 2
    assert f"{cfg}: redis.appendfsync:" in result.stderr and "always" in result.stderr


def test_unreachable_redis_is_one_line(tmp_path: Path) -> None:
    """Redis down: a clear storage error, not a traceback."""
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text("redis: {url: 'redis://127.0.0.1:1/0', timeout: 0.5}\n")
    result = ocs(cfg, "account", "list")
    assert result.returncode == 2
    assert "redis unavailable" in result.stderr and "Traceback" not in result.stderr
