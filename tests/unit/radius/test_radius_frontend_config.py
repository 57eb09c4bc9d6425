"""The ``radius:`` section through ocs.config.validate_section (errors name file and key)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ocs.config import ConfigError
from ocs.frontend import FrontendContext
from protocols.radius.frontend import RadiusFrontend, create

CONFIG = Path(__file__).resolve().parents[3] / "config" / "ocs.yaml"


def _ctx() -> FrontendContext:
    return FrontendContext(Path("/etc/ocs.yaml"), "radius", "ocs.test", "test", "ocs")


def test_example_config_section_is_valid() -> None:
    """config/ocs.yaml's radius section validates with the front end's own model."""
    raw = yaml.safe_load(CONFIG.read_text())["radius"]
    raw.pop("enabled", None)
    fe = create(raw, _ctx())
    assert isinstance(fe, RadiusFrontend)
    assert fe.config.acct_interim_interval >= 60


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (
            {"clients": [{"name": "a", "address": "127.0.0.1", "secret": "s"}], "bogus": 1},
            "radius.bogus",
        ),
        (
            {"clients": [{"name": "a", "address": "not-an-ip", "secret": "s"}]},
            "radius.clients.0.address",
        ),
        (
            {"clients": [{"name": "a", "address": "127.0.0.1", "secret": "s", "flavour": "cisco"}]},
            "radius.clients.0.flavour",
        ),
        (
            {
                "clients": [{"name": "a", "address": "127.0.0.1", "secret": "s"}],
                "acct_interim_interval": 30,
            },
            "radius.acct_interim_interval",
        ),
        ({}, "radius.clients"),
    ],
    ids=["unknown-key", "bad-address", "bad-flavour", "interim-below-60", "no-clients"],
)
def test_bad_section_names_file_and_key(raw: dict[str, object], needle: str) -> None:
    """A bad radius section fails at load with the file and the key path."""
    with pytest.raises(ConfigError) as info:
        create(raw, _ctx())
    assert "/etc/ocs.yaml" in str(info.value)
    assert needle in str(info.value)
