"""The ``diameter:`` config section and the entry-point factory ``ocs serve`` uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ocs.config import ConfigError
from ocs.frontend import FrontendContext, load_frontend_factories
from protocols.diameter.frontend import create
from protocols.diameter.server import DiameterServer

ROOT = Path(__file__).parents[3]
CTX = FrontendContext(Path("ocs.yaml"), "diameter", "ocs.example.net", "example.net", "ocs")


def test_entry_point_is_registered() -> None:
    """`ocs serve` finds the Gy listener under the ocs.frontends entry points."""
    assert load_frontend_factories()["diameter"] is create


def test_example_section_loads_with_deployment_identity() -> None:
    """The example config/ocs.yaml section validates; identity defaults from the deployment."""
    raw = yaml.safe_load((ROOT / "config" / "ocs.yaml").read_text())["diameter"]
    server = create(raw, CTX)
    assert isinstance(server, DiameterServer) and server.name == "diameter"
    assert (server.local.origin_host, server.local.origin_realm) == (
        "ocs.example.net",
        "example.net",
    )
    assert server.config.port == 3868 and server.config.storage_failure_result_code == 3004


def test_defaults() -> None:
    """Defaults: 3868 on IPv4 and IPv6, Tw 30 s, 1 MiB, depth 10, 64 MSCC, 3004 on storage failure."""
    cfg = create({}, CTX).config
    assert cfg.listen == ["0.0.0.0", "::"] and cfg.port == 3868
    assert cfg.watchdog_interval == 30 and cfg.limits.max_message_size == 1 << 20
    assert (cfg.limits.max_depth, cfg.limits.max_mscc) == (10, 64)
    assert (cfg.limits.max_in_flight_bytes, cfg.limits.max_in_flight_bytes_total) == (
        16 << 20,
        128 << 20,
    )
    assert (cfg.duplicate_cache_entries, cfg.duplicate_cache_bytes) == (200_000, 128 << 20)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"prot": 3868}, "diameter.prot"),
        ({"watchdog_interval": 2}, "diameter.watchdog_interval"),
        ({"storage_failure_result_code": 4010}, "diameter.storage_failure_result_code"),
        ({"limits": {"max_depth": 100}}, "diameter.limits.max_depth"),
        ({"allowed_peers": [{"network": "10.0.0.0/8"}]}, "diameter.allowed_peers"),
        ({"limits": {"max_in_flight_bytes": 1000}}, "diameter.limits"),
        ({"limits": {"max_in_flight_bytes_total": 1 << 20}}, "diameter.limits"),
        ({"duplicate_cache_bytes": 1000}, "diameter.duplicate_cache_bytes"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, object], needle: str) -> None:
    """A bad key or value is refused at load with the file and the key path."""
    with pytest.raises(ConfigError) as err:
        create(raw, CTX)
    assert needle in str(err.value) and "ocs.yaml" in str(err.value)
