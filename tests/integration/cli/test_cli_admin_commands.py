"""The CLI commands of issue 14, run as subprocesses against the suite's real Redis:
history, statement, records, sessions, terminate, expire, plan, identity, import, admin
token, --version; human units with --json keeping integers; a repeated --ref says
"already applied" and changes nothing."""

from __future__ import annotations

import getpass
import json
import uuid
from pathlib import Path

import pytest

from ocs.charging.api import ChargingService
from ocs.vocabulary.types import Identity, ServiceKey, ServiceRequest, SessionRef, Usage, UsedUnits
from tests.integration.cli.test_cli import ocs


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Path:
    root = Path(__file__).parents[3]
    tmp = tmp_path_factory.mktemp("cli14")
    path = tmp / "ocs.yaml"
    path.write_text(
        f"redis: {{url: '{redis_url}'}}\npolicies: {{dir: '{root / 'tests/policies'}'}}\n"
        f"admin: {{tokens_file: '{tmp / 'tokens.yaml'}'}}\n"
    )
    return path


def msisdn() -> str:
    return "e164:4471" + str(uuid.uuid4().int)[:9]


def made(config: Path, *extra: str, money: str = "10.00") -> tuple[str, str]:
    ident = msisdn()
    r = ocs(config, "account", "create", "-i", ident, "--plan", "basic", "--money", money, *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), ident


def test_version() -> None:
    """ocs --version: the package version, exit 0."""
    from ocs import __version__

    r = ocs(Path("/dev/null"), "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"ocs {__version__}"


def test_amounts_in_human_units_json_in_integers(config_file: Path) -> None:
    """show: '15.00 EUR' and an ISO 8601 expiry; --json: micro-units; topup prints money."""
    acct, ident = made(config_file, money="15")
    r = ocs(
        config_file,
        "account",
        "topup",
        ident,
        "1GB",
        "--unit",
        "total_octets",
        "--bucket",
        "data1",
        "--expires",
        "2099-01-31T00:00:00+00:00",
    )
    assert r.returncode == 0 and "data1 now 1000000000 octets (1 GB)" in r.stdout
    assert "expires 2099-01-31T" in r.stdout
    shown = ocs(config_file, "account", "show", acct).stdout
    assert "money      15.00 EUR" in shown and "expires 2099-01-31T" in shown
    view = json.loads(ocs(config_file, "account", "show", acct, "--json").stdout)
    assert [b["amount"] for b in view["buckets"] if b["unit"] == "money"] == [15_000_000]
    out = ocs(config_file, "account", "topup", acct, "0.5").stdout
    assert out.strip() == "bucket main now 15.50 EUR"


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("topup", ("2.00",)),
        ("adjust", ("-1.00", "--reason", "goodwill")),
        ("block", ()),
        ("expire", ("promo",)),
    ],
)
def test_a_repeated_ref_is_already_applied(
    config_file: Path, command: str, args: tuple[str, ...]
) -> None:
    """The same --ref twice: the second prints 'already applied' and changes nothing."""
    acct, _ = made(config_file)
    assert (
        ocs(
            config_file, "account", "topup", acct, "1", "--bucket", "promo", "--expires", "+1d"
        ).returncode
        == 0
    )
    ref = f"r-{uuid.uuid4().hex}"
    first = ocs(config_file, "account", command, acct, *args, "--ref", ref)
    before = ocs(config_file, "account", "show", acct, "--json").stdout
    second = ocs(config_file, "account", command, acct, *args, "--ref", ref)
    assert first.returncode == second.returncode == 0, second.stderr
    assert "already applied" not in first.stdout
    assert second.stdout.startswith(f"already applied (--ref {ref})")
    assert ocs(config_file, "account", "show", acct, "--json").stdout == before
    history = ocs(config_file, "account", "history", acct, "--json").stdout.splitlines()
    assert sum(json.loads(h)["reference"] == ref for h in history) == 1


def test_history_plan_identity_expire_delete(config_file: Path) -> None:
    """Each change by the CLI is one audit entry by os:<user> via cli, with the reason."""
    acct, _ = made(config_file)
    extra = "imsi:20810" + str(uuid.uuid4().int)[:10]
    steps = [
        ("account", "adjust", acct, "-2.50", "--reason", "billing error"),
        ("account", "topup", acct, "1", "--bucket", "promo", "--expires", "+2d"),
        ("account", "expire", acct, "promo", "--reason", "promotion ended"),
        ("account", "plan", acct, "bundle"),
        ("account", "identity", "add", acct, extra),
        ("account", "identity", "remove", acct, extra),
        ("account", "unblock", acct),
        ("account", "delete", acct, "--reason", "customer left"),
    ]
    for step in steps:
        r = ocs(config_file, *step)
        assert r.returncode == 0, (step, r.stderr)
    lines = ocs(config_file, "account", "history", acct, "--json").stdout.splitlines()
    entries = [json.loads(ln) for ln in lines]
    assert [e["op"] for e in entries] == [
        "create",
        "adjust",
        "topup",
        "expire",
        "plan",
        "renew",
        "identity_add",
        "identity_remove",
        "unblock",
        "delete",
    ]
    assert {e["who"] for e in entries if e["via"] == "cli"} == {f"os:{getpass.getuser()}"}
    assert entries[1]["reason"] == "billing error" and entries[1]["delta"] == -2_500_000
    assert entries[3]["before"] == 1_000_000 and entries[3]["after"] == 0
    human = ocs(config_file, "account", "history", acct).stdout
    assert "adjust          -2.50 EUR main 10.00 EUR -> 7.50 EUR" in human
    assert "reason 'billing error'" in human


