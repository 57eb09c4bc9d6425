"""The ``diameter:`` section of the server configuration, validated at load (extra keys rejected).

Defaults: listen on 0.0.0.0 and :: port 3868 (RFC 6733 §2.1), identity from the
deployment (FrontendContext), Tw 30 s (RFC 3539), 1 MiB messages, 10 levels of
grouping, 64 MSCC, 256 connections per process, 1000 requests and 16 MiB in flight per
connection, 128 MiB in flight per process, a duplicate cache of 200,000 answers and 128 MiB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.diameter.framing import DEFAULT_MAX_MESSAGE
from protocols.diameter.gy_request import DEFAULT_CONTEXTS
from protocols.diameter.watchdog import TW_DEFAULT, TW_MINIMUM


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllowedPeerConfig(_Strict):
    origin_host: str = Field(min_length=1)
    network: str | None = None  # source network in CIDR notation; None = any address


class LimitsConfig(_Strict):
    """Bounds on what peers may make us hold. Per connection: one partial message
    (< max_message_size + one read), the requests being served or whose answers it has
    not read (count and octets), and the answers of one read (we stop reading once 64 KiB
    are queued); per process: the connections, the in-flight octets of all of them and
    the duplicate cache (``DiameterConfig.duplicate_cache_bytes``). A refused message
    holds nothing once answered."""

    max_message_size: int = Field(default=DEFAULT_MAX_MESSAGE, ge=64, le=16 << 20)
    # Connections held by one process (workers: each); the next is closed at once,
    # before any read. Each may hold one partial message (< max_message_size).
    max_connections: int = Field(default=256, ge=1)
    max_depth: int = Field(default=10, ge=2, le=16)
    max_avps: int = Field(default=4096, ge=16)
    max_mscc: int = Field(default=64, ge=1)
    max_in_flight: int = Field(default=1000, ge=1)  # per connection; past it: 3004 TOO_BUSY
    # Octets of the requests being served on one connection / in the whole process, and
    # of those whose answers wait for a peer that does not read them; past either: 3004
    # TOO_BUSY (the client retries or fails over; nothing was done). A peer that stops
    # reading holds at most its own share, until it reads or its watchdog closes it.
    max_in_flight_bytes: int = Field(default=16 << 20, ge=64)
    max_in_flight_bytes_total: int = Field(default=128 << 20, ge=64)
    # True: 5001 also for unknown M-bit AVPs inside containers we never read
    # (e.g. 3GPP Service-Information); default: only where the Gy mapping reads.
    strict_mbit: bool = False

    @model_validator(mode="after")
    def _room_for_one_message(self) -> LimitsConfig:
        # A message of the largest size must fit, or it would get 3004 for ever.
        if self.max_in_flight_bytes < self.max_message_size:
            raise ValueError(
                f"max_in_flight_bytes ({self.max_in_flight_bytes}) must be at least "
                f"max_message_size ({self.max_message_size})"
            )
        if self.max_in_flight_bytes_total < self.max_in_flight_bytes:
            raise ValueError(
                f"max_in_flight_bytes_total ({self.max_in_flight_bytes_total}) must be at "
                f"least max_in_flight_bytes ({self.max_in_flight_bytes})"
            )
        return self


class DiameterConfig(_Strict):
    enabled: bool = True
    listen: list[str] = Field(default_factory=lambda: ["0.0.0.0", "::"])
    port: int = Field(default=3868, ge=0, le=65535)
    origin_host: str | None = None  # default: the deployment's identity
    origin_realm: str | None = None
    product_name: str | None = None
    host_ip_addresses: list[str] = Field(default_factory=list)  # default: concrete listen addresses
    allowed_peers: list[AllowedPeerConfig] = Field(
        default_factory=list
    )  # empty: anyone may connect
    watchdog_interval: float = Field(default=TW_DEFAULT, ge=TW_MINIMUM)
    cer_timeout: float = Field(default=10.0, gt=0)
    closing_timeout: float = Field(default=5.0, gt=0)
    duplicate_window: float = Field(default=300.0, ge=240.0)
    # Bounds of the duplicate cache (answers kept for repeats), per process; past either,
    # the oldest answers go first. Bytes: answer + Session-Id octets + 512 per entry.
    # Repeats older than what it holds are still answered from the core's own record of
    # (Session-Id, CC-Request-Number), never charged twice.
    duplicate_cache_entries: int = Field(default=200_000, ge=1000)
    duplicate_cache_bytes: int = Field(default=128 << 20, ge=1 << 20)
    service_contexts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CONTEXTS), min_length=1
    )
    limits: LimitsConfig = LimitsConfig()
    # When Redis cannot be reached. 3004 TOO_BUSY (E bit, a protocol error) tells the
    # client the request was not served and may be retried here or at another server:
    # true, since nothing was charged or the scripts make a retry idempotent. 5012
    # UNABLE_TO_COMPLY is a permanent failure: the client would apply its CCFH and
    # possibly end the user's service for a transient outage.
    storage_failure_result_code: Literal[3004, 5012] = 3004
    # A second connection from an Origin-Host already open is refused (RFC 6733 §5.6.4);
    # false lets one peer open several (e.g. a load generator).
    one_connection_per_peer: bool = True
    # 3002 / 3003 when a CCR names another Destination-Host or Destination-Realm.
    check_destination: bool = True
    # Sent in CCA-I to override the gateway's own setting (RFC 4006 §8.14 CCFH):
    # terminate | continue | retry_and_terminate; unset: the gateway's applies.
    credit_control_failure_handling: (
        Literal["terminate", "continue", "retry_and_terminate"] | None
    ) = None
    # Sent in event CCAs (RFC 4006 §8.15 DDFH): terminate_or_buffer | continue.
    direct_debiting_failure_handling: Literal["terminate_or_buffer", "continue"] | None = None
    # Struct-based decode of common CCR shapes and encode of their CCAs (python-diameter
    # costs about 200 µs a CCR); everything else, or with false everything, goes
    # through python-diameter.
    fast_path: bool = True
    data_dir: Path | None = None  # Origin-State-Id counter and peers' state ids
    # SO_REUSEPORT: the workers of `ocs serve --workers N` share the port.
    reuse_port: bool = True
