"""Entry point ``ocs.frontends: diameter`` (see ocs/frontend.py): config section -> listener.

The identity (Origin-Host/Realm, Product-Name) defaults to the deployment's
(FrontendContext) and may be overridden in the ``diameter:`` section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocs.frontend import FrontendContext
from protocols.diameter.config import DiameterConfig
from protocols.diameter.local import LocalNode
from protocols.diameter.server import DiameterServer


def load_config(raw: Mapping[str, Any], ctx: FrontendContext) -> DiameterConfig:
    from ocs.config import validate_section  # the server's shared validator

    return validate_section(DiameterConfig, raw, ctx.config_file, ctx.section)


def local_node(cfg: DiameterConfig, ctx: FrontendContext) -> LocalNode:
    addresses = cfg.host_ip_addresses or [a for a in cfg.listen if a not in ("0.0.0.0", "::")]
    return LocalNode(
        origin_host=cfg.origin_host or ctx.origin_host,
        origin_realm=cfg.origin_realm or ctx.origin_realm,
        host_ip_addresses=tuple(addresses) or ("127.0.0.1",),
        product_name=cfg.product_name or ctx.product_name,
    )


def create(raw: Mapping[str, Any], ctx: FrontendContext) -> DiameterServer:
    cfg = load_config(raw, ctx)
    return DiameterServer(cfg, local_node(cfg, ctx), node_start=ctx.node_start)
