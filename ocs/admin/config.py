"""The ``admin:`` configuration section: the HTTP admin API of ``ocs serve``.

Validated at load into :class:`AdminConfig` (unknown keys rejected; errors
name the file, or the ``OCS_ADMIN__*`` variable, and the key path). Off by
default; on 127.0.0.1 unless configured. Tokens are stored hashed (SHA-256
of the token), in ``tokens_file`` (written by ``ocs admin token add``) and/or
inline in ``tokens`` (so ``OCS_ADMIN__TOKENS`` can carry them in a
container); see :mod:`ocs.admin.tokens`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ocs.config import validate_section

Role = Literal["read", "operator", "admin"]
EVENT_KINDS = ("low_balance", "exhausted", "topup", "adjust", "blocked", "unblocked", "deleted")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenEntry(_Strict):
    """One bearer token, by the SHA-256 of its text (never the token itself)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class TlsConfig(_Strict):
    """HTTPS for the API; with ``client_ca``, mutual TLS (a client certificate is required)."""

    cert_file: Path
    key_file: Path
    client_ca: Path | None = None


class WebhookConfig(_Strict):
    """One receiver of balance events (see ocs/admin/README.md, "Event feed")."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    url: str
    # The HMAC-SHA256 key: given here, or (better) in the named environment variable.
    secret: str | None = None
    secret_env: str | None = None
    events: tuple[str, ...] = EVENT_KINDS
    timeout: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=8, ge=0, le=100)  # after the first attempt
    initial_backoff: float = Field(default=0.5, gt=0)
    max_backoff: float = Field(default=60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected an http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookConfig:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give secret_env (better) or secret: the HMAC key of the signature")
        return self

    @field_validator("events")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(EVENT_KINDS))
        if unknown:
            raise ValueError(f"unknown event kinds {unknown}; expected some of {list(EVENT_KINDS)}")
        return v


class AdminConfig(_Strict):
    """Settings of the admin API (see config/ocs.yaml for a commented example)."""

    enabled: bool = False
    host: str = "127.0.0.1"  # loopback unless configured
    port: int = Field(default=9466, ge=0, le=65535)  # 0: a free port (tests)
    tokens_file: Path | None = Path("var/admin/tokens.yaml")
    tokens: tuple[TokenEntry, ...] = ()
    tls: TlsConfig | None = None
    max_body: int = Field(default=16 * 1024 * 1024, ge=1024)  # bytes; larger: 413
    batch_max_rows: int = Field(default=100_000, ge=1)  # POST /accounts:batch
    idempotency_ttl: int = Field(default=86_400, ge=60)  # seconds a key's answer is kept
    # Entries of a partition stream one records/statement request may read
    # (records: then it answers a cursor to go on; statement: 422).
    scan_limit: int = Field(default=2_000_000, ge=1000)
    webhooks: tuple[WebhookConfig, ...] = ()
    webhook_group: str = Field(default="ocs-webhooks", min_length=1)


def load_admin_config(raw: Mapping[str, Any] | None, file: Path | None = None) -> AdminConfig:
    """Validate the raw ``admin:`` mapping; ConfigError names file and key path."""
    return validate_section(AdminConfig, raw or {}, file, "admin")
