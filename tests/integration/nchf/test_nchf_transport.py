"""The HTTP/2 + HTTP/1.1 transport on real sockets: protocol choice, limits, bad input, stop.

A trivial handler stands in for the charging resources (it echoes the request); the
clients are raw sockets, the load generator's h2 client and httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadtest.nchf_wire import connect
from protocols.nchf.transport import PREFACE, HttpServer, Limits, Request, Response


async def echo(req: Request) -> Response:
    body = {"method": req.method, "path": req.path, "size": len(req.body), "h2": req.http2}
    return Response(200, json.dumps(body).encode())


@pytest_asyncio.fixture(loop_scope="session")
async def server() -> AsyncIterator[HttpServer]:
    srv = HttpServer(echo, Limits(max_body=1000, max_streams=4))
    await srv.listen(["127.0.0.1"], 0, reuse_port=False)
    yield srv
    await srv.stop(0.5)


def base(srv: HttpServer) -> str:
    host, port = srv.addresses[0]
    return f"http://{host}:{port}"


async def test_prior_knowledge_and_http11_on_one_port(server: HttpServer) -> None:
    """The connection preface picks HTTP/2; anything else is HTTP/1.1 (keep-alive, two requests)."""
    async with httpx.AsyncClient(http1=False, http2=True) as h2:
        r = await h2.post(base(server) + "/x", content=b"abc")
        assert r.http_version == "HTTP/2" and r.json() == {
            "method": "POST",
            "path": "/x",
            "size": 3,
            "h2": True,
        }
    async with httpx.AsyncClient(http2=False) as h1:
        for i in range(2):
            r = await h1.post(base(server) + f"/y{i}", content=b"abcd")
            assert (
                r.http_version == "HTTP/1.1"
                and r.json()["path"] == f"/y{i}"
                and r.json()["size"] == 4
            )
            assert r.reason_phrase == "OK"


async def test_more_streams_than_allowed_still_all_answered(server: HttpServer) -> None:
    """SETTINGS_MAX_CONCURRENT_STREAMS = 4: the client queues, 20 requests on one connection all answered."""
    host, port = server.addresses[0]
    client = await connect(host, port)
    assert client.conn.remote_settings.max_concurrent_streams == 4
    answers: list[int] = []
    done = asyncio.Event()

    def answer(status: int, location: bytes, body: bytes) -> None:
        answers.append(status)
        if len(answers) == 20:
            done.set()

    for i in range(20):
        client.post(f"/s{i}".encode(), b"{}", answer)
    await asyncio.wait_for(done.wait(), 10)
    client.close()
    assert answers == [200] * 20


async def test_body_limit_on_both_protocols(server: HttpServer) -> None:
    """A body over max_body: 413 (HTTP/2: that stream only; HTTP/1.1: then the connection closes)."""
    async with httpx.AsyncClient(http1=False, http2=True) as h2:
        assert (await h2.post(base(server) + "/big", content=b"x" * 5000)).status_code == 413
        assert (await h2.post(base(server) + "/small", content=b"x")).status_code == 200
    async with httpx.AsyncClient(http2=False) as h1:
        assert (await h1.post(base(server) + "/big", content=b"x" * 5000)).status_code == 413
        assert (await h1.post(base(server) + "/small", content=b"x")).status_code == 200


async def test_garbage_after_the_preface_closes_that_connection_only(server: HttpServer) -> None:
    """HTTP/2 protocol error: GOAWAY and close; other connections keep being served."""
    host, port = server.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(PREFACE + b"\x00\x00\x08\x00\x00\x00\x00\x00\x00" + b"x" * 8)  # DATA on stream 0
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)  # read to EOF: the server closed
    goaway = data[-17:]  # the last frame: GOAWAY (type 7), 8 bytes, PROTOCOL_ERROR (1)
    assert goaway[:4] == b"\x00\x00\x08\x07" and goaway[-4:] == b"\x00\x00\x00\x01"
    writer.close()
    async with httpx.AsyncClient(http1=False, http2=True) as h2:
        assert (await h2.post(base(server) + "/after", content=b"{}")).status_code == 200


async def test_malformed_http11_gets_400_and_close(server: HttpServer) -> None:
    """A request line h11 cannot parse: 400 then close, the server keeps serving."""
    host, port = server.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"NOT A REQUEST\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 400")
    writer.close()
    async with httpx.AsyncClient(http2=False) as h1:
        assert (await h1.post(base(server) + "/after", content=b"{}")).status_code == 200


async def test_stop_lets_requests_finish_then_sends_goaway() -> None:
    """stop(): a request in progress is answered, then GOAWAY closes the connection."""
    release = asyncio.Event()

    async def slow(req: Request) -> Response:
        await release.wait()
        return Response(200, b"{}")

    srv = HttpServer(slow)
    await srv.listen(["127.0.0.1"], 0, reuse_port=False)
    host, port = srv.addresses[0]
    client = await connect(host, port)
    got: list[int] = []
    client.post(b"/slow", b"{}", lambda status, _loc, _body: got.append(status))
    await asyncio.sleep(0.1)
    stopping = asyncio.create_task(srv.stop(5.0))
    await asyncio.sleep(0.1)
    release.set()
    await asyncio.wait_for(stopping, 5)
    await asyncio.sleep(0.1)
    assert got == [200] and client.terminated is not None


async def test_expect_100_continue_is_answered(server: HttpServer) -> None:
    """HTTP/1.1 `Expect: 100-continue` (curl sends it for bodies over 1 KiB): 100 at once, then the answer."""
    host, port = server.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /c HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"{}")
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert final.startswith(b"HTTP/1.1 200")
    writer.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.binary(max_size=300), h2=st.booleans())
async def test_any_bytes_never_stop_the_server(server: HttpServer, junk: bytes, h2: bool) -> None:
    """Whatever arrives (after the HTTP/2 preface or as HTTP/1.1), the next client is served."""
    host, port = server.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((PREFACE if h2 else b"") + junk)
    writer.write_eof()
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(reader.read(), 2)
    writer.close()
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        assert (await client.post(base(server) + "/after", content=b"{}")).status_code == 200
