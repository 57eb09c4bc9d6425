"""Which configured NAS a datagram comes from (standards §3.1: pick the secret by
source address; unknown sources are dropped silently).

Longest-prefix match over the configured networks; IPv4-mapped IPv6 sources
(from a dual-stack socket) are matched as IPv4.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address

from protocols.radius.settings import ClientConfig


def normalise_ip(host: str) -> IPv4Address | IPv6Address:
    """The source address as an address object, IPv4-mapped IPv6 unwrapped."""
    addr = ip_address(host.split("%", 1)[0])
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class ClientTable:
    """Configured clients, looked up by source address (most specific prefix wins).

    Answers are kept per source string (parsing the address costs more than the
    rest of a lookup); bounded, so spoofed sources cannot grow it without limit.
    """

    def __init__(self, clients: Iterable[ClientConfig], cache_max: int = 4096) -> None:
        self._clients = sorted(clients, key=lambda c: c.address.prefixlen, reverse=True)
        self._seen: dict[str, ClientConfig | None] = {}
        self._cache_max = cache_max

    def lookup(self, host: str) -> ClientConfig | None:
        try:
            return self._seen[host]
        except KeyError:
            pass
        if len(self._seen) >= self._cache_max:
            self._seen.clear()
        client = self._seen[host] = self._match(host)
        return client

    def _match(self, host: str) -> ClientConfig | None:
        try:
            addr = normalise_ip(host)
        except ValueError:
            return None
        for client in self._clients:
            if client.address.version == addr.version and addr in client.address:
                return client
        return None

    def __iter__(self) -> Iterator[ClientConfig]:
        return iter(self._clients)
