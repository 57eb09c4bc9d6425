"""The admin API's transport (issue 14 item 2): HTTPS, mutual TLS, and once per node
under ``ocs serve --workers 2``; each against a real ``ocs serve`` and the suite's Redis."""

from __future__ import annotations

import ssl
import time
import uuid
from pathlib import Path

import httpx
import pytest
import trustme

from ocs.store.embedded import free_port
from tests.integration.admin.conftest import admin_config
from tests.serve_harness import cli, serving, wait_for_health


def _wait_tls(url: str, verify: ssl.SSLContext) -> None:
    """Until something answers the TLS handshake (a refusal of it counts)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, verify=verify, timeout=2)
            return
        except httpx.ConnectError as exc:
            if "CERTIFICATE" in str(exc).upper() or time.monotonic() > deadline:
                return  # a TLS refusal means it listens
            time.sleep(0.1)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            return


def test_https_and_mutual_tls(redis_url: str, tmp_path: Path) -> None:
    """tls with client_ca: a client without a certificate is refused in the handshake;
    one with a certificate from that CA (and a token) is served; plain HTTP is not."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "admin.pem"))
    server_cert.private_key_pem.write_to_path(str(tmp_path / "admin.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "clients-ca.pem"))
    client_cert = ca.issue_cert("crm.example.net")
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "crm.pem"))
    port, metrics = free_port(), free_port()
    tls = (
        f", tls: {{cert_file: '{tmp_path / 'admin.pem'}', key_file: '{tmp_path / 'admin.key'}', "
        f"client_ca: '{tmp_path / 'clients-ca.pem'}'}}"
    )
    cfg = admin_config(tmp_path, redis_url, port, metrics, extra=tls)
    token = cli(cfg, "admin", "token", "add", "crm", "--role", "read").stdout.strip()
    url = f"https://127.0.0.1:{port}/accounts?limit=1"
    auth = {"Authorization": f"Bearer {token}"}
    with serving(cfg) as proc:
        wait_for_health(metrics)
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        _wait_tls(url, trusting)
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(url, verify=trusting, headers=auth, timeout=5)
        with_cert = ssl.create_default_context()
        ca.configure_trust(with_cert)
        with_cert.load_cert_chain(str(tmp_path / "crm.pem"))
        served = httpx.get(url, verify=with_cert, headers=auth, timeout=5)
        assert served.status_code == 200
        no_token = httpx.get(url, verify=with_cert, timeout=5)
        assert no_token.status_code == 401
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/accounts", headers=auth, timeout=5)
        assert proc.poll() is None


def test_once_per_node_with_two_workers(redis_url: str, tmp_path: Path) -> None:
    """ocs serve --workers 2: the API answers on its one port (worker 0 serves it), a
    create and a read through it work, and the node keeps running."""
    port, metrics = free_port(), free_port()
    cfg = admin_config(tmp_path, redis_url, port, metrics)
    token = cli(cfg, "admin", "token", "add", "crm", "--role", "operator").stdout.strip()
    text = cfg.read_text() + "workers: 2\n"
    cfg.write_text(text)
    with serving(cfg) as proc:
        wait_for_health(metrics, within=60)
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                client.get("/accounts?limit=1")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "no admin API under --workers 2"
                time.sleep(0.2)
        ident = "e164:9918" + str(uuid.uuid4().int)[:10]
        made = client.post("/accounts", json={"identities": [ident], "plan": "basic"})
        assert made.status_code == 201, made.text
        assert client.get(f"/accounts/{ident}").json()["account"] == made.json()["account"]
        assert proc.poll() is None
