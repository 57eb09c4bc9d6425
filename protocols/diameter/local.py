"""Who we are on the wire: Origin-Host/Realm, addresses and capabilities (RFC 6733 §5.3).

One frozen value shared by the answer builders, the peer state machine and the
push sender, so every message we emit names us the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.diameter.constants import APP_CREDIT_CONTROL, VENDOR_3GPP

OUR_VENDOR_ID = 0  # no IANA enterprise number of our own: 0 is what RFC 6733 allows


@dataclass(frozen=True, slots=True)
class LocalNode:
    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[str, ...] = ("127.0.0.1",)
    product_name: str = "ocs"
    firmware_revision: int = 1
    vendor_id: int = OUR_VENDOR_ID
    origin_state_id: int = 1
    auth_application_ids: tuple[int, ...] = (APP_CREDIT_CONTROL,)
    supported_vendor_ids: tuple[int, ...] = (VENDOR_3GPP,)
