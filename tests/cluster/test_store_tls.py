"""TLS to the store: redis.tls (and rediss://) reach a server that speaks only TLS.

The Valkey binary of the suite is built without TLS, so a real TLS terminator stands in
front of it: an asyncio server with a throw-away CA's certificate (trustme) that forwards
the decrypted bytes to the suite's server. Both the cold path (redis-py) and the hot path
(the pipelined connection, ocs/store/pipe.py) must complete the handshake, verify the
server's certificate against ``redis.tls.ca_file``, and refuse a server their CA did not
sign.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
import trustme
from redis import exceptions as rexc

from ocs.config import load_config
from ocs.store.batch import Batcher
from ocs.store.client import connect, storage_errors, target_of
from ocs.vocabulary.errors import StorageUnavailable


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError):
        writer.close()


@pytest_asyncio.fixture(loop_scope="session")
async def tls_front(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """(port, CA file) of a TLS terminator in front of the suite's one server."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    backend = urlsplit(redis_url)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(backend.hostname, backend.port)
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, ca_file
    finally:
        server.close()


async def test_cold_and_hot_paths_speak_tls_and_verify_the_server(
    tls_front: tuple[int, Path], tmp_path: Path
) -> None:
    """redis.tls with the CA: PING through redis-py and a batch through the pipe both
    pass the TLS handshake (the pipe's own connection, not redis-py's fallback)."""
    port, ca_file = tls_front
    env = {
        "OCS_REDIS__URL": f"rediss://127.0.0.1:{port}/0",
        "OCS_REDIS__TLS": f"{{enabled: true, ca_file: '{ca_file}'}}",
    }
    target = target_of(load_config(None, env).redis)
    client = connect(target)
    try:
        assert await client.ping()
        batcher = Batcher(client)
        assert batcher.pipe is not None and batcher.pipe.address.get("ssl_context") is not None
        replies = await batcher.submit([("ECHO", "over tls"), ("PING",)])
        assert replies == [b"over tls", b"PONG"]
        batcher.close()
    finally:
        await client.aclose()


async def test_a_server_the_ca_did_not_sign_is_refused(
    tls_front: tuple[int, Path], tmp_path: Path
) -> None:
    """Trusting another CA: both paths fail the handshake, never talk in clear."""
    port, _ = tls_front
    stranger = tmp_path / "stranger.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    env = {
        "OCS_REDIS__URL": f"rediss://127.0.0.1:{port}/0",
        "OCS_REDIS__TLS": f"{{enabled: true, ca_file: '{stranger}'}}",
    }
    client = connect(target_of(load_config(None, env).redis), timeout=1.0)
    try:
        with pytest.raises(StorageUnavailable, match=r"(?i)certificate"):
            async with storage_errors():
                await client.ping()
        batcher = Batcher(client)
        with pytest.raises(rexc.ConnectionError, match=r"(?i)certificate"):
            await batcher.submit([("PING",)])
        batcher.close()
    finally:
        await client.aclose()
