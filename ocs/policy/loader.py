"""Load a policy directory into one validated, immutable :class:`PolicySet`.

Every ``*.yaml`` / ``*.yml`` file of the directory is a
:class:`~ocs.policy.models.PolicyDocument`; their sections are merged (a name
defined twice is an error naming both files). Cross references (tariff ->
service, plan -> tariff, quota -> service, defaults) are checked after the
merge. Every error names the file, the key path and what was expected, and
loading either yields a whole valid set or raises: a reload never half-applies
(DESIGN.md "Principles").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ocs.policy.models import (
    Defaults,
    Notifications,
    Plan,
    PolicyDocument,
    Price,
    Quota,
    Service,
    Tariff,
)
from ocs.policy.timebands import Schedule
from ocs.vocabulary.types import ServiceKey


class PolicyError(ValueError):
    """A policy file is invalid: the message names file, key path and expectation."""


@dataclass(frozen=True)
class PolicySet:
    """The policies in force: looked up by the charging core on every request."""

    services: Mapping[str, Service]
    tariffs: Mapping[str, Tariff]
    quotas: Mapping[str, Quota]
    plans: Mapping[str, Plan]
    defaults: Defaults | None
    timezone: str
    version: str
    files: tuple[str, ...] = ()
    notifications: Notifications = field(default_factory=Notifications)
    # "plans.prepaid" -> the file that defines it: errors about a set
    # (a plan dropped on reload) name the file and the key.
    origins: Mapping[str, str] = field(default_factory=dict)
    _by_key: dict[tuple[int | None, int | None], str] = field(
        default_factory=dict, repr=False, init=False
    )
    _schedules: dict[str, Schedule] = field(default_factory=dict, repr=False, init=False)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False, init=False)

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        """A value derived from this (immutable) set, computed once."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = make()
            return value

    def __post_init__(self) -> None:
        for name, svc in self.services.items():
            self._by_key.setdefault((svc.rating_group, svc.service_id), name)

    def service_name(self, key: ServiceKey) -> str | None:
        """The policy service a gateway's (rating group, service id) names.

        Exact pair first, then rating group alone, then service id alone; a
        request naming neither gets the default service (command-level Gy,
        RADIUS). None when nothing matches (Gy 5031 RATING_FAILED).
        """
        rg, sid = key.rating_group, key.service_id
        if rg is None and sid is None:
            return self.defaults.service if self.defaults else None
        for probe in ((rg, sid), (rg, None), (None, sid)):
            if probe != (None, None) and probe in self._by_key:
                return self._by_key[probe]
        return None

    def quota(self, service: str) -> Quota:
        quota = self.quotas.get(service)
        if quota is None and self.defaults is not None:
            quota = self.defaults.quota
        if quota is None:  # checked at load for credit-controlled services
            raise KeyError(service)
        return quota

    def schedule(self, plan: str) -> Schedule:
        """The plan's tariff over time (bands), cached for the set's life."""
        name = self.plans[plan].tariff
        found = self._schedules.get(name)
        if found is None:
            found = self._schedules[name] = Schedule(self.tariffs[name], self.timezone)
        return found

    def price(self, plan: str, service: str, at: int | None = None) -> Price | None:
        """The service's price for the plan at an instant (default prices if None)."""
        if at is None:
            return self.tariffs[self.plans[plan].tariff].prices.get(service)
        return self.schedule(plan).price_at(service, at)

    def tax_ppm(self, plan: str) -> int:
        """The plan's tax rate in parts per million (parsed once per set)."""
        rate: int = self.memo(("tax", plan), lambda: self.tariffs[self.plans[plan].tariff].tax_ppm)
        return rate


def load_policies(directory: Path) -> PolicySet:
    """Load and check every policy file of ``directory``."""
    if not directory.is_dir():
        raise PolicyError(f"{directory}: policy directory not found")
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise PolicyError(f"{directory}: no policy files (*.yaml)")
    return load_policy_files(files)


