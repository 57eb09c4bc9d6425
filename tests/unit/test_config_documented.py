"""config/ocs.yaml documents every key of every section, with its default.

A key is documented when it appears in its section's block, set (``key:
value``) or commented out (``# key: value``). Its default is documented
when the value shown is the model's default, or the line says what the
default is (``default ...``): the example may set a value other than the
default (a loopback listener, a time zone), as long as it says so. A key
whose default is unset may be shown commented out with an example value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ocs.admin.config import AdminConfig, WebhookConfig
from ocs.config import Config
from ocs.export.config import ExportConfig
from protocols.diameter.config import DiameterConfig
from protocols.radius.settings import ClientConfig, RadiusConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "ocs.yaml"
SECTIONS: dict[str, type[BaseModel]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Config.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
}
SECTIONS |= {
    "diameter": DiameterConfig,
    "radius": RadiusConfig,
    "export": ExportConfig,
    "admin": AdminConfig,
}
# Keys whose list items are documented through one example item.
ITEMS: dict[tuple[str, str], type[BaseModel]] = {
    ("radius", "clients"): ClientConfig,
    ("admin", "webhooks"): WebhookConfig,
}


def _block(text: str, key: str, indent: int) -> str:
    """The lines under ``key:`` at ``indent`` (commented-out or not), up to the next sibling."""
    lines = text.splitlines()
    head = re.compile(rf"^ {{{indent}}}#? ?{re.escape(key)}:")
    for i, line in enumerate(lines):
        if head.match(line):
            out = [line]
            for nxt in lines[i + 1 :]:
                stripped = nxt.lstrip(" ")
                depth = len(nxt) - len(stripped)
                if stripped and depth <= indent and not stripped.startswith("#"):
                    break
                # A commented-out sibling key ends the block too.
                if depth <= indent and re.match(r"#\s*\w+:", stripped):
                    break
                out.append(nxt)
            return "\n".join(out)
    return ""


def _key_line(block: str, key: str) -> str | None:
    for line in block.splitlines()[1:]:
        if re.match(rf"^\s*(?:#\s*)?(?:- )?{re.escape(key)}:", line):
            return line
    return None


def _shown_value(line: str, key: str) -> Any:
    body = re.sub(rf"^\s*(?:#\s*)?(?:- )?{re.escape(key)}:", "", line)
    body = body.split(" #", 1)[0].strip()
    try:
        return yaml.safe_load(body) if body else None
    except yaml.YAMLError:
        return body


def _default(model: type[BaseModel], key: str) -> Any:
    info = model.model_fields[key]
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return PydanticUndefined
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return PydanticUndefined  # a nested section: its own keys are checked
    return value


def _same(shown: Any, default: Any) -> bool:
    if default is PydanticUndefined:
        return True
    plain = getattr(default, "value", default)
    if isinstance(plain, tuple | list):
        plain = [getattr(v, "value", v) for v in plain]
        return shown == plain or [str(v) for v in plain] == [str(v) for v in shown or []]
    if isinstance(plain, Path):
        return str(plain) == str(shown)
    return bool(shown == plain or str(shown) == str(plain))


def _walk(
    text: str, section: str, model: type[BaseModel], indent: int
) -> list[tuple[str, type[BaseModel], str, int]]:
    """(dotted key, model, block, indent) for the section and every nested model in it."""
    block = _block(text, section, indent)
    out = [(section, model, block, indent)]
    for key, info in model.model_fields.items():
        tp = info.annotation
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out += [(f"{section}.{k}", m, b, i) for k, m, b, i in _walk(block, key, tp, indent + 2)]
    return out


def _documented() -> list[tuple[str, type[BaseModel], str, int]]:
    text = EXAMPLE.read_text()
    out = []
    for section, model in SECTIONS.items():
        out += _walk(text, section, model, 0)
    for (section, key), model in ITEMS.items():
        block = _block(_block(text, section, 0), key, 2)
        out.append((f"{section}.{key}[]", model, block, 4))
    return out


CASES = [
    pytest.param(where, model, block, key, id=f"{where}.{key}")
    for where, model, block, _ in _documented()
    for key in model.model_fields
]


@pytest.mark.parametrize(("where", "model", "block", "key"), CASES)
def test_example_documents_the_key_and_its_default(
    where: str, model: type[BaseModel], block: str, key: str
) -> None:
    """Every key of the section is in config/ocs.yaml, with its default shown or stated."""
    assert block, f"config/ocs.yaml has no {where}: section"
    line = _key_line(block, key)
    assert line is not None, f"config/ocs.yaml does not document {where}.{key}"
    default = _default(model, key)
    shown = _shown_value(line, key)
    commented_out = line.lstrip().startswith("#")
    unset = commented_out and default is None  # left out: the default (unset) applies
    assert unset or _same(shown, default) or "default" in line, (
        f"{where}.{key}: config/ocs.yaml shows {shown!r}, the default is {default!r}:"
        f" show the default or say it on the line: {line.strip()!r}"
    )


def test_the_check_sees_a_missing_key(tmp_path: Path) -> None:
    """The parser above finds keys only where they are: a made-up key is not found."""
    block = _block(EXAMPLE.read_text(), "redis", 0)
    assert _key_line(block, "data_dir") is not None
    assert _key_line(block, "no_such_key") is None
    assert _key_line(block, "origin_host") is None  # node's key, not redis's