async def test_statement_records_sessions_terminate(
    config_file: Path, charging: ChargingService
) -> None:
    """A live session listed (sessions), terminated (its gateway is asked), charged when
    the gateway ends it (records); the statement: opening + lines = closing = balance."""
    acct, ident = made(config_file, money="5.00")
    sid = "cli;" + uuid.uuid4().hex
    session = SessionRef(sid, "test-owner")
    await charging.initiate(
        session, Identity.parse(ident), [ServiceRequest(ServiceKey(10), Usage())]
    )
    live = ocs(config_file, "account", "sessions", acct)
    assert sid in live.stdout and "owner test-owner" in live.stdout
    asked = ocs(config_file, "account", "terminate", acct, sid, "--reason", "fraud")
    assert asked.returncode == 0 and asked.stdout.strip() == f"asked test-owner to end {sid}"
    used = (UsedUnits(Usage(total_octets=3_000_000)),)
    await charging.terminate(session, "1", [ServiceRequest(ServiceKey(10), used=used)])
    again = ocs(config_file, "account", "terminate", acct, sid)
    assert again.returncode == 2 and "no live session" in again.stderr
    recs = [
        json.loads(x)
        for x in ocs(config_file, "account", "records", acct, "--json").stdout.splitlines()
    ]
    assert [r["session"] for r in recs] == [sid] and recs[0]["charged"] > 0
    st = json.loads(ocs(config_file, "account", "statement", acct, "--json").stdout)
    assert (
        st["opening"] == 0
        and st["opening"] + sum(ln["change"] for ln in st["lines"]) == st["closing"]
    )
    assert [ln["kind"] for ln in st["lines"]] == ["create", "terminate", "session"]
    view = json.loads(ocs(config_file, "account", "show", acct, "--json").stdout)
    assert st["closing"] == sum(b["amount"] for b in view["buckets"] if b["unit"] == "money")
    text = ocs(config_file, "account", "statement", acct).stdout
    assert "opening" in text and "closing" in text and f"session {sid}" in text
    assert "5.00 EUR" in text


def test_import_csv_and_jsonl(config_file: Path, tmp_path: Path) -> None:
    """A CSV of 3 rows (one bad) and a JSONL of 2: created, refused with its line (exit 1);
    imported again: already there, nothing created."""
    a, b, c = msisdn(), msisdn(), msisdn()
    csv_file = tmp_path / "subs.csv"
    csv_file.write_text(
        f"identities,plan,money\n{a},basic,1.50\n{b} imsi:{b[5:]}0,basic,2\ne164:12ab,basic,1\n"
    )
    r = ocs(config_file, "account", "import", str(csv_file))
    assert r.returncode == 1
    assert r.stdout.splitlines()[0] == "3 rows: 2 created, 0 already there, 1 refused"
    assert r.stdout.splitlines()[1].startswith("line 4: ") and "e164:12ab" in r.stdout
    again = ocs(config_file, "account", "import", str(csv_file), "--json")
    report = json.loads(again.stdout)
    assert (report["created"], report["already"], len(report["refused"])) == (0, 2, 1)
    jsonl = tmp_path / "subs.jsonl"
    jsonl.write_text(
        json.dumps({"identities": [c], "plan": "basic", "money": "3.00", "ref": "crm-" + c})
        + "\n\n"
        + json.dumps({"identities": [msisdn()], "plan": "basic", "test": True})
        + "\n"
    )
    done = ocs(config_file, "account", "import", str(jsonl))
    assert done.returncode == 0 and done.stdout.startswith("2 rows: 2 created")
    shown = json.loads(ocs(config_file, "account", "show", c, "--json").stdout)
    assert shown["buckets"][0]["amount"] == 3_000_000
    entries = [
        json.loads(x)
        for x in ocs(config_file, "account", "history", c, "--json").stdout.splitlines()
    ]
    assert entries[0]["via"] == "import" and entries[0]["reference"] == "crm-" + c


def test_admin_tokens_and_openapi(config_file: Path) -> None:
    """token add prints a token once (only its hash is stored), list, remove; openapi
    prints the document kept in the repository."""
    name = "t" + uuid.uuid4().hex[:8]
    made_token = ocs(config_file, "admin", "token", "add", name, "--role", "read")
    token = made_token.stdout.strip()
    assert made_token.returncode == 0 and token.startswith("ocs_")
    stored = (config_file.parent / "tokens.yaml").read_text()
    assert token not in stored and name in stored
    assert f"{name}\tread" in ocs(config_file, "admin", "token", "list").stdout
    twice = ocs(config_file, "admin", "token", "add", name, "--role", "read")
    assert twice.returncode == 2 and "exists" in twice.stderr
    assert ocs(config_file, "admin", "token", "remove", name).returncode == 0
    assert name not in ocs(config_file, "admin", "token", "list").stdout
    doc = json.loads(ocs(config_file, "admin", "openapi").stdout)
    checked_in = json.loads((Path(__file__).parents[3] / "ocs/admin/openapi.json").read_text())
    assert doc == checked_in
