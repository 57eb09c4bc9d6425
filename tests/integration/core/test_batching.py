"""Per-pass batching of Redis commands, and recovery from a flushed script cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from ocs.charging.api import ChargingService
from ocs.store.batch import Batcher
from ocs.vocabulary.types import ServiceKey, ServiceRequest, SessionRef, Usage
from tests.core_fixtures import NewAccount, unique_session


async def test_one_write_per_loop_pass_each_caller_gets_its_replies(core_redis: Redis) -> None:
    """50 callers in one pass share one batch on the hot-path pipe; each gets its own replies."""
    batcher = Batcher(core_redis)
    assert batcher.pipe is not None
    await batcher.submit([("PING",)])  # connected: the next pass is written at once
    sends = 0
    original = batcher.pipe.send

    def counting(commands: Sequence[tuple[Any, ...]]) -> asyncio.Future[list[Any]]:
        nonlocal sends
        sends += 1
        return original(commands)

    batcher.pipe.send = counting  # type: ignore[method-assign]
    key = "ocs:test:batch:" + unique_session()
    replies = await asyncio.gather(
        *(batcher.submit([("INCRBY", key, n), ("ECHO", f"caller-{n}")]) for n in range(1, 51))
    )
    assert sends == 1
    assert [r[1] for r in replies] == [f"caller-{n}".encode() for n in range(1, 51)]
    assert sorted(r[0] for r in replies)[-1] == sum(range(1, 51))


async def test_without_the_pipe_one_redis_py_pipeline_per_pass(core_redis: Redis) -> None:
    """Where the pipe cannot serve (TLS), one redis-py pipeline per pass; same replies."""
    batcher = Batcher(core_redis)
    batcher.pipe = None
    pipelines = 0
    original = core_redis.pipeline

    def counting(*args: object, **kw: object) -> object:
        nonlocal pipelines
        pipelines += 1
        return original(*args, **kw)  # type: ignore[arg-type]

    core_redis.pipeline = counting  # type: ignore[method-assign]
    try:
        key = "ocs:test:batch:" + unique_session()
        replies = await asyncio.gather(
            *(batcher.submit([("INCRBY", key, n), ("ECHO", f"caller-{n}")]) for n in range(1, 51))
        )
        bad = await batcher.submit([("NOSUCHCOMMAND",)])
    finally:
        core_redis.pipeline = original  # type: ignore[method-assign]
    assert pipelines == 2
    assert [r[1] for r in replies] == [f"caller-{n}".encode() for n in range(1, 51)]
    assert sorted(r[0] for r in replies)[-1] == sum(range(1, 51))
    assert isinstance(bad[0], Exception)


async def test_failing_command_is_that_callers_error_only(core_redis: Redis) -> None:
    """One caller's bad command does not fail the other callers of the same pass."""
    batcher = Batcher(core_redis)
    good, bad = await asyncio.gather(
        batcher.submit([("ECHO", "fine")]), batcher.submit([("NOSUCHCOMMAND",)])
    )
    assert good == [b"fine"]
    assert isinstance(bad[0], Exception)


async def test_requests_survive_a_flushed_script_cache(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """SCRIPT FLUSH (as after a Redis restart): the next request reloads scripts and is served once."""
    acct = await new_account()
    s = SessionRef(unique_session())
    await charging.redis.script_flush()
    a = await charging.initiate(s, acct.identity, [ServiceRequest(ServiceKey(10), Usage())])
    assert a.services[0].granted == Usage(total_octets=10_000)


async def test_requests_survive_a_flushed_function_library(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """FUNCTION FLUSH (library gone): the next request loads it again and is served once."""
    assert charging.store.library is not None  # the suite's Valkey has functions
    acct = await new_account()
    await charging.redis.function_flush()
    a = await charging.initiate(
        SessionRef(unique_session()), acct.identity, [ServiceRequest(ServiceKey(10), Usage())]
    )
    assert a.services[0].granted == Usage(total_octets=10_000)
    assert await charging.redis.function_list(library=charging.store.library)


async def test_scripts_are_used_where_functions_are_not(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """Without a function library (Redis < 7) the same requests run as EVALSHA scripts."""
    acct = await new_account()
    plain = ChargingService(charging.redis, charging.policies, charging.partitions)
    assert (
        plain.store.library is None and plain.store.command("initiate", ["k"], b"x")[0] == "EVALSHA"
    )
    a = await plain.initiate(
        SessionRef(unique_session()), acct.identity, [ServiceRequest(ServiceKey(10), Usage())]
    )
    assert a.services[0].granted == Usage(total_octets=10_000)
