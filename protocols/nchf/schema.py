"""Request bodies checked against the bundled OpenAPI schema (TS 32.291 §6.1.6, TS 29.571 §5).

The schema is ``openapi/Nchf_ConvergedCharging_v3_subset.yaml`` (see its header
for where it comes from). Its ``components`` are compiled once into a Python
validator by fastjsonschema (about 30 µs for a two-unit update; the jsonschema
package's interpreter takes several times that). A failure names the first
offending attribute as a JSON Pointer (the ``param`` of a TS 29.571
InvalidParam) with the TS 29.500 §5.2.7.2 cause: MANDATORY_IE_MISSING,
MANDATORY_IE_INCORRECT or OPTIONAL_IE_INCORRECT. Unknown attributes pass: the
schema allows additional properties (TS 29.501 §5.2.4).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml

SCHEMA_FILE = Path(__file__).parent / "openapi" / "Nchf_ConvergedCharging_v3_subset.yaml"
_DRAFT = "http://json-schema.org/draft-04/schema#"  # OpenAPI 3.0 schema objects are draft-04-like


class SchemaViolation(Exception):
    """The first attribute of a body that breaks the schema."""

    def __init__(self, pointer: str, reason: str, cause: str) -> None:
        super().__init__(f"{pointer or '/'}: {reason}")
        self.pointer = pointer  # e.g. "/multipleUnitUsage/0/ratingGroup"
        self.reason = reason  # e.g. "must be integer"
        self.cause = cause  # TS 29.500 §5.2.7.2 application error


@functools.cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SCHEMA_FILE.read_text())
    return loaded


@functools.cache
def _required_names() -> frozenset[str]:
    """Every attribute some object of the schema lists as required."""
    names: set[str] = set()
    for schema in document()["components"]["schemas"].values():
        names.update(schema.get("required", ()))
    return frozenset(names)


@functools.cache
def validator(name: str) -> Callable[[Any], Any]:
    """A compiled validator of ``components.schemas.<name>`` (refs resolved in the document)."""
    schema = {
        "$schema": _DRAFT,
        "$ref": f"#/components/schemas/{name}",
        "components": document()["components"],
    }
    compiled: Callable[[Any], Any] = fastjsonschema.compile(schema)
    return compiled


def validate(body: Any, name: str = "ChargingDataRequest") -> None:
    """Raise :class:`SchemaViolation` naming the first attribute that breaks ``name``."""
    try:
        validator(name)(body)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise violation(exc, body) from None


def violation(exc: fastjsonschema.JsonSchemaValueException, body: Any) -> SchemaViolation:
    path = [str(p) for p in (exc.path or ["data"])[1:]]
    if exc.rule == "required":
        missing = _first_missing(body, path, exc.rule_definition or ())
        return SchemaViolation(pointer([*path, missing]), "is missing", "MANDATORY_IE_MISSING")
    reason = str(exc.message).removeprefix(str(exc.name)).strip() or "is invalid"
    last = next((p for p in reversed(path) if not p.isdigit()), "")
    cause = "MANDATORY_IE_INCORRECT" if last in _required_names() else "OPTIONAL_IE_INCORRECT"
    return SchemaViolation(pointer(path), reason, cause)


def _first_missing(body: Any, path: Sequence[str], required: Sequence[str]) -> str:
    node = body
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node.get(part, {})
    present = node if isinstance(node, dict) else {}
    return next((r for r in required if r not in present), str(required[0]) if required else "")


def pointer(parts: Sequence[str]) -> str:
    """A JSON Pointer (RFC 6901) from path parts."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
