"""Who the client of a request is: its address, behind the site's own proxies, and the key a rate
limit counts it under.

The one place that reads a client address (the README's "Options", ``trusted_proxies``). The
ledger's ``ip_prefix``, the desk's sign-in limit and access log, and the decision rate limit all
use :meth:`ClientAddresses.of`, so that they agree on who a client is.

``X-Forwarded-For`` is believed only when the direct peer is one of the configured proxies:
anybody can send that header, and believing it from anyone would let a client pick the address it
is limited and recorded under. Behind a proxy that is not configured, every client has the
proxy's address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

from starlette.types import Scope

from ..errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: A rate limit's key for requests whose client address is not known (a server on a Unix socket
#: that reports none): they share one bucket.
UNKNOWN = "unknown"
#: Entries of ``X-Forwarded-For`` looked at, from the right: a proxy chain is a few hops long, and
#: a header of thousands of entries must not cost thousands of parses.
MAX_HOPS = 16


@lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (an IPv4-mapped IPv6 address as its IPv4 address), else ``None``."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=4096)
def limit_key(address: str | None) -> str:
    """What a rate limit counts a client address under: an IPv4 address itself, an IPv6 address's
    /64 network (one household or host usually holds a whole /64, so counting single addresses
    would let it try 2^64 times).
    """
    ip = parse_address(address) if address else None
    if ip is None:
        return UNKNOWN
    if ip.version == 4:
        return str(ip)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


class ClientAddresses:
    """The client address of requests, given the site's trusted proxies (addresses or networks,
    such as ``["127.0.0.1", "10.0.0.0/8"]``; none by default)."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        if isinstance(trusted_proxies, str):
            raise ConfigurationError(
                "trusted_proxies must be a list of addresses or networks, such as ['10.0.0.0/8']"
            )
        networks: list[IPNetwork] = []
        for entry in trusted_proxies:
            try:
                networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
            except ValueError:
                raise ConfigurationError(
                    f"trusted_proxies: {entry!r} is not an IP address or network (such as 10.0.0.0/8)"
                ) from None
        self.trusted: tuple[IPNetwork, ...] = tuple(networks)

    def is_trusted(self, ip: IPAddress | None) -> bool:
        """Whether ``ip`` is one of the site's own proxies."""
        return ip is not None and any(ip in net for net in self.trusted)

    def of(self, scope: Scope) -> str | None:
        """The client address of a request (``None`` when the server reports none).

        The direct peer, unless it is a trusted proxy: then the rightmost address of
        ``X-Forwarded-For`` that is not itself a trusted proxy. Entries left of it were written
        by the client or by proxies we do not know, and prove nothing.
        """
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if not self.trusted or peer is None:
            return peer
        if not self.is_trusted(parse_address(peer)):
            return peer
        return self.forwarded(peer, _forwarded_for(scope["headers"]))

    def forwarded(self, peer: str, hops: Sequence[str]) -> str:
        """The client behind the trusted proxy ``peer``, from the ``X-Forwarded-For`` entries
        ``hops`` (oldest first)."""
        nearest = peer
        for hop in reversed(hops[-MAX_HOPS:]):
            ip = parse_address(_without_port(hop))
            if ip is None:
                # A trusted proxy wrote something that is not an address: the client is unknown
                # beyond it, so the nearest known hop stands for it (never the garbage itself,
                # which a client might have chosen).
                return nearest
            if not self.is_trusted(ip):
                return str(ip)
            nearest = str(ip)
        # Every hop is one of our proxies (a health check from inside): the farthest one.
        return nearest


def _without_port(hop: str) -> str:
    """An ``X-Forwarded-For`` entry without the port some proxies add (``192.0.2.1:443``,
    ``[2001:db8::1]:443``)."""
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every ``X-Forwarded-For`` entry, oldest first (several headers count as one list)."""
    hops: list[str] = []
    for key, value in headers:
        if key == b"x-forwarded-for" or (len(key) == 15 and key.lower() == b"x-forwarded-for"):
            hops.extend(h.strip() for h in value.decode("latin-1").split(","))
    return hops
