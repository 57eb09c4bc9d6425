"""The hot-path pipe (ocs/store/pipe.py) against a real Redis: replies in order,
error replies as redis-py's exceptions, lost connections and time-outs fail
what is in flight and the next batch reconnects, unix sockets and SELECT."""

from __future__ import annotations

import asyncio

import pytest
from redis import exceptions as rexc
from redis.asyncio import Redis

from ocs.store.client import connect
from ocs.store.pipe import RedisPipe
from tests.core_fixtures import unique_session


def _pipe(client: Redis) -> RedisPipe:
    pipe = RedisPipe.for_client(client)
    assert pipe is not None
    return pipe


async def test_replies_come_back_in_order_across_batches(core_redis: Redis) -> None:
    """Several batches written before any reply: each gets its own replies, in order."""
    pipe = _pipe(core_redis)
    await pipe.execute([("PING",)])
    key = "ocs:test:pipe:" + unique_session()
    futures = [pipe.send([("INCR", key), ("ECHO", f"b{n}")]) for n in range(20)]
    replies = await asyncio.gather(*futures)
    assert replies == [[n + 1, f"b{n}".encode()] for n in range(20)]
    pipe.close()


async def test_error_replies_are_redis_py_exceptions(core_redis: Redis) -> None:
    """NOSCRIPT is NoScriptError (scripts get reloaded on it); other errors are ResponseError."""
    pipe = _pipe(core_redis)
    key = "ocs:test:pipe:" + unique_session()
    replies = await pipe.execute([("EVALSHA", "0" * 40, 0), ("SET", key, "x"), ("LPUSH", key, "y")])
    assert isinstance(replies[0], rexc.NoScriptError)
    assert replies[1] is True or replies[1] == b"OK"
    assert isinstance(replies[2], rexc.ResponseError) and "WRONGTYPE" in str(replies[2])
    pipe.close()


async def test_lost_connection_fails_in_flight_then_reconnects(core_redis: Redis) -> None:
    """The server drops the connection mid-request: that batch fails with
    ConnectionError (so callers answer storage unavailable), the next one reconnects."""
    pipe = _pipe(core_redis)
    (client_id,) = await pipe.execute([("CLIENT", "ID")])
    blocked = pipe.send([("BLPOP", "ocs:test:pipe:" + unique_session(), 0)])
    await asyncio.sleep(0.05)
    killed = await core_redis.execute_command("CLIENT", "KILL", "ID", client_id)
    assert int(killed) == 1  # only the pipe's connection: the suite shares this server
    with pytest.raises(rexc.ConnectionError):
        await asyncio.wait_for(blocked, 5)
    assert await pipe.execute([("ECHO", "again")]) == [b"again"]
    pipe.close()


async def test_no_answer_within_the_timeout_fails_and_reconnects(redis_url: str) -> None:
    """Redis does not answer within the socket time-out: TimeoutError, connection
    dropped, and the next batch is served on a new connection."""
    client = connect(redis_url, timeout=0.3)
    pipe = _pipe(client)
    with pytest.raises(rexc.TimeoutError):
        await asyncio.wait_for(
            pipe.execute([("BLPOP", "ocs:test:pipe:" + unique_session(), 10)]), 5
        )
    assert await pipe.execute([("ECHO", "after")]) == [b"after"]
    pipe.close()
    await client.aclose()


async def test_unix_socket_and_database_selection(core_redis: Redis) -> None:
    """A unix:// URL with db=3: the pipe connects over the socket and SELECTs 3."""
    path = (await core_redis.config_get("unixsocket"))["unixsocket"]
    if not path:
        pytest.skip("the test Redis has no unix socket (OCS_TEST_REDIS_URL given)")
    client = connect(f"unix://{path}?db=3")
    pipe = _pipe(client)
    key = "ocs:test:pipe:" + unique_session()
    assert await pipe.execute([("SET", key, "in-db-3")]) in ([True], [b"OK"])
    assert await client.get(key) == b"in-db-3"
    assert await core_redis.get(key) is None  # db 0 of the same server
    await client.delete(key)
    pipe.close()
    await client.aclose()


async def test_unreachable_server_is_a_connection_error() -> None:
    """Nothing listening: ConnectionError (mapped to StorageUnavailable by callers)."""
    client = connect("redis://127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(rexc.ConnectionError):
        await _pipe(client).execute([("PING",)])
    await client.aclose()
