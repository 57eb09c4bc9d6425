"""Connecting to Redis and turning its failures into StorageUnavailable.

Only ``ocs/`` talks to Redis (DESIGN.md "Data flow" 1). Connection and timeout
errors become :class:`~ocs.vocabulary.errors.StorageUnavailable`; every script is
idempotent, so a caller that sees it may retry the same request safely.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import hiredis
from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection

from ocs.store.keys import DEFAULT_PARTITIONS, META_PARTITIONS
from ocs.vocabulary.errors import StorageUnavailable


def connect(url: str, *, timeout: float = 2.0, max_connections: int = 64) -> Redis:
    """A pooled async client for ``redis://``, ``rediss://`` or ``unix://`` URLs.

    The pool blocks (up to ``timeout``) when every connection is busy, so a
    burst of requests waits its turn instead of failing.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=False,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=max_connections,
        timeout=timeout,
        health_check_interval=30,
    )
    pool.connection_class = _hiredis_packing(pool.connection_class)
    return Redis(connection_pool=pool)


_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _hiredis_packing(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` (TCP, unix or TLS connection) packing commands with hiredis.

    redis.asyncio packs every command argument by argument in Python (about
    40 us for a 12-argument FCALL); hiredis packs the same RESP in C. The sync
    client already does this (``HiredisRespSerializer``); the asyncio one
    does not, so the hot path would pay it on every charging call.
    """

    def pack_command(self: AbstractConnection, *args: Any) -> list[bytes]:
        head = args[0]
        if isinstance(head, str):  # "CONFIG GET" -> two arguments, as redis-py does
            args = (*head.encode().split(), *args[1:])
        elif b" " in head:
            args = (*head.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            pass
        # Rare: buffers other than bytes (redis-py accepts them), else a DataError.
        args = tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise rexc.DataError(str(exc)) from exc

    if base not in _PACKING:
        _PACKING[base] = type(f"Hiredis{base.__name__}", (base,), {"pack_command": pack_command})
    return _PACKING[base]


@asynccontextmanager
async def storage_errors() -> AsyncIterator[None]:
    """Map Redis transport failures to StorageUnavailable."""
    try:
        yield
    except (rexc.ConnectionError, rexc.TimeoutError, rexc.BusyLoadingError, OSError) as exc:
        raise StorageUnavailable(f"redis unavailable: {exc}") from exc
    except rexc.ResponseError as exc:
        # A script error rolls nothing back in Redis, but every script writes
        # only after all its checks: a failure here has changed nothing.
        if "NOSCRIPT" in str(exc) or "READONLY" in str(exc) or "LOADING" in str(exc):
            raise StorageUnavailable(f"redis not ready: {exc}") from exc
        raise


async def partitions(client: Redis) -> int:
    """The fixed partition count of this installation (set once, at first use)."""
    async with storage_errors():
        await client.set(META_PARTITIONS, DEFAULT_PARTITIONS, nx=True)
        raw = await client.get(META_PARTITIONS)
    return int(raw) if raw is not None else DEFAULT_PARTITIONS


def text(value: object) -> str:
    """A reply as text (the client returns bytes; typing says bytes or str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def blob(value: object) -> bytes | None:
    """A reply as bytes, or None."""
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()
