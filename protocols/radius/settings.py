"""Configuration of the RADIUS front end: the ``radius:`` section of the config file.

Validated at load by :func:`ocs.config.validate_section` (unknown keys rejected,
errors naming the key path). Clients (NAS) are matched by source address or
prefix, each with its shared secret, vendor flavour, DAE port (RFC 5176 §2.3,
3799) and BlastRADIUS setting (standards §3.2).

Authorisation modes (there is no password store in the charging core):

- ``authorize_only`` (default): the NAS authenticated the user elsewhere (a
  captive portal, EAP on another server, MAC auth); any User-Password is
  ignored and the answer depends only on the account and its balance.
- ``pap``: the Access-Request must carry a User-Password; with
  ``pap_password`` set it must equal that per-client shared password (voucher
  or hotspot set-ups), without it any password is accepted. A request with
  Service-Type = Authorize-Only (17, RFC 5176 §3.1) carries no password and is
  authorised without one.
"""

from __future__ import annotations

import enum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ocs.vocabulary.types import IdentityType


class Flavour(enum.Enum):
    """Which vendor attributes carry the volume quota (standards §3.6)."""

    GENERIC = "generic"
    MIKROTIK = "mikrotik"
    CHILLISPOT = "chillispot"
    WISPR = "wispr"


class AuthMode(enum.Enum):
    AUTHORIZE_ONLY = "authorize_only"
    PAP = "pap"


class IdentitySource(enum.Enum):
    """Which attribute names the subscriber."""

    USER_NAME = "user_name"
    CALLING_STATION_ID = "calling_station_id"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientConfig(_Model):
    """One NAS (or a prefix of them) allowed to talk to us."""

    name: str = Field(min_length=1)
    address: IPv4Network | IPv6Network
    secret: SecretStr
    flavour: Flavour = Flavour.GENERIC
    dae_port: int = Field(default=3799, ge=1, le=65535)
    dae_address: IPv4Address | IPv6Address | None = None  # default: the packet's source
    require_message_authenticator: bool = False
    auth_mode: AuthMode = AuthMode.AUTHORIZE_ONLY
    pap_password: SecretStr | None = None

    @field_validator("address", mode="before")
    @classmethod
    def _network(cls, value: object) -> object:
        if isinstance(value, str):
            return ip_network(value, strict=False)
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("the shared secret must not be empty")
        return value

    def secret_bytes(self) -> bytes:
        return self.secret.get_secret_value().encode()


class ServiceConfig(_Model):
    """The charged service a RADIUS session maps to (the policy prices it)."""

    rating_group: int | None = Field(default=None, ge=0)
    service_id: int | None = Field(default=None, ge=0)


class DaeConfig(_Model):
    """Dynamic authorisation client (RFC 5176): retransmission schedule."""

    enabled: bool = True
    initial_timeout: float = Field(default=2.0, gt=0)
    max_timeout: float = Field(default=16.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)  # retransmissions after the first send
    worker: int = Field(default=0, ge=0)  # the worker that consumes notifications


class LiveSessionsConfig(_Model):
    """Per worker, the sessions it last saw (for CoA sizing and DAE targets): hints only."""

    max_entries: int = Field(default=100_000, ge=1)
    # Their octets (see sessions.py): 160 MiB holds the 100,000 of typical sessions
    # (~1.4 KB counted each); sessions with the longest attributes go first past it.
    max_bytes: int = Field(default=160 << 20, ge=1 << 20)


class NasRestartConfig(_Model):
    """Accounting-On/Off queue (protocols/radius/restarts.py)."""

    concurrency: int = Field(default=4, ge=1)  # closes of different NASes at once
    max_waiting: int = Field(default=4096, ge=1)  # requests waiting; more: dropped


def _all_addresses() -> list[IPv4Address | IPv6Address]:
    return [IPv4Address("0.0.0.0"), IPv6Address("::")]


class RadiusConfig(_Model):
    """The whole ``radius:`` section."""

    listen: list[IPv4Address | IPv6Address] = Field(default_factory=_all_addresses, min_length=1)
    auth_port: int | None = Field(default=1812, ge=0, le=65535)  # None: no auth listener
    acct_port: int | None = Field(default=1813, ge=0, le=65535)
    clients: list[ClientConfig] = Field(min_length=1)
    service: ServiceConfig = ServiceConfig()
    identity: IdentitySource = IdentitySource.USER_NAME
    identity_type: IdentityType = IdentityType.NAI
    acct_interim_interval: int = Field(default=600, ge=60)  # RFC 2869 §5.16: >= 60 s
    idle_timeout: int | None = Field(default=None, ge=1)
    duplicate_ttl: float = Field(default=30.0, gt=0)
    duplicate_max: int = Field(default=65536, ge=16)
    max_inflight: int = Field(default=10000, ge=1)
    drop_log_interval: float = Field(default=60.0, gt=0)
    dae: DaeConfig = DaeConfig()
    nas_restart: NasRestartConfig = NasRestartConfig()
    live_sessions: LiveSessionsConfig = LiveSessionsConfig()

    @model_validator(mode="after")
    def _unique_clients(self) -> RadiusConfig:
        seen: set[str] = set()
        for client in self.clients:
            if str(client.address) in seen:
                raise ValueError(f"client address {client.address} is configured twice")
            seen.add(str(client.address))
        return self
