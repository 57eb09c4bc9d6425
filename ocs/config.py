"""Server configuration: one YAML file, validated at load, overridable by environment.

Sections: ``node`` (Diameter identity), ``redis`` (a URL, or the embedded
server's data directory), ``policies``, ``logging``, ``metrics``,
``supervision``, ``workers``; and the raw sections ``diameter``, ``radius``,
``nchf``, ``export`` and ``admin`` that their own modules validate through
:func:`validate_section` (so this module never imports ``protocols/``).

Environment: every key can be overridden by ``OCS_<SECTION>__<KEY>``
(``OCS_REDIS__URL``, ``OCS_LOGGING__LEVEL``, ``OCS_DIAMETER__PORT``,
``OCS_WORKERS``), as containers expect. The value is read as YAML (``5`` an
integer, ``true`` a boolean, ``["::1"]`` a list; ``yes``/``no``/``on``/``off``
stay words; empty means null). Any other ``OCS_`` variable is refused with
the closest valid name (``OCS_DIAMETR__PORT``: did you mean
``OCS_DIAMETER__PORT``?), except the few that are not configuration
(:data:`NON_CONFIG_VARIABLES`, and ``OCS_TEST_*`` for the test suite).

Errors: unknown keys are rejected; every error names the file (or the
environment variable, in the front ends' sections too), the key path and
what was expected, e.g. ``config/ocs.yaml: redis.appendfsync: expected one
of always, everysec, no; got 'sometimes'``.

Paths, one rule for every path-typed key of every section (``redis.data_dir``,
``redis.socket``, ``policies.dir``, ``diameter.data_dir``,
``export.output_dir``...): a relative path is taken from the configuration's
base directory, which is the directory that holds ``config/`` when the file
lives in a directory named ``config`` (so ``config/ocs.yaml`` resolves
``var/redis`` against the repository root), otherwise the file's own
directory; with no file, the working directory at start. The loader makes
them absolute (:func:`resolve_paths`), so no later code, and no change of
working directory, can resolve them another way.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

T = TypeVar("T", bound=BaseModel)
ENV_PREFIX = "OCS_"
# OCS_ variables that are not configuration keys (read by the CLI or tests).
NON_CONFIG_VARIABLES = frozenset({"OCS_CONFIG"})
NON_CONFIG_PREFIXES = ("OCS_TEST_",)
# Set by load_config, never read from the file.
_DERIVED = ("file", "base_dir")
# YAML 1.1 reads these as booleans; from the environment they stay words
# (pydantic still reads them as booleans where a boolean is expected).
_ENV_WORDS = frozenset({"yes", "no", "on", "off", "y", "n"})


class ConfigError(ValueError):
    """The configuration is invalid: file, key path and expectation in the message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class NodeConfig(_Strict):
    origin_host: str = "ocs.localdomain"
    origin_realm: str = "localdomain"
    product_name: str = "ocs"
    vendor_id: int = Field(default=0, ge=0, le=2**32 - 1)  # Diameter Vendor-Id (0: none)


class SentinelConfig(_Strict):
    """A primary/replica pair watched by Redis Sentinel (ocs asks the sentinels
    which node is the primary, and again after a failover)."""

    master: str  # the name the sentinels monitor (`sentinel monitor <master> ...`)
    nodes: list[str] = Field(min_length=1)  # sentinels, host:port
    username: str | None = None  # the sentinels' own AUTH, if they require one
    password: str | None = None

    @field_validator("nodes")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for item in v:
            _host_port(item)
        return v


class TlsConfig(_Strict):
    """TLS to Redis (cluster, sentinel or one server; ``rediss://`` turns it on too)."""

    enabled: bool = False
    ca_file: Path | None = None  # CA bundle that signed the servers' certificates
    cert_file: Path | None = None  # client certificate (servers with tls-auth-clients)
    key_file: Path | None = None
    check_hostname: bool = True


