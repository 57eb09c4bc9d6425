"""Server configuration: one YAML file, validated at load, overridable by environment.

Sections: ``node`` (Diameter identity), ``redis`` (a URL, or the embedded
server's data directory), ``policies``, ``logging``, ``metrics``,
``supervision``, ``workers``; and the raw sections ``diameter``, ``radius``
and ``export`` that their own front ends validate through
:func:`validate_section` (so this module never imports ``protocols/``).

Every key can be overridden by ``OCS_<SECTION>__<KEY>`` (``OCS_REDIS__URL``,
``OCS_LOGGING__LEVEL``, ``OCS_DIAMETER__PORT``), its value read as a YAML
scalar, as containers expect. Unknown keys are rejected; every error names
the file (or variable), the key path and what was expected. Relative paths
are taken from the directory holding ``config/`` (the repository root for
``config/ocs.yaml``), else from the config file's own directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

T = TypeVar("T", bound=BaseModel)
ENV_PREFIX = "OCS_"


class ConfigError(ValueError):
    """The configuration is invalid: file, key path and expectation in the message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeConfig(_Strict):
    origin_host: str = "ocs.localdomain"
    origin_realm: str = "localdomain"
    product_name: str = "ocs"


class RedisConfig(_Strict):
    """``url`` set: connect there. Unset: start or attach to the embedded server."""

    url: str | None = None
    data_dir: Path = Path("var/redis")
    appendfsync: Literal["always", "everysec", "no"] = "everysec"
    port: int = Field(default=0, ge=0, le=65535)  # 0: unix socket only
    binary: str | None = None  # path of redis-server / valkey-server to use
    timeout: float = Field(default=2.0, gt=0)
    max_connections: int = Field(default=64, ge=1)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return v


class PoliciesConfig(_Strict):
    dir: Path = Path("policies")
    # Seconds between checks of the files for changes (0: reload on SIGHUP only).
    watch_interval: float = Field(default=2.0, ge=0)


class LoggingConfig(_Strict):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"
    mask_identities: bool = True


class MetricsConfig(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)


class SupervisionConfig(_Strict):
    sweep_interval: float = Field(default=5.0, gt=0)
    # How often `ocs serve` renews plans' recurring allowances (idempotent).
    renew_interval: float = Field(default=3600.0, gt=0)


class Config(_Strict):
    node: NodeConfig = NodeConfig()
    redis: RedisConfig = RedisConfig()
    policies: PoliciesConfig = PoliciesConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    workers: int = Field(default=1, ge=1, le=64)
    diameter: dict[str, Any] | None = None
    radius: dict[str, Any] | None = None
    export: dict[str, Any] | None = None
    file: Path | None = None  # where it was loaded from (set by load_config)
    base_dir: Path = Path()

    def path(self, p: Path) -> Path:
        """A configured path made absolute from the configuration's base directory."""
        return p if p.is_absolute() else (self.base_dir / p)


def describe(source: str, exc: ValidationError, prefix: str = "") -> str:
    """``source: key.path: what was expected``, one line per problem."""
    lines = []
    for err in exc.errors():
        loc = ".".join([prefix] * bool(prefix) + [str(p) for p in err["loc"]])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        got = err.get("input")
        if err["type"] not in ("extra_forbidden", "missing") and not isinstance(got, dict | list):
            msg += f"; got {got!r}"
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if path[0] not in Config.model_fields or path[0] in ("file", "base_dir"):
            continue
        try:
            parsed = yaml.safe_load(value) if value != "" else None
        except yaml.YAMLError:
            parsed = value
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = parsed
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _base_dir(path: Path | None) -> Path:
    if path is None:
        return Path.cwd()
    parent = path.resolve().parent
    return parent.parent if parent.name == "config" else parent


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (None: defaults only), apply ``OCS_*`` overrides, validate."""
    data: dict[str, Any] = {}
    source = str(path) if path else "defaults"
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections")
        data = loaded
    env = _env_overrides(os.environ if environ is None else environ)
    if env:
        source = f"{source} (with OCS_* environment overrides)"
    try:
        return Config.model_validate(
            {**_merge(data, env), "file": path, "base_dir": _base_dir(path)}
        )
    except ValidationError as exc:
        raise ConfigError(describe(source, exc)) from None


def validate_section(
    model: type[T], raw: Mapping[str, Any] | None, file: Path | None, section: str
) -> T:
    """Validate a front end's raw section with its own model (errors name file and key path)."""
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError as exc:
        raise ConfigError(
            describe(str(file) if file else "configuration", exc, prefix=section)
        ) from None
