"""Bad input to every ``ocs`` command: exit 2 and one line on stderr naming the value.

The README promises it (issue 13 item 15: of 42 probes, 3 gave a traceback,
6 exited 0 and 26 printed more than one line). Each case runs ``ocs`` as a
subprocess against the suite's real Redis and asserts: exit status 2, stdout
empty (nothing was done), exactly one line on stderr, starting ``ocs: error:``
and containing the bad value (or the option it was given to). click's own
usage errors (unknown option, missing argument, a value outside a range) are
held to the same line, ending with where help is. The cases run concurrently
once per module (a process each); every case is its own test.

``ocs export verify`` on files that are wrong (a manifest ``{"files": 5}``)
is not bad input but a finding: exit 1 and one line, below.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
A = "e164:33600000042"  # well formed; no account needs to exist for most cases
LT = ("loadtest", "--plan", "basic")  # a plan of tests/policies: each case breaks one thing

# (case id, arguments, text the error line must contain). "{x}" is a path of
# the `paths` fixture; cases that do not start with "-c" use the good config.
CASES: list[tuple[str, tuple[str, ...], str]] = [
    # configuration and the command line itself
    ("config-binary", ("-c", "/bin/ls", "account", "list"), "/bin/ls: not UTF-8"),
    ("config-missing", ("-c", "{tmp}/missing.yaml", "account", "list"), "missing.yaml: configu"),
    ("config-directory", ("-c", "{tmp}", "account", "list"), "{tmp}: cannot read"),
    ("config-bad-yaml", ("-c", "{bad_yaml_cfg}", "account", "list"), "{bad_yaml_cfg}: not valid"),
    ("config-a-list", ("-c", "{list_cfg}", "account", "list"), "{list_cfg}: expected a mapping"),
    ("config-unknown-key", ("-c", "{unknown_cfg}", "account", "list"), "redis.colour"),
    ("config-bad-policies", ("-c", "{bad_policy_cfg}", "policy", "show"), "{multi_error}"),
    ("unknown-option", ("--colour", "account", "list"), "--colour"),
    ("unknown-command", ("frobnicate",), "frobnicate"),
    ("unknown-subcommand", ("account", "frobnicate"), "frobnicate"),
    # account create
    ("identity-not-digits", ("account", "create", "-i", "e164:abc", "--plan", "basic"), "e164:abc"),
    ("identity-unknown-type", ("account", "create", "-i", "foo:bar", "--plan", "basic"), "foo:bar"),
    ("identity-empty-value", ("account", "create", "-i", "e164:", "--plan", "basic"), "'e164:'"),
    ("identity-no-type", ("account", "create", "-i", "33612345678", "--plan", "basic"), "3361234"),
    ("imsi-not-digits", ("account", "create", "-i", "imsi:12ab", "--plan", "basic"), "imsi:12ab"),
    (
        "e164-too-long",
        ("account", "create", "-i", "e164:1234567890123456", "--plan", "basic"),
        "e164:1234567890123456",
    ),
    ("e164-plus", ("account", "create", "-i", "e164:+3361234", "--plan", "basic"), "+3361234"),
    ("nai-space", ("account", "create", "-i", "nai:bad user", "--plan", "basic"), "nai:bad user"),
    ("identity-twice", ("account", "create", "-i", A, "-i", A, "--plan", "basic"), "twice"),
    (
        "account-id-colon",
        ("account", "create", "--id", "foo:bar", "-i", A, "--plan", "basic"),
        "foo:bar",
    ),
    ("account-id-empty", ("account", "create", "--id", "", "-i", A, "--plan", "basic"), "--id"),
    ("account-id-slash", ("account", "create", "--id", "a/b", "-i", A, "--plan", "basic"), "a/b"),
    (
        "account-id-braces",
        ("account", "create", "--id", "a{p1}", "-i", A, "--plan", "basic"),
        "a{p1}",
    ),
    ("unknown-plan", ("account", "create", "-i", A, "--plan", "nosuch"), "nosuch"),
    ("money-negative", ("account", "create", "-i", A, "--plan", "basic", "--money", "-5"), "'-5'"),
    ("money-exponent", ("account", "create", "-i", A, "--plan", "basic", "--money", "1e3"), "1e3"),
    ("money-words", ("account", "create", "-i", A, "--plan", "basic", "--money", "abc"), "abc"),
    (
        "money-sub-micro",
        ("account", "create", "-i", A, "--plan", "basic", "--money", "0.0000001"),
        "0.0000001",
    ),
    (
        "money-overflow",
        ("account", "create", "-i", A, "--plan", "basic", "--money", "99999999999"),
        "99999999999",
    ),
    ("money-nan", ("account", "create", "-i", A, "--plan", "basic", "--money", "NaN"), "NaN"),
    ("create-no-identity", ("account", "create", "--plan", "basic"), "--identity"),
    (
        "create-unknown-option",
        ("account", "create", "-i", A, "--plan", "basic", "--colour", "red"),
        "--colour",
    ),
    # account topup / adjust
    ("topup-exponent", ("account", "topup", A, "1e3"), "1e3"),
    ("topup-negative", ("account", "topup", A, "-5"), "'-5'"),
    ("topup-zero", ("account", "topup", A, "0"), "'0'"),
    ("topup-overflow", ("account", "topup", A, "99999999999"), "99999999999"),
    ("topup-no-amount", ("account", "topup", A), "AMOUNT"),
    ("rating-group-negative", ("account", "topup", A, "10", "--rating-group", "-3"), "-3"),
    (
        "rating-group-u32",
        ("account", "topup", A, "10", "--rating-group", "4294967296"),
        "4294967296",
    ),
    ("rating-group-words", ("account", "topup", A, "10", "--rating-group", "ten"), "ten"),
    ("octets-bad-unit", ("account", "topup", A, "1XB", "--unit", "total_octets"), "1XB"),
    ("octets-decimal", ("account", "topup", A, "1.5GB", "--unit", "total_octets"), "1.5GB"),
    ("seconds-bad", ("account", "topup", A, "5x", "--unit", "seconds"), "5x"),
    ("events-fraction", ("account", "topup", A, "1.5", "--unit", "events"), "1.5"),
    ("unknown-unit", ("account", "topup", A, "10", "--unit", "furlongs"), "furlongs"),
    ("expires-words", ("account", "topup", A, "10", "--expires", "yesterday"), "yesterday"),
    ("expires-past", ("account", "topup", A, "10", "--expires", "2001-01-01"), "2001-01-01"),
    ("expires-now", ("account", "topup", A, "10", "--expires", "+0d"), "+0d"),
    ("expires-bad-date", ("account", "topup", A, "10", "--expires", "2030-02-30"), "2030-02-30"),
    ("priority-negative", ("account", "topup", A, "10", "--priority", "-1"), "-1"),
    ("priority-words", ("account", "topup", A, "10", "--priority", "abc"), "abc"),
    ("bucket-space", ("account", "topup", A, "10", "--bucket", "a b"), "a b"),
    ("reference-space", ("account", "topup", A, "10", "--ref", "pay 1"), "pay 1"),
    ("topup-bad-identity", ("account", "topup", "nosuch:1", "10"), "nosuch:1"),
    ("topup-no-such-account", ("account", "topup", "e164:33699999999", "10"), "e164:33699999999"),
    ("adjust-zero", ("account", "adjust", A, "0", "--reason", "r"), "'0'"),
    ("adjust-minus-zero", ("account", "adjust", A, "-0.00", "--reason", "r"), "-0.00"),
    ("adjust-words", ("account", "adjust", A, "--reason", "r", "--", "-abc"), "-abc"),
    ("adjust-no-reason", ("account", "adjust", A, "-1"), "--reason"),
    ("adjust-reason-newline", ("account", "adjust", A, "-1", "--reason", "a\nb"), "--reason"),
    # account show / list / block / unblock / delete
    ("show-empty-identity", ("account", "show", "e164:"), "e164:"),
    ("show-no-ref", ("account", "show"), "REF"),
    ("show-no-such-account", ("account", "show", "nosuchaccount"), "nosuchaccount"),
    ("show-bad-id", ("account", "show", "a{b}"), "a{b}"),
    ("list-limit-zero", ("account", "list", "--limit", "0"), "0"),
    ("list-limit-negative", ("account", "list", "--limit", "-5"), "-5"),
    ("list-limit-words", ("account", "list", "--limit", "abc"), "abc"),
    ("block-no-ref", ("account", "block"), "REF"),
    ("unblock-bad-ref", ("account", "unblock", "foo:bar"), "foo:bar"),
    ("delete-no-such-identity", ("account", "delete", "e164:33699999998"), "e164:33699999998"),
    # issue 14: history, statement, records, sessions, terminate, expire, plan, identity,
    # import, --ref / --reason on every change, option typos with click's suggestion
    ("history-bad-from", ("account", "history", A, "--from", "yesterday"), "yesterday"),
    ("history-limit-zero", ("account", "history", A, "--limit", "0"), "'--limit': 0"),
    ("statement-bad-to", ("account", "statement", A, "--to", "2030-13-01"), "2030-13-01"),
    (
        "statement-reversed",
        ("account", "statement", A, "--from", "2030-01-02", "--to", "2030-01-01"),
        "--to",
    ),
    ("statement-no-such-account", ("account", "statement", "e164:33699999996"), "e164:3369999"),
    ("records-bad-ref", ("account", "records", "a{b}"), "a{b}"),
    ("sessions-no-ref", ("account", "sessions"), "REF"),
    ("terminate-no-session", ("account", "terminate", A), "SESSION"),
    ("terminate-no-such-account", ("account", "terminate", "e164:33699999997", "s"), "e164:33699"),
    ("expire-bad-bucket", ("account", "expire", A, "a b"), "a b"),
    ("expire-bad-at", ("account", "expire", A, "b1", "--at", "soon"), "soon"),
    ("plan-unknown", ("account", "plan", A, "gold"), "gold"),
    ("plan-no-plan", ("account", "plan", A), "PLAN"),
    ("identity-add-bad", ("account", "identity", "add", A, "e164:x1"), "e164:x1"),
    ("identity-remove-none", ("account", "identity", "remove", A), "IDENTITY"),
    ("identity-unknown-verb", ("account", "identity", "swap"), "swap"),
    ("import-missing-file", ("account", "import", "{tmp}/nope.csv"), "nope.csv"),
    ("import-wrong-suffix", ("account", "import", "{a_file}"), "{a_file}"),
    ("import-bad-columns", ("account", "import", "{bad_columns}"), "colour"),
    ("block-reason-newline", ("account", "block", A, "--reason", "a\nb"), "--reason"),
    ("delete-ref-space", ("account", "delete", A, "--ref", "a b"), "a b"),
    ("create-ref-space", ("account", "create", "-i", A, "--plan", "basic", "--ref", "a b"), "a b"),
    ("topup-option-typo", ("account", "topup", A, "1", "--refs", "x"), "Did you mean '--ref'"),
    ("adjust-option-typo", ("account", "adjust", A, "-1", "--reson", "x"), "--reason"),
    ("block-option-typo", ("account", "block", A, "--rason", "x"), "Did you mean '--reason'"),
    ("command-typo", ("account", "topp"), "Did you mean 'topup'"),
    ("token-bad-name", ("admin", "token", "add", "a b", "--role", "read"), "a b"),
    ("token-bad-role", ("admin", "token", "add", "crm", "--role", "root"), "root"),
    ("token-no-role", ("admin", "token", "add", "crm"), "--role"),
    ("token-remove-unknown", ("admin", "token", "remove", "nosuch"), "nosuch"),
    # policy, plan
    ("policy-missing-file", ("policy", "check", "/nonexistent.yaml"), "/nonexistent.yaml"),
    ("policy-bad-yaml", ("policy", "check", "{bad_yaml_policy}"), "{bad_yaml_policy}"),
    ("policy-several-errors", ("policy", "check", "{multi_error}"), "services.data.colour"),
    ("policy-directory", ("policy", "check", "{tmp}"), "{tmp}"),
    ("policy-no-plans", ("policy", "check", "{services_only}"), "no plan defined"),
    ("policy-no-files", ("policy", "check"), "FILES"),
    ("renew-bad-account", ("plan", "renew", "--account", "e164:abc"), "e164:abc"),
    # export
    ("verify-empty-directory", ("export", "verify", "{empty_dir}"), "{empty_dir}"),
    ("verify-missing-directory", ("export", "verify", "{tmp}/nope"), "nope"),
    ("verify-a-file", ("export", "verify", "{a_file}"), "{a_file}"),
    (
        "export-missing-config",
        ("export", "--config", "{tmp}/missing.yaml", "--once"),
        "missing.yaml",
    ),
    ("export-unknown-option", ("export", "--frob"), "--frob"),
    # loadtest: each case breaks one option; nothing runs, no server needed
    ("loadtest-port-high", (*LT, "--port", "99999"), "99999"),
    ("loadtest-port-zero", (*LT, "--port", "0"), "'--port': 0"),
    ("loadtest-port-negative", (*LT, "--port", "-1"), "-1"),
    ("loadtest-duration-negative", (*LT, "--duration", "-1"), "-1"),
    ("loadtest-duration-zero", (*LT, "--duration", "0"), "'--duration': 0"),
    ("loadtest-duration-nan", (*LT, "--duration", "nan"), "nan"),
    ("loadtest-rate-zero", (*LT, "--rate", "0"), "'--rate': 0"),
    ("loadtest-rate-inf", (*LT, "--rate", "inf"), "inf"),
    ("loadtest-concurrency-zero", (*LT, "--concurrency", "0"), "'--concurrency': 0"),
    ("loadtest-processes-zero", (*LT, "--processes", "0"), "'--processes': 0"),
    ("loadtest-connections-zero", (*LT, "--connections", "0"), "'--connections': 0"),
    ("loadtest-updates-negative", (*LT, "--updates", "-1"), "-1"),
    ("loadtest-interval-negative", (*LT, "--interval", "-1"), "-1"),
    ("loadtest-timeout-zero", (*LT, "--timeout", "0"), "'--timeout': 0"),
    ("loadtest-drain-negative", (*LT, "--drain", "-1"), "-1"),
    ("loadtest-sessions-zero", (*LT, "--sessions", "0"), "'--sessions': 0"),
    ("loadtest-mscc-zero", (*LT, "--mscc", "0"), "'0'"),
    ("loadtest-mscc-reversed", (*LT, "--mscc", "3-1"), "3-1"),
    ("loadtest-rating-group-words", (*LT, "--rating-groups", "10,abc"), "abc"),
    ("loadtest-rating-group-negative", (*LT, "--rating-groups", "-5"), "-5"),
    ("loadtest-usage-negative", (*LT, "--usage", "-1"), "-1"),
    ("loadtest-event-share", (*LT, "--event-share", "1.5"), "1.5"),
    ("loadtest-event-rating-group", (*LT, "--event-rating-group", "-1"), "-1"),
    ("loadtest-unknown-plan", ("loadtest", "--plan", "nosuch"), "nosuch"),
    ("loadtest-money-exponent", (*LT, "--money", "1e3"), "1e3"),
    ("loadtest-octets-unit", (*LT, "--octets", "5XB"), "5XB"),
    ("loadtest-protocol", (*LT, "--protocol", "sip"), "sip"),
    ("loadtest-accounts-zero", (*LT, "--accounts", "0"), "--accounts: 0"),
    ("loadtest-subscriber", (*LT, "--subscriber", "abc"), "abc"),
    ("loadtest-empty-host", (*LT, "--host", ""), "--host"),
    ("loadtest-out-a-file", (*LT, "--out", "{a_file}"), "{a_file}"),
]

GOOD_POLICY = (ROOT / "tests/policies/test.yaml").read_text()


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("badcli")
    out = {"tmp": str(tmp)}

    def write(name: str, text: str) -> str:
        (tmp / name).write_text(text)
        out[name.split(".")[0]] = str(tmp / name)
        return str(tmp / name)

    write(
        "cfg.yaml",
        f"redis: {{url: '{redis_url}'}}\npolicies: {{dir: '{ROOT / 'tests/policies'}'}}\n",
    )
    write("bad_yaml_cfg.yaml", "redis: {url: [\n")
    write("list_cfg.yaml", "- redis\n- policies\n")
    write("unknown_cfg.yaml", "redis: {colour: red}\n")
    write("bad_yaml_policy.yaml", "services: {data: {rating_group: 10}\n")
    bad = tmp / "bad-policies"
    bad.mkdir()
    (bad / "p.yaml").write_text(
        GOOD_POLICY.replace(
            "data:   {rating_group: 10, unit: total_octets}",
            "data:   {rating_group: 10, unit: total_octets, colour: blue, size: 3}",
        )
    )
    out["multi_error"] = str(bad / "p.yaml")
    write("bad_policy_cfg.yaml", f"redis: {{url: '{redis_url}'}}\npolicies: {{dir: '{bad}'}}\n")
    write("services_only.yaml", GOOD_POLICY.split("\nplans:")[0] + "\n")
    (tmp / "empty").mkdir()
    out["empty_dir"] = str(tmp / "empty")
    out["a_file"] = write("a_file.txt", "not a directory\n")
    write("bad_columns.csv", "identities,plan,colour\ne164:33600000043,basic,red\n")
    return out


def ocs(args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocs", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def fill(text: str, paths: dict[str, str]) -> str:
    """``{name}`` placeholders replaced by paths (other braces, as in 'a{p1}', kept)."""
    for name, value in paths.items():
        text = text.replace("{" + name + "}", value)
    return text


def resolve(args: tuple[str, ...], paths: dict[str, str]) -> tuple[str, ...]:
    filled = tuple(fill(a, paths) for a in args)
    return filled if filled[0] == "-c" else ("-c", paths["cfg"], *filled)


@pytest.fixture(scope="module")
def results(paths: dict[str, str]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case's run, concurrently (each is a process start: about half a second)."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        runs = pool.map(lambda case: ocs(resolve(case[1], paths)), CASES)
        return {case[0]: run for case, run in zip(CASES, runs, strict=True)}


# The first case waits for all of them (a few seconds; more on a loaded machine).
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("case", "args", "names"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(
    results: dict[str, subprocess.CompletedProcess[str]],
    paths: dict[str, str],
    case: str,
    args: tuple[str, ...],
    names: str,
) -> None:
    """Exit 2, nothing on stdout, one line on stderr that names the bad value."""
    run = results[case]
    lines = run.stderr.splitlines()
    assert (run.returncode, len(lines)) == (2, 1), run.stderr[-3000:]
    assert lines[0].startswith("ocs: error: "), lines[0]
    assert fill(names, paths) in lines[0], lines[0]
    assert run.stdout == ""


def test_case_count_covers_the_probes() -> None:
    """At least the issue's 42 probes' worth of cases, over every command."""
    assert len(CASES) >= 42
    commands = {c[1][0] if c[1][0] != "-c" else "config" for c in CASES}
    assert {"account", "policy", "plan", "export", "loadtest", "config"} <= commands


VerifyDir = Callable[[dict[str, object]], Path]


@pytest.fixture
def export_dir(tmp_path: Path) -> VerifyDir:
    """An export directory with one closed period whose manifest is ``manifest``."""

    def make(manifest: dict[str, object]) -> Path:
        root = tmp_path / "export"
        period = root / "2026-11-26"
        period.mkdir(parents=True)
        (root / "layout.json").write_text('{"period": "daily", "timezone": "UTC"}')
        (period / "manifest.json").write_text(json.dumps(manifest))
        return root

    return make


@pytest.mark.parametrize(
    ("manifest", "names"),
    [
        ({"files": 5}, "manifest.json: files: expected an object"),
        ({"files": {}, "exponents": [], "totals": {}}, "exponents: expected an object"),
        ({"files": {"../x": {}}, "exponents": {}, "totals": {}}, "'../x' is not a file name"),
        (
            {"files": {"rows.csv": {"sha256": 5}}, "exponents": {}, "totals": {}},
            "files.rows.csv: expected an object with sha256 and bytes",
        ),
        (
            {"files": {}, "exponents": {"EUR": "two"}, "totals": {}},
            "exponents.EUR: expected an integer",
        ),
    ],
)
def test_verify_reports_a_malformed_manifest_as_a_finding(
    export_dir: VerifyDir, manifest: dict[str, object], names: str
) -> None:
    """A manifest of the wrong shape: exit 1 (a finding, not bad input), one line, no traceback."""
    run = ocs(("export", "verify", str(export_dir(manifest))))
    lines = run.stderr.splitlines()
    assert (run.returncode, len(lines)) == (1, 1), run.stderr[-3000:]
    assert "export verify: FAILED: 2026-11-26/" in lines[0] and names in lines[0], lines[0]


def test_verify_of_an_export_with_nothing_written_yet_is_ok(tmp_path: Path) -> None:
    """An export directory (layout.json) with no period yet is verified, not refused."""
    (tmp_path / "layout.json").write_text("{}")
    run = ocs(("export", "verify", str(tmp_path)))
    assert run.returncode == 0 and "ok: 0 periods" in run.stdout


def test_verify_reports_a_malformed_batch_and_unreadable_rows(tmp_path: Path) -> None:
    """batch.json {"files": 5}, and a listed rows file that is not text: exit 1, one line each."""
    (tmp_path / "layout.json").write_text("{}")
    batch = tmp_path / "2026-11-27" / "p05_1764266400000-0_1764266400002-0"
    batch.mkdir(parents=True)
    (batch / "batch.json").write_text('{"files": 5}')
    run = ocs(("export", "verify", str(tmp_path)))
    assert (run.returncode, len(run.stderr.splitlines())) == (1, 1), run.stderr
    assert "batch.json: files: expected an object" in run.stderr

    rows = b"\xff" * 64
    listing = {"sha256": hashlib.sha256(rows).hexdigest(), "bytes": len(rows)}
    (batch / "rows.csv").write_bytes(rows)
    meta = {
        "files": {"rows.csv": listing},
        "entries": ["1764266400000-0", "1764266400002-0"],
        "partition": 5,
        "rows": 1,
        "totals": {},
    }
    (batch / "batch.json").write_text(json.dumps(meta))
    run = ocs(("export", "verify", str(tmp_path)))
    assert (run.returncode, len(run.stderr.splitlines())) == (1, 1), run.stderr
    assert "rows.csv: unreadable rows" in run.stderr
