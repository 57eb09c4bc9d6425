"""The Diameter Gy listener: what all connections of one process share, and its life cycle.

:class:`DiameterNode` is the connections' owner (:class:`transport.Owner`): it
holds the application, the traffic (duplicate cache, in-flight bounds), the
peers in Open state (for pushes: :meth:`DiameterNode.connection_of`) and the
peers' Origin-State-Ids (a higher one closes that peer's older sessions,
standards §1.7). :class:`DiameterServer` is the front end ``ocs serve``
starts: it listens on IPv4 and IPv6, sends DPR REBOOTING to every peer on stop
and drains requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from ocs.charging.port import ChargingApi
from ocs.frontend import Listener, bound_addresses
from ocs.vocabulary.types import TerminationCause
from protocols.diameter.capabilities import AllowedPeer, PeerInfo
from protocols.diameter.config import DiameterConfig
from protocols.diameter.constants import CcFailureHandling, DdFailureHandling, ResultCode
from protocols.diameter.duplicates import DuplicateCache
from protocols.diameter.fastpath import Request
from protocols.diameter.gy import GyApplication, owner_of
from protocols.diameter.ids import IdGenerator
from protocols.diameter.local import LocalNode
from protocols.diameter.message import Limits
from protocols.diameter.metrics import metrics
from protocols.diameter.origin_state import PeerRestarts, next_origin_state_id
from protocols.diameter.peer import PeerPolicy
from protocols.diameter.pushes import PushSender
from protocols.diameter.traffic import Bounds, Traffic
from protocols.diameter.transport import Connection, Wiring

log = structlog.get_logger("ocs.diameter")


@dataclass(frozen=True, slots=True)
class NodeSettings:
    policy: PeerPolicy
    limits: Limits
    max_message_size: int
    max_in_flight: int
    advertise_addresses: bool  # Host-IP-Address configured, else the connection's own
    max_connections: int = 256  # per process (limits.max_connections)
    one_connection_per_peer: bool = True
    max_in_flight_bytes: int = 16 << 20  # octets of requests being served, per connection
    max_in_flight_bytes_total: int = 128 << 20  # ... in the whole process
    drain_timeout: float = 5.0
    fast_path: bool = True  # struct codec for common CCR/CCA shapes (fastpath.py)

    @classmethod
    def from_config(cls, cfg: DiameterConfig) -> NodeSettings:
        lim = cfg.limits
        return cls(
            policy=PeerPolicy(
                tw=cfg.watchdog_interval,
                cer_timeout=cfg.cer_timeout,
                closing_timeout=cfg.closing_timeout,
                allowed=tuple(AllowedPeer(p.origin_host, p.network) for p in cfg.allowed_peers),
            ),
            limits=Limits(
                max_depth=lim.max_depth,
                max_avps=lim.max_avps,
                max_mscc=lim.max_mscc,
                strict_mbit=lim.strict_mbit,
            ),
            max_message_size=lim.max_message_size,
            max_in_flight=lim.max_in_flight,
            max_connections=lim.max_connections,
            advertise_addresses=bool(cfg.host_ip_addresses),
            one_connection_per_peer=cfg.one_connection_per_peer,
            max_in_flight_bytes=lim.max_in_flight_bytes,
            max_in_flight_bytes_total=lim.max_in_flight_bytes_total,
            fast_path=cfg.fast_path,
        )


class DiameterNode:
    """What the connections of one process share; their :class:`transport.Owner`."""

    def __init__(
        self,
        local: LocalNode,
        settings: NodeSettings,
        app: GyApplication,
        duplicates: DuplicateCache[Connection],
        restarts: PeerRestarts,
    ) -> None:
        self.local = local
        self.settings = settings
        self.app = app
        self.restarts = restarts
        self.connections: set[Connection] = set()
        self.peers: dict[str, Connection] = {}  # Origin-Host -> the connection for pushes
        self.tasks: set[asyncio.Task[Any]] = set()
        bounds = Bounds(
            settings.max_in_flight, settings.max_in_flight_bytes, settings.max_in_flight_bytes_total
        )
        self.traffic = Traffic[Connection](local, bounds, duplicates)
        self.wiring = Wiring(
            local,
            settings.policy,
            settings.limits,
            settings.max_message_size,
            settings.advertise_addresses,
            settings.fast_path,
            settings.drain_timeout,
            IdGenerator(),
            self.traffic,
        )
        # The application's own methods: no call of ours between a connection and them.
        self.fast_request = app.fast_request
        self.serve: Callable[[Request, PeerInfo], Coroutine[Any, Any, bytes]] = app.handle

    @property
    def duplicates(self) -> DuplicateCache[Connection]:
        return self.traffic.duplicates

    @property
    def in_flight_bytes(self) -> int:
        """Octets of the requests being served (or whose answers wait), all connections."""
        return self.traffic.in_flight_bytes

    def connection(self) -> Connection:
        """A new connection of this node (the listener's protocol factory)."""
        return Connection(self, self.wiring)

    def connection_of(self, origin_host: str) -> Connection | None:
        """The open connection that takes pushes for this peer, if it is connected here."""
        return self.peers.get(origin_host)

    def spawn(
        self, coro: Coroutine[Any, Any, Any], context: contextvars.Context | None = None
    ) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, context=context)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def connection_made(self, conn: Connection) -> bool:
        """Hold the new connection, or refuse it: past ``limits.max_connections`` (each
        one may hold a partial message, so their number bounds memory too)."""
        if len(self.connections) >= self.settings.max_connections:
            metrics().refused_connections.inc()
            return False
        self.connections.add(conn)
        return True

    def connection_lost(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for host, c in list(self.peers.items()):
            if c is not conn:
                continue
            other = next((o for o in self.connections if o.open_peer == host), None)
            if other is not None:
                self.peers[host] = other  # another connection of the same peer takes the pushes
                continue
            del self.peers[host]
            metrics().peers.dec()
            log.info("diameter_peer_down", peer=host)

    def admit(self, conn: Connection, peer: PeerInfo) -> ResultCode | None:
        """A second connection from an open peer is refused (standards §1.3), unless the
        peer restarted (higher Origin-State-Id): then the old connection is the stale one."""
        old = self.peers.get(peer.origin_host)
        if old is None or old is conn or not self.settings.one_connection_per_peer:
            return None
        old_info = old.peer
        old_state = old_info.origin_state_id if old_info is not None else None
        if peer.origin_state_id and old_state and peer.origin_state_id > old_state:
            old.close("replaced by the restarted peer's new connection")
            return None
        return ResultCode.UNABLE_TO_COMPLY

    def peer_opened(self, conn: Connection, peer: PeerInfo) -> None:
        old = self.peers.get(peer.origin_host)
        if old is None:
            metrics().peers.inc()
        self.peers[peer.origin_host] = conn  # the newest connection receives our pushes
        log.info(
            "diameter_peer_up",
            peer=peer.origin_host,
            address=peer.address,
            product=peer.product_name,
        )
        if peer.origin_state_id:
            self.state_id_seen(peer.origin_host, peer.origin_state_id)

    def state_id_seen(self, origin_host: str, value: int) -> None:
        if self.restarts.observe(origin_host, value):
            log.info("diameter_peer_restarted", peer=origin_host, origin_state_id=value)
            # Sessions are timestamped in whole seconds: include the current one, since the
            # restarted peer sends its CER before any new CCR on this connection.
            self.spawn(self._release_sessions(origin_host, int(time.time()) + 1))

    async def _release_sessions(self, origin_host: str, before: int) -> None:
        try:
            n = await self.app.charging.terminate_owner_sessions(
                owner_of(origin_host), TerminationCause.PEER_RESTART, opened_before=before
            )
            log.info("diameter_peer_sessions_released", peer=origin_host, sessions=n)
        except Exception:
            log.exception("diameter_peer_sessions_release_failed", peer=origin_host)


class DiameterServer:
    """The ``diameter`` front end (ocs.frontend.Frontend)."""

    name = "diameter"

    def __init__(self, config: DiameterConfig, local: LocalNode, node_start: int = 0) -> None:
        self.config = config
        self.local = local
        self.node_start = node_start  # FrontendContext.node_start: one Origin-State-Id per node
        self.node: DiameterNode | None = None
        self.pushes: PushSender | None = None
        self._servers: list[asyncio.Server] = []

    async def start(self, charging: ChargingApi) -> None:
        cfg = self.config
        data_dir = cfg.data_dir
        state_id = next_origin_state_id(
            data_dir / "diameter-origin-state-id" if data_dir else None,
            node_start=self.node_start or None,
        )
        self.local = dataclasses.replace(self.local, origin_state_id=state_id)
        settings = NodeSettings.from_config(cfg)
        ccfh, ddfh = cfg.credit_control_failure_handling, cfg.direct_debiting_failure_handling
        app = GyApplication(
            charging,
            self.local,
            tuple(cfg.service_contexts),
            ResultCode(cfg.storage_failure_result_code),
            cfg.check_destination,
            None if ccfh is None else CcFailureHandling[ccfh.upper()],
            None if ddfh is None else DdFailureHandling[ddfh.upper()],
            settings.limits,
        )
        self.node = DiameterNode(
            self.local,
            settings,
            app,
            DuplicateCache(
                cfg.duplicate_window, cfg.duplicate_cache_entries, cfg.duplicate_cache_bytes
            ),
            PeerRestarts(data_dir / "diameter-peers.json" if data_dir else None),
        )
        loop = asyncio.get_running_loop()
        node = self.node
        server = await loop.create_server(
            node.connection,
            host=cfg.listen,
            port=cfg.port,
            reuse_port=cfg.reuse_port or None,
        )
        self._servers.append(server)
        self.pushes = PushSender(node.connection_of, self.local, charging, node.spawn)
        self.pushes.start()
        log.info("diameter_listening", addresses=self.addresses, origin_state_id=state_id)

    def listeners(self) -> list[Listener]:
        """What :meth:`start` binds (checked free by ``ocs serve`` before it starts)."""
        cfg = self.config
        return [Listener("diameter", "tcp", host, cfg.port) for host in cfg.listen]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return bound_addresses(self._servers)

    async def stop(self, drain_timeout: float) -> None:
        """Stop accepting, DPR to every peer, drain in-flight requests, then close."""
        for server in self._servers:
            server.close()
        if self.pushes is not None:
            await self.pushes.stop()
        node = self.node
        if node is None:
            return
        conns = list(node.connections)
        for conn in conns:
            conn.shutdown()
        waits = [asyncio.ensure_future(c.closed.wait()) for c in conns]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=drain_timeout)
            for fut in pending:
                fut.cancel()
        for conn in list(node.connections):
            conn.abort()
        if node.tasks:
            await asyncio.wait(list(node.tasks), timeout=max(drain_timeout, 0.1))
        for server in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), max(drain_timeout, 0.1))
        self._servers.clear()

    def health(self) -> dict[str, Any]:
        node = self.node
        return {
            "listening": [f"{h}:{p}" for h, p in self.addresses],
            "peers": sorted(node.peers) if node else [],
            "connections": len(node.connections) if node else 0,
            "in_flight": sum(c.in_flight for c in node.connections) if node else 0,
            "in_flight_bytes": node.in_flight_bytes if node else 0,
            "write_buffer_bytes": sum(c.write_buffer_size for c in node.connections) if node else 0,
            "duplicate_cache": {
                "entries": len(node.duplicates) if node else 0,
                "bytes": node.duplicates.bytes if node else 0,
            },
            "origin_state_id": self.local.origin_state_id,
        }
