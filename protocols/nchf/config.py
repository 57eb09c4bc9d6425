"""The ``nchf:`` section of the server configuration (3GPP TS 32.290 / 32.291 CHF).

Validated at load by :func:`ocs.config.validate_section` (unknown keys
rejected, errors naming the key path). Listeners: cleartext HTTP/2 with prior
knowledge (h2c, TS 29.500 §5.2.2 allows "http" URIs inside an operator's
network) and HTTP/1.1 on the same port; TLS with ALPN ``h2`` (and
``http/1.1``) when ``tls`` is set. ``api_root`` is the apiRoot of TS 29.501
§4.4.1 the ``Location`` of a created resource starts with.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_PORT = 8095  # no IANA port for the SBI: deployments choose (80/443 in TS 29.500)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Model):
    """Server certificate (PEM); with ``client_ca`` set, consumers must present one."""

    cert_file: Path
    key_file: Path
    client_ca: Path | None = None


class ConsumerConfig(_Model):
    """One NF consumer (SMF, SMSF...) allowed to charge: by address and/or NF identity."""

    name: str = Field(min_length=1)
    network: IPv4Network | IPv6Network | None = None  # source address prefix; None: any
    # nfConsumerIdentification.nFName (an NF instance id) or .nFFqdn; None: any
    nf_name: str | None = None


class NotifyConfig(_Model):
    """Nchf notifications (ChargingNotifyRequest to the consumer's notifyUri)."""

    enabled: bool = True
    worker: int = Field(default=0, ge=0)  # the `ocs serve` worker that sends them
    http2: bool = True  # h2c with prior knowledge to http:// URIs; false: HTTP/1.1
    timeout: float = Field(default=5.0, gt=0)  # seconds per attempt
    retries: int = Field(default=3, ge=0, le=10)  # attempts after the first
    initial_backoff: float = Field(default=0.5, gt=0)  # seconds, doubled per retry ...
    max_backoff: float = Field(default=8.0, gt=0)  # ... up to this
    max_pending: int = Field(default=10_000, ge=1)  # notifications in flight; more: dropped


class LimitsConfig(_Model):
    max_body: int = Field(default=65_536, ge=1024, le=16 << 20)  # bytes; larger: 413
    max_units: int = Field(default=64, ge=1)  # multipleUnitUsage items; more: 400
    max_containers: int = Field(default=64, ge=1)  # usedUnitContainer per unit; more: 400
    max_streams: int = Field(default=256, ge=1)  # HTTP/2 concurrent streams per connection
    max_header_bytes: int = Field(default=16_384, ge=1024)


class NchfConfig(_Model):
    enabled: bool = True
    listen: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    tls: TlsConfig | None = None
    # e.g. "http://chf.example.net:8095"; unset: scheme and :authority of each request
    api_root: str | None = None
    allowed_consumers: list[ConsumerConfig] = Field(default_factory=list)  # empty: any
    # sessionFailover in the create answer (TS 32.291 §6.1.6.3.11): supported only
    # when the session state outlives this CHF (a replicated Redis).
    session_failover: bool = False
    # invocationResult.failureHandling in the create answer (TS 32.291 §6.1.6.3.10, as
    # Gy's CCFH): what the consumer does when it cannot reach us; unset: its own setting.
    failure_handling: Literal["terminate", "continue", "retry_and_terminate"] | None = None
    # Redis unreachable: 503 NF_CONGESTION (the consumer may retry here or elsewhere:
    # every request is idempotent) or 500 SYSTEM_FAILURE.
    storage_failure_status: Literal[503, 500] = 503
    notify: NotifyConfig = NotifyConfig()
    limits: LimitsConfig = LimitsConfig()
    # SO_REUSEPORT: the workers of `ocs serve --workers N` share the port.
    reuse_port: bool = True

    @field_validator("api_root")
    @classmethod
    def _root(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URI")
        return v.rstrip("/") if v else v
