"""Capabilities exchange: what a CER says and whether we talk to its sender (RFC 6733 §5.3).

Pure functions over a decoded CER. Common applications intersect every
Auth-/Acct-Application-Id, including those inside Vendor-Specific-Application-Id
whose Vendor-Id is ignored (so VSAI{10415, 4} matches app 4); the relay id
0xffffffff counts as common (standards §1.3). An allow-list, when configured,
admits peers by Origin-Host and, optionally, by source network: others get 3010
with the E bit and are closed. A peer that only offers in-band TLS gets 5017.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from protocols.diameter import avps as A
from protocols.diameter.codec import Decoded
from protocols.diameter.constants import APP_RELAY, VENDOR_3GPP, AvpCode, ResultCode
from protocols.diameter.local import LocalNode

NO_INBAND_SECURITY = 0  # Inband-Security-Id (RFC 6733 §6.10); 1 would be TLS


@dataclass(frozen=True, slots=True)
class AllowedPeer:
    """One allow-list entry: an Origin-Host, optionally only from this network."""

    origin_host: str
    network: str | None = None  # e.g. "127.0.0.1/32" or "::1/128"

    def admits(self, origin_host: str, address: str) -> bool:
        if origin_host != self.origin_host:
            return False
        if self.network is None:
            return True
        try:
            return ipaddress.ip_address(address) in ipaddress.ip_network(self.network, strict=False)
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What we learned of a peer from its CER."""

    origin_host: str
    origin_realm: str
    address: str
    product_name: str = ""
    origin_state_id: int | None = None
    applications: frozenset[int] = frozenset()
    supported_vendors: frozenset[int] = frozenset()

    @property
    def supports_3gpp(self) -> bool:
        """Only such peers get vendor-10415 AVPs (others could reject an unknown M-bit AVP)."""
        return VENDOR_3GPP in self.supported_vendors


@dataclass(frozen=True, slots=True)
class CerDecision:
    result_code: ResultCode
    peer: PeerInfo
    error_bit: bool = False

    @property
    def accepted(self) -> bool:
        return self.result_code == ResultCode.SUCCESS


def peer_info(cer: Decoded, address: str) -> PeerInfo:
    avps = cer.avps
    apps = set(A.get_ints(avps, AvpCode.AUTH_APPLICATION_ID))
    apps.update(A.get_ints(avps, AvpCode.ACCT_APPLICATION_ID))
    for vsai in A.find_all(avps, AvpCode.VENDOR_SPECIFIC_APPLICATION_ID):
        inner = A.children(vsai)
        apps.update(A.get_ints(inner, AvpCode.AUTH_APPLICATION_ID))
        apps.update(A.get_ints(inner, AvpCode.ACCT_APPLICATION_ID))
    return PeerInfo(
        origin_host=A.get_str(avps, AvpCode.ORIGIN_HOST) or "",
        origin_realm=A.get_str(avps, AvpCode.ORIGIN_REALM) or "",
        address=address,
        product_name=A.get_str(avps, AvpCode.PRODUCT_NAME) or "",
        origin_state_id=A.get_int(avps, AvpCode.ORIGIN_STATE_ID),
        applications=frozenset(apps),
        supported_vendors=frozenset(A.get_ints(avps, AvpCode.SUPPORTED_VENDOR_ID)),
    )


def negotiate(
    cer: Decoded, local: LocalNode, address: str, allowed: Sequence[AllowedPeer] = ()
) -> CerDecision:
    """Decide the CEA Result-Code for a well-formed CER."""
    peer = peer_info(cer, address)
    if allowed and not any(a.admits(peer.origin_host, address) for a in allowed):
        return CerDecision(ResultCode.UNKNOWN_PEER, peer, error_bit=True)
    ours = set(local.auth_application_ids)
    if APP_RELAY not in peer.applications and not ours & peer.applications:
        return CerDecision(ResultCode.NO_COMMON_APPLICATION, peer)
    security = A.get_ints(cer.avps, AvpCode.INBAND_SECURITY_ID)
    if security and NO_INBAND_SECURITY not in security:
        return CerDecision(ResultCode.NO_COMMON_SECURITY, peer)  # we do not start TLS in band
    return CerDecision(ResultCode.SUCCESS, peer)