def load_policy_files(files: Iterable[Path]) -> PolicySet:
    """Load and check a given list of policy files as one set."""
    merged: dict[str, dict[str, tuple[Path, Any]]] = {
        k: {} for k in ("services", "tariffs", "quotas", "plans")
    }
    defaults: tuple[Path, Defaults] | None = None
    timezone: tuple[Path, str] | None = None
    notifications: tuple[Path, Notifications] | None = None
    digest = hashlib.sha256()
    names: list[str] = []
    for path in files:
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
        names.append(str(path))
        doc = _parse_document(path, raw)
        for section in merged:
            for name, value in getattr(doc, section).items():
                if name in merged[section]:
                    first = merged[section][name][0]
                    raise PolicyError(f"{path}: {section}.{name}: already defined in {first}")
                merged[section][name] = (path, value)
        if doc.defaults is not None:
            if defaults is not None:
                raise PolicyError(f"{path}: defaults: already defined in {defaults[0]}")
            defaults = (path, doc.defaults)
        if doc.timezone is not None:
            if timezone is not None:
                raise PolicyError(f"{path}: timezone: already defined in {timezone[0]}")
            timezone = (path, doc.timezone)
        if doc.notifications is not None:
            if notifications is not None:
                raise PolicyError(f"{path}: notifications: already defined in {notifications[0]}")
            notifications = (path, doc.notifications)
    if not merged["plans"]:
        raise PolicyError(
            f"{_where(names)}: plans: no plan defined (every account has a plan; "
            "expected a plans: section in one of the files)"
        )
    _check_references(merged, defaults)
    tz = timezone[1] if timezone else "UTC"
    if timezone:
        _check_timezone(timezone[0], tz)
    return PolicySet(
        services={k: v for k, (_, v) in merged["services"].items()},
        tariffs={k: v for k, (_, v) in merged["tariffs"].items()},
        quotas={k: v for k, (_, v) in merged["quotas"].items()},
        plans={k: v for k, (_, v) in merged["plans"].items()},
        defaults=defaults[1] if defaults else None,
        timezone=tz,
        version=digest.hexdigest()[:12],
        files=tuple(names),
        notifications=notifications[1] if notifications else Notifications(),
        origins={
            f"{k}.{n}": str(p) for k, entries in merged.items() for n, (p, _) in entries.items()
        },
    )


def _where(files: list[str]) -> str:
    """The files of a set, for an error about the set as a whole: their
    directory when they share one."""
    parents = {str(Path(f).parent) for f in files}
    if len(parents) == 1:
        return parents.pop() + "/"
    return ", ".join(files) or "(no policy files)"


def _parse_document(path: Path, raw: bytes) -> PolicyDocument:
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(
            f"{path}: expected a mapping of sections ({', '.join(PolicyDocument.keys())})"
        )
    try:
        return PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(describe_validation_error(path, exc)) from None


def describe_validation_error(path: Path | str, exc: ValidationError) -> str:
    """One line per problem: ``file: key.path: what was expected``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"{path}: {loc}: {msg}")
    return "\n".join(lines)


def _check_references(
    merged: dict[str, dict[str, tuple[Path, Any]]], defaults: tuple[Path, Defaults] | None
) -> None:
    services = merged["services"]
    for tname, (path, tariff) in merged["tariffs"].items():
        band_names = [f"bands.{i}.prices.{s}" for i, b in enumerate(tariff.bands) for s in b.prices]
        for sname, where in [(s, f"prices.{s}") for s in tariff.prices] + [
            (w.rsplit(".", 1)[1], w) for w in band_names
        ]:
            if sname not in services:
                raise PolicyError(
                    f"{path}: tariffs.{tname}.{where}: unknown service "
                    f"(expected one of {', '.join(sorted(services)) or 'none defined'})"
                )
    for pname, (path, plan) in merged["plans"].items():
        if plan.tariff not in merged["tariffs"]:
            raise PolicyError(
                f"{path}: plans.{pname}.tariff: unknown tariff {plan.tariff!r} "
                f"(expected one of {', '.join(sorted(merged['tariffs'])) or 'none defined'})"
            )
    for pname, (path, plan) in merged["plans"].items():
        for aname, allowance in plan.allowances.items():
            for sname in allowance.services:
                if sname not in services:
                    where = f"plans.{pname}.allowances.{aname}.services"
                    raise PolicyError(f"{path}: {where}: unknown service {sname!r}")
    for qname, (path, _) in merged["quotas"].items():
        if qname not in services:
            raise PolicyError(
                f"{path}: quotas.{qname}: unknown service (quotas are keyed by service name)"
            )
    if defaults is not None and defaults[1].service not in services:
        raise PolicyError(
            f"{defaults[0]}: defaults.service: unknown service {defaults[1].service!r}"
        )
    has_default_quota = defaults is not None and defaults[1].quota is not None
    for sname, (path, svc) in services.items():
        if svc.credit_control and sname not in merged["quotas"] and not has_default_quota:
            raise PolicyError(
                f"{path}: services.{sname}: no quota for this service "
                f"(expected quotas.{sname} or defaults.quota)"
            )
    keys: dict[tuple[int | None, int | None], str] = {}
    for sname, (path, svc) in services.items():
        key = (svc.rating_group, svc.service_id)
        if key == (None, None):
            raise PolicyError(f"{path}: services.{sname}: expected rating_group and/or service_id")
        if key in keys:
            raise PolicyError(
                f"{path}: services.{sname}: same rating_group/service_id as {keys[key]}"
            )
        keys[key] = sname


def _check_timezone(path: Path, tz: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError(
            f"{path}: timezone: unknown time zone {tz!r} (expected e.g. Europe/Paris)"
        ) from None
