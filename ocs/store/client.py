"""Connecting to Redis and turning its failures into StorageUnavailable.

Only ``ocs/`` talks to Redis (DESIGN.md "Data flow" 1). Connection and timeout
errors become :class:`~ocs.vocabulary.errors.StorageUnavailable`; every script is
idempotent, so a caller that sees it may retry the same request safely.

Three kinds of store, one :class:`StoreTarget` each, from the ``redis``
section of the configuration or from one URL (every place a URL travels:
``OCS_REDIS__URL``, ``--redis-url``, the tests' ``OCS_TEST_REDIS_URL``):

- one server: ``redis://``, ``rediss://`` (TLS), ``unix://``;
- Redis / Valkey Cluster: ``redis.cluster: [host:port, ...]`` or
  ``redis+cluster://[user:password@]host:port[,host:port...]``
  (``rediss+cluster://`` with TLS): seed nodes, the rest is discovered.
  Cold paths use redis-py's cluster client (routing by slot, MOVED/ASK,
  topology refresh); the hot path has its own per-primary pipes
  (:mod:`ocs.store.pipe`).
- Sentinel: ``redis.sentinel: {master, nodes}`` or
  ``redis+sentinel://[user:password@]host:port[,host:port...]/master``:
  the sentinels name the primary, again after a failover.

The ACL user and password (``redis.username`` / ``redis.password``, or the
URL's) and TLS (``redis.tls``, or an ``s`` scheme) apply to every data node.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
import redis
from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from ocs.store.keys import DEFAULT_PARTITIONS, META_PARTITIONS
from ocs.vocabulary.errors import StorageUnavailable

if TYPE_CHECKING:
    from ocs.config import RedisConfig

Store: TypeAlias = Redis | RedisCluster
"""An async client of the store: one server (or Sentinel's primary), or a cluster."""

SyncStore: TypeAlias = redis.Redis | redis.cluster.RedisCluster

Mode = Literal["single", "cluster", "sentinel"]
MAX_PARTITIONS = 1024


class StoreConfigError(ValueError):
    """A store URL or address that cannot be used (the message names it)."""


@dataclass(frozen=True, slots=True)
class Tls:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True

    def kwargs(self) -> dict[str, Any]:
        """redis-py's connection arguments for this TLS setup."""
        return {
            "ssl": True,
            "ssl_ca_certs": self.ca_file,
            "ssl_certfile": self.cert_file,
            "ssl_keyfile": self.key_file,
            "ssl_check_hostname": self.check_hostname,
            "ssl_cert_reqs": "required" if self.check_hostname or self.ca_file else "none",
        }

    def context(self) -> ssl.SSLContext:
        """The same setup as an SSLContext (the hot path's own connections)."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.check_hostname = self.check_hostname
        if not self.check_hostname and not self.ca_file:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """Where the store is and how to log in: one server, a cluster or Sentinel."""

    mode: Mode
    url: str | None = None  # one server
    nodes: tuple[tuple[str, int], ...] = ()  # cluster seeds, or sentinels
    master: str | None = None  # Sentinel's name of the primary
    username: str | None = None
    password: str | None = None
    tls: Tls | None = None
    sentinel_auth: tuple[str | None, str | None] = (None, None)
    # Answer only once a replica has the writes (WAIT 1 <replica_timeout>).
    wait_replica: bool = False
    replica_timeout: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def auth(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.password is not None:
            out["password"] = self.password
            if self.username:
                out["username"] = self.username
        return out

    def describe(self) -> str:
        """Where, without the password (logs, /health, ``ocs store info``)."""
        if self.mode == "single":
            parts = urlsplit(self.url or "")
            host = parts.hostname or parts.path
            port = f":{parts.port}" if parts.port else ""
            return f"{parts.scheme}://{host}{port}"
        hosts = ",".join(f"{h}:{p}" for h, p in self.nodes)
        if self.mode == "cluster":
            return f"cluster {hosts}"
        return f"sentinel {hosts} master {self.master}"


def _address(item: str, where: str) -> tuple[str, int]:
    host, sep, port = item.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StoreConfigError(f"{where}: expected host:port, got {item!r}")
    return host, int(port)


def parse_url(url: str) -> StoreTarget:
    """The target one URL names (see the module docstring for the forms)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StoreConfigError(f"{url!r}: not a URL")
    if scheme in ("redis", "rediss", "unix"):
        return StoreTarget("single", url=url)
    base, plus, kind = scheme.partition("+")
    if not plus or base not in ("redis", "rediss") or kind not in ("cluster", "sentinel"):
        raise StoreConfigError(f"{url!r}: unknown scheme {scheme}://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        hostpart = rest
    hostpart, _, query = hostpart.partition("?")
    hosts, _, path = hostpart.partition("/")
    username = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    nodes = tuple(_address(h, url_for_errors(url)) for h in hosts.split(",") if h)
    if not nodes:
        raise StoreConfigError(f"{url_for_errors(url)}: no host:port")
    tls = Tls() if base == "rediss" else None
    if kind == "cluster":
        return StoreTarget("cluster", nodes=nodes, username=username, password=password, tls=tls)
    master = path.strip("/")
    if not master:
        raise StoreConfigError(f"{url_for_errors(url)}: expected /<master name> after the hosts")
    q = parse_qs(query)
    sentinel_auth = (
        q.get("sentinel_username", [None])[0],
        q.get("sentinel_password", [None])[0],
    )
    return StoreTarget(
        "sentinel",
        nodes=nodes,
        master=master,
        username=username,
        password=password,
        tls=tls,
        sentinel_auth=sentinel_auth,
    )


def url_for_errors(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, tail = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{tail}"


def target_of(cfg: RedisConfig, url: str | None = None) -> StoreTarget:
    """The target of a ``redis`` section; ``url`` (the embedded server's, or an
    override such as ``--redis-url``) takes the place of the section's store."""
    if url is not None:
        target = parse_url(url)
    elif cfg.url is not None:
        target = parse_url(cfg.url)
    elif cfg.cluster is not None:
        target = StoreTarget(
            "cluster", nodes=tuple(_address(n, "redis.cluster") for n in cfg.cluster)
        )
    elif cfg.sentinel is not None:
        s = cfg.sentinel
        target = StoreTarget(
            "sentinel",
            nodes=tuple(_address(n, "redis.sentinel.nodes") for n in s.nodes),
            master=s.master,
            sentinel_auth=(s.username, s.password),
        )
    else:
        raise StoreConfigError("no store configured (the embedded server has its own URL)")
    if target.password is None and cfg.password is not None:
        target = replace(target, username=cfg.username, password=cfg.password)
    if cfg.tls.enabled or (target.tls is not None and cfg.tls != type(cfg.tls)()):
        t = cfg.tls
        target = replace(
            target,
            tls=Tls(
                str(t.ca_file) if t.ca_file else None,
                str(t.cert_file) if t.cert_file else None,
                str(t.key_file) if t.key_file else None,
                t.check_hostname,
            ),
        )
    return replace(
        target,
        wait_replica=cfg.durability == "replica",
        replica_timeout=cfg.replica_timeout,
    )


def connect(where: str | StoreTarget, *, timeout: float = 2.0, max_connections: int = 64) -> Store:
    """A pooled async client for one server, a cluster or Sentinel's primary.

    One server's pool blocks (up to ``timeout``) when every connection is
    busy, so a burst of requests waits its turn instead of failing.
    """
    target = parse_url(where) if isinstance(where, str) else where
    if target.mode == "cluster":
        return _cluster(target, timeout, max_connections)
    if target.mode == "sentinel":
        return _sentinel_primary(target, timeout, max_connections)
    assert target.url is not None
    url, tls = _single_tls(target)
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=False,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=max_connections,
        timeout=timeout,
        health_check_interval=30,
        **target.auth(),
        **tls,
    )
    pool.connection_class = _hiredis_packing(pool.connection_class)
    client = Redis(connection_pool=pool)
    _remember(client, target)
    return client


class _BoundedCluster(RedisCluster):
    """redis-py's cluster client whose callers wait for a free connection.

    Its pools fail at once (MaxConnectionsError) when every connection to a
    node is busy; one server's pool (:class:`BlockingConnectionPool`) makes
    the caller wait up to the time-out. So do we: at most ``max_connections``
    commands in flight, the next one waits its turn (a burst of cold-path
    calls, such as provisioning many accounts at once, is served, not refused).
    """

    def __init__(self, *, max_connections: int, timeout: float, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self._turns = asyncio.Semaphore(max_connections)
        self._wait_limit = timeout

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self._wait_limit):
                await self._turns.acquire()
        except TimeoutError:
            raise rexc.ConnectionError(
                f"no free connection to the cluster within {self._wait_limit} s"
            ) from None
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._turns.release()


def _connection_kwargs(target: StoreTarget, timeout: float) -> dict[str, Any]:
    """What every connection to the store's nodes is opened with: time-outs,
    credentials, TLS."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        **target.auth(),
        **(target.tls.kwargs() if target.tls else {}),
    }


def _sentinel_kwargs(target: StoreTarget, timeout: float) -> dict[str, Any]:
    """How the sentinels themselves are asked (their own credentials)."""
    user, password = target.sentinel_auth
    out: dict[str, Any] = {"socket_timeout": timeout}
    if password is not None:
        out.update({"password": password, "username": user})
    return out


def _cluster(target: StoreTarget, timeout: float, max_connections: int) -> RedisCluster:
    client = _BoundedCluster(
        startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
        decode_responses=False,
        max_connections=max_connections,
        timeout=timeout,
        # Keep serving the slots that have a primary while another's replica
        # is promoted (the nodes run with cluster-require-full-coverage no).
        require_full_coverage=False,
        **_connection_kwargs(target, timeout),
    )
    _remember(client, target)
    return client


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (the primary's address asked of the sentinels) whose
    callers wait up to the time-out for a free connection, as one server's do."""


def _sentinel_primary(target: StoreTarget, timeout: float, max_connections: int) -> Redis:
    assert target.master is not None
    sentinel = Sentinel(
        list(target.nodes),
        sentinel_kwargs=_sentinel_kwargs(target, timeout),
        **_connection_kwargs(target, timeout),
    )
    client: Redis = sentinel.master_for(
        target.master,
        connection_pool_class=_BlockingSentinelPool,
        decode_responses=False,
        max_connections=max_connections,
        timeout=timeout,
    )
    _remember(client, target)
    return client


def _remember(client: object, target: StoreTarget) -> None:
    client._ocs_target = target  # type: ignore[attr-defined]


def target_for(client: object) -> StoreTarget | None:
    """The target a client of :func:`connect` was made for (the hot path's pipes
    follow it: same nodes, same login, same TLS)."""
    found = getattr(client, "_ocs_target", None)
    return found if isinstance(found, StoreTarget) else None


def connect_sync(where: str | StoreTarget, *, timeout: float = 10.0) -> SyncStore:
    """A blocking client of the same store (the exporter, which is synchronous)."""
    target = parse_url(where) if isinstance(where, str) else where
    if target.mode == "cluster":
        return redis.cluster.RedisCluster(
            startup_nodes=[
                redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                for h, p in target.nodes
            ],
            decode_responses=False,
            require_full_coverage=False,
            **_connection_kwargs(target, timeout),
        )
    if target.mode == "sentinel":
        assert target.master is not None
        sentinel = redis.sentinel.Sentinel(
            list(target.nodes),
            sentinel_kwargs=_sentinel_kwargs(target, timeout),
            **_connection_kwargs(target, timeout),
        )
        primary: redis.Redis = sentinel.master_for(target.master, decode_responses=False)
        return primary
    url, single_tls = _single_tls(target)
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        **target.auth(),
        **single_tls,
    )


def _single_tls(target: StoreTarget) -> tuple[str, dict[str, Any]]:
    """One server's URL and TLS arguments: with redis.tls, ``rediss://`` (redis-py picks
    its TLS connection by the scheme, and takes no ``ssl`` argument there)."""
    assert target.url is not None
    if target.tls is None:
        return target.url, {}
    url = "rediss://" + target.url.removeprefix("redis://").removeprefix("rediss://")
    if target.url.startswith("unix://"):
        raise StoreConfigError("redis.tls: a unix socket is not TLS (use rediss://host:port)")
    tls = target.tls.kwargs()
    del tls["ssl"]
    return url, tls


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


# Error replies that say "not now" rather than "never": the store is failing
# over, loading, resharding or lost its scripts. Nothing ran, so a retry is safe.
_TRANSIENT = ("NOSCRIPT", "READONLY", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK")
_TRANSIENT_CLASSES = (
    rexc.AskError,  # MovedError too: a redirection left unfollowed
    rexc.TryAgainError,
    rexc.ClusterDownError,
    rexc.ReadOnlyError,
    rexc.NoScriptError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Does ``exc`` mean the store (or the node of a slot) cannot serve now?"""
    if isinstance(exc, rexc.ConnectionError | rexc.TimeoutError | OSError):
        return True
    if isinstance(exc, rexc.ClusterError | rexc.SlotNotCoveredError):
        return True  # redis-py's cluster client gave up after its own retries
    if isinstance(exc, rexc.RedisClusterException):
        return "cannot be connected" in str(exc)
    if isinstance(exc, _TRANSIENT_CLASSES):
        return True  # redis-py strips the code from these messages ("MOVED" etc.)
    if isinstance(exc, rexc.ResponseError):
        return str(exc).startswith(_TRANSIENT) or "NOSCRIPT" in str(exc)
    return False


@asynccontextmanager
async def storage_errors() -> AsyncIterator[None]:
    """Map Redis transport failures (and a cluster's "not now") to StorageUnavailable.

    A script error rolls nothing back in Redis, but every script writes only
    after all its checks: a failure mapped here has changed nothing.
    """
    try:
        yield
    except (rexc.RedisError, rexc.RedisClusterException, OSError) as exc:
        if is_unavailable(exc):
            raise StorageUnavailable(f"redis unavailable: {exc}") from exc
        raise


async def partitions(client: Store) -> int:
    """The fixed partition count of this installation (set at install by
    ``ocs store init``, else the default at first use)."""
    async with storage_errors():
        await client.set(META_PARTITIONS, DEFAULT_PARTITIONS, nx=True)
        raw = await client.get(META_PARTITIONS)
    return int(raw) if raw is not None else DEFAULT_PARTITIONS


class PartitionsFixed(ValueError):
    """The store already has another partition count: it cannot change."""


def check_partition_count(count: int) -> int:
    """``count`` if it is a power of two from 1 to :data:`MAX_PARTITIONS`."""
    if not 1 <= count <= MAX_PARTITIONS or count & (count - 1):
        raise ValueError(
            f"--partitions: expected a power of two from 1 to {MAX_PARTITIONS}, got {count}"
        )
    return count


async def init_partitions(client: Store, count: int) -> bool:
    """Record the partition count; True if this call set it, False if it was
    already ``count``. Another count is refused (:class:`PartitionsFixed`):
    every account's keys are placed by it (``crc32(id) mod count``)."""
    check_partition_count(count)
    async with storage_errors():
        created = bool(await client.set(META_PARTITIONS, count, nx=True))
        raw = await client.get(META_PARTITIONS)
    current = int(raw) if raw is not None else count
    if current != count:
        raise PartitionsFixed(
            f"this store already has {current} partitions, fixed when it was first used; "
            f"it cannot change to {count} (every account's keys are placed by the count: "
            "start a new store, or keep "
            f"{current})"
        )
    return created


def text(value: object) -> str:
    """A reply as text (the client returns bytes; typing says bytes or str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def blob(value: object) -> bytes | None:
    """A reply as bytes, or None."""
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()


async def describe_store(client: Store) -> dict[str, Any]:
    """Kind, partition count and, for a cluster, which primary serves each partition."""
    from ocs.store.keys import records_stream

    async with storage_errors():
        raw = await client.get(META_PARTITIONS)
    count = int(raw) if raw is not None else DEFAULT_PARTITIONS
    target = target_for(client)
    info: dict[str, Any] = {
        "store": target.describe() if target is not None else "redis",
        "partitions": count,
        "partitions_recorded": raw is not None,
    }
    if not isinstance(client, RedisCluster):
        return info
    async with storage_errors():
        await client.initialize()
    by_node: dict[str, dict[str, Any]] = {}
    for node in client.get_primaries():
        by_node[node.name] = {"address": node.name, "slots": 0, "partitions": [], "replicas": []}
    for nodes in client.nodes_manager.slots_cache.values():
        if nodes and nodes[0].name in by_node:
            by_node[nodes[0].name]["slots"] += 1
    async with storage_errors():
        view: Any = await client.cluster_nodes()
    ids = {v["node_id"]: addr for addr, v in view.items()}
    for addr, v in view.items():
        primary = ids.get(v.get("master_id"))
        if "slave" in str(v.get("flags")) and primary in by_node:
            by_node[primary]["replicas"].append(addr)
    for p in range(count):
        owner = client.get_node_from_key(records_stream(p))
        if owner is not None and owner.name in by_node:
            by_node[owner.name]["partitions"].append(p)
    info["primaries"] = sorted(by_node.values(), key=lambda n: n["address"])
    return info
