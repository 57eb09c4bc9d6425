"""The operations endpoint over a real socket: probes, health details, metrics negotiation."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from ocs import http as ops
from ocs.http import register_health, serve_http, set_listeners_up, unregister_health


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("ocs_test_things", "Things counted", ["kind"], registry=reg).labels("a").inc(3)
    return reg


@pytest.fixture
def components() -> Iterator[dict[str, dict[str, Any]]]:
    """Health providers the test edits in place; removed afterwards."""
    parts: dict[str, dict[str, Any]] = {
        "redis": {"ok": True, "url": "unix:///secret/redis.sock", "pid": 4242},
        "policies": {"ok": True, "version": "abc", "warning": None, "last_error": None},
    }
    for name in parts:
        register_health(name, lambda name=name: parts[name])
    set_listeners_up(True)
    yield parts
    for name in parts:
        unregister_health(name)
    set_listeners_up(False)


@pytest.fixture
async def endpoint(registry: CollectorRegistry) -> AsyncIterator[int]:
    server = await serve_http("127.0.0.1", 0, registry, details=False)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    def call() -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    return await asyncio.to_thread(call)


async def test_livez_answers_from_the_event_loop(endpoint: int) -> None:
    """/livez is 200 with nothing registered: liveness depends on no component."""
    status, _, body = await request(endpoint, "GET", "/livez")
    assert (status, body) == (200, b"ok\n")


async def test_readyz_waits_for_listeners_and_components(
    endpoint: int, components: dict[str, dict[str, Any]]
) -> None:
    """/readyz: 503 with the reason until listeners are up and every component is ok."""
    assert (await request(endpoint, "GET", "/readyz"))[0] == 200
    set_listeners_up(False)
    status, _, body = await request(endpoint, "GET", "/readyz")
    assert status == 503 and b"listeners: not up yet" in body
    set_listeners_up(True)
    components["redis"]["ok"] = False
    status, _, body = await request(endpoint, "GET", "/readyz")
    assert status == 503 and body == b"redis: not ok\n"
    assert (await request(endpoint, "GET", "/livez"))[0] == 200  # alive all the same


async def test_a_warning_is_not_a_failure(
    endpoint: int, components: dict[str, dict[str, Any]]
) -> None:
    """A refused policy reload: /health 200 with status warning, /readyz still ready."""
    components["policies"]["warning"] = "reload refused; version abc still serves"
    components["policies"]["last_error"] = "policies/plans.yaml: plans.prepaid: bad"
    status, _, body = await request(endpoint, "GET", "/health")
    report = json.loads(body)
    assert status == 200 and report["ok"] is True and report["status"] == "warning"
    assert report["components"]["policies"]["warning"].endswith("still serves")
    assert (await request(endpoint, "GET", "/readyz"))[0] == 200


async def test_health_hides_details_unless_configured(
    registry: CollectorRegistry, endpoint: int, components: dict[str, dict[str, Any]]
) -> None:
    """Socket paths, PIDs and error texts only with health_details: true."""
    components["policies"]["last_error"] = "policies/plans.yaml: plans.prepaid: bad"
    _, _, body = await request(endpoint, "GET", "/health")
    assert b"secret" not in body and b"4242" not in body and b"plans.yaml" not in body
    assert json.loads(body)["components"]["redis"] == {"ok": True}
    detailed = await serve_http("127.0.0.1", 0, registry, details=True)
    try:
        port = detailed.sockets[0].getsockname()[1]
        report = json.loads((await request(port, "GET", "/health"))[2])
        assert report["components"]["redis"]["url"] == "unix:///secret/redis.sock"
        assert report["components"]["policies"]["last_error"].startswith("policies/plans.yaml")
    finally:
        detailed.close()


async def test_failing_component_and_crashing_provider_are_503(
    endpoint: int, components: dict[str, dict[str, Any]]
) -> None:
    """A component not ok, or a provider that raises, turns /health into 503."""
    register_health("broken", lambda: 1 // 0)  # type: ignore[return-value]
    try:
        status, _, body = await request(endpoint, "GET", "/health")
        report = json.loads(body)
        assert status == 503 and report["status"] == "failing"
        assert report["components"]["broken"] == {"ok": False}
    finally:
        unregister_health("broken")


async def test_metrics_text_and_openmetrics(endpoint: int) -> None:
    """Prometheus text by default; OpenMetrics (with # EOF) when the scraper asks for it."""
    status, headers, body = await request(endpoint, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b'ocs_test_things_total{kind="a"} 3.0' in body
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    status, headers, body = await request(endpoint, "GET", "/metrics", {"Accept": accept})
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n") and b'ocs_test_things_total{kind="a"} 3.0' in body


async def test_only_the_given_registry_is_served(endpoint: int) -> None:
    """The endpoint shows its process's registry, not the module-global default one."""
    _, _, body = await request(endpoint, "GET", "/metrics")
    assert b"python_gc_objects_collected_total" not in body  # the default registry's


async def test_head_has_the_headers_and_no_body(endpoint: int) -> None:
    """HEAD: the status and Content-Length of GET, no body."""
    _, _, get_body = await request(endpoint, "GET", "/metrics")
    status, headers, body = await request(endpoint, "HEAD", "/metrics")
    assert status == 200 and body == b""
    assert int(headers["content-length"]) == len(get_body) > 0
    assert (await request(endpoint, "HEAD", "/livez"))[0] == 200


async def test_other_methods_and_paths(endpoint: int) -> None:
    """POST: 405 with Allow; an unknown path: 404 naming the pages."""
    status, headers, _ = await request(endpoint, "POST", "/metrics")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, _, body = await request(endpoint, "GET", "/nope")
    assert status == 404 and b"/livez" in body


async def test_keep_alive_serves_several_requests_on_one_connection(endpoint: int) -> None:
    """A scraper reusing its connection gets every answer on it."""

    def two() -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", endpoint, timeout=5)
        try:
            out = []
            for path in ("/livez", "/metrics", "/livez"):
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                out.append(resp.status)
            return out
        finally:
            conn.close()

    assert await asyncio.to_thread(two) == [200, 200, 200]


async def test_garbage_gets_400_and_the_endpoint_keeps_serving(endpoint: int) -> None:
    """Bytes that are not HTTP: 400 and close; the next client is served."""

    def garbage() -> bytes:
        with socket.create_connection(("127.0.0.1", endpoint), timeout=5) as sock:
            sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
            return sock.recv(1024)

    assert (await asyncio.to_thread(garbage)).startswith(b"HTTP/1.1 400")
    assert (await request(endpoint, "GET", "/livez"))[0] == 200


async def test_a_silent_client_is_dropped(endpoint: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that never sends a request is closed after the read timeout."""
    monkeypatch.setattr(ops, "READ_TIMEOUT", 0.2)

    def idle() -> bytes:
        with socket.create_connection(("127.0.0.1", endpoint), timeout=5) as sock:
            return sock.recv(1024)

    assert await asyncio.to_thread(idle) == b""
