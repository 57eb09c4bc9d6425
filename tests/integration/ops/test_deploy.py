"""deploy/: the Grafana dashboard, the alert rules, the compose file and the systemd units.

The dashboard's and the rules' queries are parsed as PromQL (promql-parser)
and every series they select must be one that `ocs serve` or `ocs export`
really exposes: both are started here, driven with a little Gy and RADIUS
load, and scraped. Prometheus's own ``up`` is the one exception. Where
promtool is installed the rules and the scrape configuration also pass
``promtool check``; where ``docker compose`` works the compose file passes
``docker compose config`` (neither is here: the checks below stand in).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from ocs.config import ConfigError, load_config
from ocs.store.embedded import free_port
from tests.serve_harness import ROOT

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "ocs-dashboard.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_OWN = {"up"}

# Sample name -> label names seen on it; None: declared (# TYPE) but no sample yet,
# as a labelled counter before its first increment.
Exposed = dict[str, set[str] | None]
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "untyped": ("",),
}


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except OSError:
        return 0, ""


def _wait_ready(port: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while _get(port, "/readyz")[0] != 200:
        assert time.monotonic() < deadline, f"port {port} not ready"
        time.sleep(0.3)


def _samples(text: str) -> Exposed:
    out: Exposed = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            family = family.removesuffix("_total") if kind == "counter" else family
            for suffix in SAMPLE_SUFFIXES.get(kind, ("",)):
                out.setdefault(family + suffix, None)
            continue
        if not line or line.startswith("#"):
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        assert name
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', line[name.end() :].split("}")[0]))
        out[name.group(0)] = (out.get(name.group(0)) or set()) | labels
    return out


@pytest.fixture(scope="module")
def exposed(scraped: str) -> Exposed:
    return _samples(scraped)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a running server and exporter after Gy and RADIUS load, one after the other."""
    tmp = tmp_path_factory.mktemp("deploy")
    metrics, export_metrics, dia, auth, acct = (free_port() for _ in range(5))
    cfg = tmp / "ocs.yaml"
    cfg.write_text(
        f"redis: {{data_dir: '{tmp / 'redis'}'}}\n"
        f"policies: {{dir: '{ROOT / 'policies'}'}}\n"
        f"metrics: {{port: {metrics}}}\nlogging: {{format: json}}\n"
        f"diameter: {{listen: ['127.0.0.1'], port: {dia}, one_connection_per_peer: false}}\n"
        f"radius: {{listen: ['127.0.0.1'], auth_port: {auth}, acct_port: {acct},"
        " clients: [{name: lt, address: 127.0.0.0/8, secret: testing123}]}\n"
        f"export: {{output_dir: '{tmp / 'export'}', metrics_port: {export_metrics}}}\n"
    )
    ocs = [sys.executable, "-m", "ocs", "--config", str(cfg)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": ROOT}
    server = subprocess.Popen([*ocs, "serve"], **quiet)  # type: ignore[call-overload]
    exporter = None
    try:
        _wait_ready(metrics)
        exporter = subprocess.Popen([*ocs, "export"], **quiet)  # type: ignore[call-overload]
        for protocol in ("gy", "radius"):
            done = subprocess.run(
                [*ocs, "loadtest", "--protocol", protocol, "--duration", "1", "--accounts", "5",
                 "--quiet", "--out", str(tmp / protocol)],
                capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-2000:]
        _wait_ready(export_metrics)
        yield _get(metrics, "/metrics")[1] + "\n" + _get(export_metrics, "/metrics")[1]
    finally:
        for proc in (exporter, server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) of every series selector in ``expr``."""
    out: list[tuple[str, set[str]]] = []

    def walk(node: Any) -> None:
        if type(node).__name__ == "VectorSelector":
            out.append((node.name, {m.name for m in node.matchers.matchers}))
            return
        for attr in ("args", "expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            for item in child if isinstance(child, list) else [child]:
                if item is not None and not isinstance(item, int | float | str):
                    walk(item)

    walk(promql_parser.parse(expr))
    return out


def _check(expr: str, exposed: Exposed) -> list[str]:
    problems = []
    for name, labels in _selectors(expr):
        if name in PROMETHEUS_OWN:
            continue
        if name not in exposed:
            problems.append(f"{name}: not exposed by ocs serve / ocs export")
        elif (seen := exposed[name]) is not None and not labels <= seen | {"le"}:
            problems.append(f"{name}: no label {sorted(labels - seen)}")
    return problems


def _dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]


def _rule_queries() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r["alert"], r["expr"]) for g in groups for r in g["rules"]]


def test_every_dashboard_query_names_exposed_series(exposed: Exposed) -> None:
    """Each panel's PromQL parses and selects only series /metrics really has."""
    queries = _dashboard_queries()
    problems = {title: _check(expr, exposed) for title, expr in queries}
    for title, expr in queries:
        print(f"dashboard ok: {title}: {sorted({n for n, _ in _selectors(expr)})}")
    assert {t: p for t, p in problems.items() if p} == {}
    assert len(queries) >= 15


def test_every_alert_rule_names_exposed_series(exposed: Exposed) -> None:
    """Each rule's PromQL parses and selects only exposed series (or Prometheus's up)."""
    rules = _rule_queries()
    alerts = {name for name, _ in rules}
    for needed in (
        "OcsStorageErrors",
        "OcsDiameterTooBusy",
        "OcsExportLag",
        "OcsPolicyReloadFailed",
        "OcsWorkerRestarts",
    ):
        assert needed in alerts
    problems = {name: _check(expr, exposed) for name, expr in rules}
    for name, expr in rules:
        print(f"rule ok: {name}: {sorted({n for n, _ in _selectors(expr)})}")
    assert {n: p for n, p in problems.items() if p} == {}


def test_the_check_catches_a_misspelt_series(exposed: Exposed) -> None:
    """The check has teeth: an unexposed name and an unknown label are both reported."""
    assert _check("rate(ocs_diameter_answer_total[5m])", exposed)
    assert _check('ocs_export_lag_seconds{partition="1"}', exposed)
    assert not _check('sum(rate(ocs_diameter_answers_total{command="x"}[5m]))', exposed)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    """promtool check rules / check config: SUCCESS."""
    rules = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    print(rules.stdout)
    assert rules.returncode == 0 and "SUCCESS" in rules.stdout, rules.stdout + rules.stderr
    conf = subprocess.run(
        ["promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert conf.returncode == 0, conf.stdout + conf.stderr


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_is_consistent() -> None:
    """Schema-level: services, volumes, health checks, dependencies, and env ocs accepts."""
    data = _compose()
    services = data["services"]
    assert set(services) == {"valkey", "ocs", "export"}
    assert "--appendonly" in services["valkey"]["command"]
    declared = set(data["volumes"])
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for volume in svc.get("volumes", []):
            assert volume.split(":")[0] in declared, f"{name}: undeclared volume {volume}"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep]
        for port in svc.get("ports", []):
            assert re.fullmatch(r"(127\.0\.0\.1:)?\d+:\d+(/tcp|/udp)?", port), port
        environment = {str(k): str(v) for k, v in (svc.get("environment") or {}).items()}
        if environment:
            try:
                load_config(ROOT / "config" / "ocs.yaml", environment)
            except ConfigError as exc:
                pytest.fail(f"{name}: ocs refuses its environment: {exc}")
    for name in ("ocs", "export"):
        probe = services[name]["healthcheck"]["test"][-1]
        assert "/livez" in probe, f"{name} must probe /livez, not readiness"
    assert services["export"]["command"] == ["export"]
    assert "127.0.0.1:9465:9465/tcp" in services["export"]["ports"]


def _docker_compose() -> list[str] | None:
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) is None:
            continue
        done = subprocess.run([*argv, "version"], capture_output=True, timeout=30, check=False)
        if done.returncode == 0:
            return argv
    return None


@pytest.mark.skipif(_docker_compose() is None, reason="docker compose is not installed here")
def test_docker_compose_config_accepts_the_file() -> None:
    """`docker compose config`: the file is valid for Compose itself."""
    argv = _docker_compose()
    assert argv is not None
    done = subprocess.run(
        [*argv, "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / name)
    return unit


@pytest.mark.parametrize(
    ("name", "command"), [("ocs.service", "serve"), ("ocs-export.service", "export")]
)
def test_systemd_units(name: str, command: str, tmp_path: Path) -> None:
    """Type=notify, PIDFile= the --pid-file given, options ocs knows; systemd-analyze verify."""
    unit = _unit(name)
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    argv = shlex.split(service["ExecStart"])
    assert argv[argv.index("--pid-file") + 1] == service["PIDFile"]
    assert command in argv and "/var/lib/ocs" in service["ReadWritePaths"]
    helped = subprocess.run(
        [sys.executable, "-m", "ocs", command, "--help"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert "--pid-file" in helped.stdout
    if name == "ocs-export.service":
        assert "ocs.service" in unit["Unit"]["After"]  # stops before the server
    if shutil.which("systemd-analyze") is None:
        return
    # verify with the real binary in place of the documented /opt/ocs path.
    ocs = shutil.which("ocs") or str(Path(sys.executable).with_name("ocs"))
    text = (DEPLOY / "systemd" / name).read_text().replace("/opt/ocs/venv/bin/ocs", ocs)
    copy = tmp_path / name
    copy.write_text(text)
    other = "ocs.service" if name != "ocs.service" else None
    if other:
        (tmp_path / other).write_text((DEPLOY / "systemd" / other).read_text().replace(
            "/opt/ocs/venv/bin/ocs", ocs))  # fmt: skip
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_metric_names_and_labels_follow_prometheus_conventions(scraped: str) -> None:
    """_total counters, base units, label values as names; the new families are there."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", scraped, re.M))
    for family, kind in types.items():
        if family.startswith("ocs_") and kind == "counter":
            assert family.endswith("_total"), family
        if family.startswith("ocs_") and kind == "histogram":
            assert family.endswith(("_seconds", "_commands")), f"{family}: base unit missing"
    assert not re.search(r"^ocs_\S*_(milliseconds|ms|kilobytes)\b", scraped, re.M)
    for label in ("code", "status"):
        values = set(re.findall(rf'^ocs_radius_\S*{{[^}}]*\b{label}="([^"]*)"', scraped, re.M))
        assert values, f"no RADIUS series with {label}"
        assert not [v for v in values if v.isdigit()], f"{label} values are numbers: {values}"
    assert 'code="accounting_response"' in scraped and 'status="interim"' in scraped
    for family in (
        "ocs_radius_request_seconds",  # a RADIUS latency histogram like Diameter's
        "ocs_redis_round_trip_seconds",
        "ocs_redis_pipeline_commands",
    ):
        assert types.get(family) == "histogram", family
        assert re.search(rf"^{family}_count(\{{[^}}]*\}})? [1-9]", scraped, re.M), family
    assert re.search(
        r'^ocs_charging_outcomes_total{operation="update",result="granted"} [1-9]', scraped, re.M
    )