def _host_port(item: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError naming the item."""
    host, sep, port = item.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {item!r}")
    return host, int(port)


class RedisConfig(_Strict):
    """``url``, ``cluster`` or ``sentinel`` set: connect there. None: the embedded server."""

    url: str | None = None
    data_dir: Path = Path("var/redis")
    # always: no acknowledged write lost when the Redis process crashes (README "Redis").
    appendfsync: Literal["always", "everysec", "no"] = "always"
    port: int = Field(default=0, ge=0, le=65535)  # 0: unix socket only
    socket: Path | None = None  # default <data_dir>/redis.sock (107 bytes max)
    binary: str | None = None  # path of redis-server / valkey-server to use
    timeout: float = Field(default=2.0, gt=0)
    max_connections: int = Field(default=64, ge=1)
    # Redis / Valkey Cluster: seed nodes (host:port); the rest is discovered.
    cluster: list[str] | None = None
    sentinel: SentinelConfig | None = None
    username: str | None = None  # ACL user (AUTH username password) on every node
    password: str | None = None
    tls: TlsConfig = TlsConfig()
    # local: answer once the primary has the write (AOF per appendfsync on it);
    # replica: also wait until a replica has it (WAIT 1), else storage unavailable.
    durability: Literal["local", "replica"] = "local"
    replica_timeout: float = Field(default=0.5, gt=0, le=60)  # seconds WAIT may take

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(URL_SCHEMES):
            raise ValueError(
                "expected a redis://, rediss:// or unix:// URL, or a redis+cluster:// "
                "or redis+sentinel:// one (rediss+... with TLS)"
            )
        return v

    @field_validator("cluster")
    @classmethod
    def _seeds(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("expected at least one seed node (host:port)")
            for item in v:
                _host_port(item)
        return v

    @field_validator("appendfsync", mode="before")
    @classmethod
    def _yaml_no(cls, v: object) -> object:
        # `appendfsync: no` in YAML 1.1 is the boolean false.
        return "no" if v is False else v

    @model_validator(mode="after")
    def _one_store(self) -> RedisConfig:
        given = [k for k in ("url", "cluster", "sentinel") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set one of url, cluster, sentinel; got {' and '.join(given)}")
        if self.durability == "replica" and not given:
            raise ValueError(
                "durability replica needs a store with replicas (url, cluster or "
                "sentinel); the embedded server has none"
            )
        return self

    @property
    def embedded(self) -> bool:
        """No store configured: ocs runs (or attaches to) its own server."""
        return self.url is None and self.cluster is None and self.sentinel is None


URL_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
)


class PoliciesConfig(_Strict):
    dir: Path = Path("policies")
    # Seconds between checks of the files for changes (0: reload on SIGHUP only).
    watch_interval: float = Field(default=2.0, ge=0)


class LoggingConfig(_Strict):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"
    mask_identities: bool = True


class MetricsConfig(_Strict):
    """The operations endpoint: /metrics, /livez, /readyz, /health."""

    enabled: bool = True
    host: str = "127.0.0.1"  # loopback unless configured: the pages are not authenticated
    port: int = Field(default=9464, ge=0, le=65535)
    # /health's details (store socket and PID, peers' Origin-Hosts, policy file
    # paths, errors): false shows only each component's ok and state.
    health_details: bool = False


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
    nchf: dict[str, Any] | None = None  # 5G converged charging (protocols/nchf)
    export: dict[str, Any] | None = None
    admin: dict[str, Any] | None = None  # the HTTP admin API (ocs/admin/config.py)
    file: Path | None = None  # where it was loaded from (set by load_config)
    base_dir: Path = Path()  # what relative paths are relative to (set by load_config)

    def path(self, p: Path) -> Path:
        """A path made absolute from the configuration's base directory.

        The loader already did this for every configured path; this is for
        paths built afterwards.
        """
        return p if p.is_absolute() else (self.base_dir / p)


# --- paths -----------------------------------------------------------------------


def _resolved(value: Any, base: Path) -> Any:
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if isinstance(value, BaseModel):
        return resolve_paths(value, base)
    if isinstance(value, list | tuple):
        items = [_resolved(v, base) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def resolve_paths(model: T, base: Path) -> T:
    """``model`` with every relative :class:`Path` in it (nested too) taken from ``base``."""
    update = {}
    for name in type(model).model_fields:
        if name in _DERIVED:
            continue
        value = getattr(model, name)
        new = _resolved(value, base)
        if new is not value:
            update[name] = new
    return model.model_copy(update=update) if update else model


# --- error messages -----------------------------------------------------------


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str] | None:
    """The keys the model accepts at ``loc`` (None when it is not a model there)."""
    tp: Any = model
    for part in loc:
        if isinstance(part, int):
            args = typing.get_args(tp)
            tp = args[0] if args else None
            continue
        if not (isinstance(tp, type) and issubclass(tp, BaseModel)) or part not in tp.model_fields:
            return None
        tp = tp.model_fields[part].annotation
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next((a for a in typing.get_args(tp) if a is not type(None)), None)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [k for k in tp.model_fields if k not in _DERIVED]
    return None


def _did_you_mean(word: str, choices: Sequence[str], shown: Callable[[str], str] = repr) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {shown(close[0])}?" if close else ""


def _expected(err: ErrorDetails, model: type[BaseModel] | None) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        allowed = _fields_at(model, err["loc"][:-1]) if model else None
        if not allowed:
            return "unknown key"
        return f"unknown key (expected one of {', '.join(allowed)})" + _did_you_mean(
            str(err["loc"][-1]), allowed
        )
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        choices = re.findall(r"'((?:[^'\\]|\\.)*)'", str(err.get("ctx", {}).get("expected", "")))
        msg = f"expected one of {', '.join(choices)}" if choices else msg
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        msg = "expected an integer"
    elif kind in ("bool_parsing", "bool_type"):
        msg = "expected true or false"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        msg = "expected a mapping"
    msg = msg.removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        msg = "expected " + msg.removeprefix("Input should be ")
    got = err.get("input")
    if not isinstance(got, dict | list):
        msg += f"; got {got!r}"
    return msg


def describe(
    source: str,
    exc: ValidationError,
    prefix: str = "",
    model: type[BaseModel] | None = None,
    env: Mapping[tuple[str, ...], str] | None = None,
) -> str:
    """``source: key.path: what was expected``, one line per problem.

    ``env`` maps key paths set from the environment to their variable, which
    then names the source instead of the file.
    """
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        where = source
        for path, var in (env or {}).items():
            if loc[: len(path)] == path or path[: len(loc)] == loc:
                where = f"environment {var}"
        dotted = ".".join(((prefix,) if prefix else ()) + loc)
        lines.append(f"{where}: {dotted}: {_expected(err, model)}")
    return "\n".join(lines)


# --- loading -------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML would keep the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_mapping(node))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _env_value(name: str, value: str) -> Any:
    if value == "":
        return None
    if value.strip().lower() in _ENV_WORDS:
        return value.strip()
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"environment {name}: not a valid YAML value: {exc}") from None


def _config_paths() -> list[tuple[str, ...]]:
    """Every key path of the typed sections, and the raw sections' names."""
    out: list[tuple[str, ...]] = []
    for name, info in Config.model_fields.items():
        if name in _DERIVED:
            continue
        tp = info.annotation
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out += [(name, key) for key in tp.model_fields]
        else:
            out.append((name,))
    return out


def _variable(path: Sequence[str]) -> str:
    return ENV_PREFIX + "__".join(p.upper() for p in path)


def _unknown_variable(name: str, path: tuple[str, ...]) -> ConfigError:
    known = [_variable(p) for p in _config_paths()]
    # Raw sections (diameter, radius, export) take any key below them: keep the
    # variable's own keys so OCS_DIAMETR__PORT suggests OCS_DIAMETER__PORT.
    known += [_variable((p[0], *path[1:])) for p in _config_paths() if len(p) == 1]
    known += sorted(NON_CONFIG_VARIABLES)
    hint = _did_you_mean(name, known, shown=str)
    sections = ", ".join(n for n in Config.model_fields if n not in _DERIVED)
    return ConfigError(
        f"environment {name}: {path[0]!r} names no configuration section{hint}"
        f" (sections: {sections}; OCS_<SECTION>__<KEY>)"
    )


def env_overrides(
    environ: Mapping[str, str],
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The ``OCS_*`` overrides as a nested mapping, and which variable set each path.

    A variable that names no section is refused (ConfigError with the closest
    valid name), unless it is one of the few that are not configuration.
    """
    out: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in NON_CONFIG_VARIABLES:
            continue
        if name.startswith(NON_CONFIG_PREFIXES):
            continue
        path = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        if "" in path:
            raise ConfigError(
                f"environment {name}: empty key in the name (expected OCS_<SECTION>__<KEY>)"
            )
        if path[0] not in Config.model_fields or path[0] in _DERIVED:
            raise _unknown_variable(name, path)
        node = out
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = _env_value(name, environ[name])
        sources[path] = name
    return out, sources


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
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


def _read_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (expected a YAML configuration)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of sections; got {type(loaded).__name__}")
    for key in _DERIVED:
        if key in loaded:
            raise ConfigError(f"{path}: {key}: unknown key (set by the loader)")
    return loaded


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (None: defaults only), apply ``OCS_*`` overrides, validate once.

    Every relative path in the result is already absolute (see the module's
    docstring for the rule).
    """
    data = _read_file(path) if path is not None else {}
    env, sources = env_overrides(os.environ if environ is None else environ)
    base = _base_dir(path)
    try:
        config = Config.model_validate({**_merge(data, env), "file": path, "base_dir": base})
    except ValidationError as exc:
        raise ConfigError(
            describe(str(path) if path else "defaults", exc, model=Config, env=sources)
        ) from None
    return resolve_paths(config, base)


def validate_section(
    model: type[T],
    raw: Mapping[str, Any] | None,
    file: Path | None,
    section: str,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Validate a front end's raw section with its own model.

    Errors name the file, or the ``OCS_<SECTION>__<KEY>`` variable that set
    the key (read from ``environ``, by default this process's environment,
    the one the configuration was loaded from), and the key path. Relative
    paths are made absolute by the same rule as the rest of the file.
    """
    where = str(file) if file else "configuration"
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {section}: expected a mapping; got {raw!r}")
    try:
        validated = model.model_validate(dict(raw or {}))
    except ValidationError as exc:
        sources = _section_sources(os.environ if environ is None else environ, section)
        raise ConfigError(describe(where, exc, prefix=section, model=model, env=sources)) from None
    return resolve_paths(validated, _base_dir(file))


def _section_sources(environ: Mapping[str, str], section: str) -> dict[tuple[str, ...], str]:
    """The variables that set keys of ``section``, with paths relative to it."""
    try:
        _, sources = env_overrides(environ)
    except ConfigError:
        return {}  # already refused when the configuration was loaded
    return {path[1:]: var for path, var in sources.items() if path[0] == section}
