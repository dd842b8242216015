"""Who the client is: the one rule for its address, behind trusted balancers or not.

The peer of the TCP connection is the client, unless that peer is one of the
operator's balancers (``TRUSTED_PROXIES``: addresses or CIDR networks).  Only
then is ``X-Forwarded-For`` read, walked from the right (each trusted hop
appends the address it saw): the first address that is not itself a trusted
proxy is the client.  Everything left of it was written by someone untrusted
and is ignored, so a client that forges ``X-Forwarded-For`` gains nothing,
behind a balancer or not.  ``Forwarded`` (RFC 7239, its ``for=``) is walked the
same way, only when the request has no ``X-Forwarded-For``: a balancer that
appends to one header seldom cleans the other, and the one nearly every
balancer writes (nginx's ``$proxy_add_x_forwarded_for``, HAProxy's
``option forwardfor``, the cloud balancers) wins.

A value that is not an address (garbage, ``unknown``, an obfuscated ``_id``)
stops the walk at the last trusted hop: that proxy is as far as anyone can
vouch for.  If every hop is trusted, the leftmost is the client.

A leaf module (standard library only): settings parse ``TRUSTED_PROXIES`` with
:func:`parse_networks`; the login throttle, and anything else that needs "who
is this" (an access log, a metric), asks :func:`client_address`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Attacker-sent headers are read only this far: a real chain of balancers is a few hops.
_MAX_HOPS = 32


def parse_networks(raw: str) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES``: comma-separated addresses or CIDR networks (ValueError naming
    the bad item)."""
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{item[:60]!r} is not an IP address or a CIDR network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """One hop of a forwarding header as an address: ``1.2.3.4``, ``1.2.3.4:56``,
    ``2001:db8::1``, ``[2001:db8::1]:56``, optionally quoted; None for anything else."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port; an IPv6 literal has two or more
        text = text.partition(":")[0]
    if not text or len(text) > 64:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:1.2.3.4 is the IPv4 client 1.2.3.4
    return address


def forwarded_for(values: Iterable[str]) -> list[str]:
    """The hops of ``X-Forwarded-For`` headers, left to right (several headers are one list)."""
    return [hop.strip() for value in values for hop in value.split(",")]


def forwarded_rfc7239(values: Iterable[str]) -> list[str]:
    """The ``for=`` of each element of ``Forwarded`` headers, left to right; an element
    without one counts as an unknown hop (it stops the walk)."""
    hops = []
    for value in values:
        for element in _split_quoted(value, ","):
            found = ""
            for pair in _split_quoted(element, ";"):
                name, _, param = pair.partition("=")
                if name.strip().lower() == "for":
                    found = param.strip()
            hops.append(found)
    return hops


def _split_quoted(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside double quotes (a quoted IPv6 has colons, and
    a quoted string may hold the separator)."""
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def resolve(peer: str | None, hops: Sequence[str], proxies: Sequence[Network]) -> str:
    """The client's address given the TCP ``peer``, the forwarding ``hops`` (left to
    right) and the trusted ``proxies``: the walk of the module's docstring."""
    peer_address = parse_address(peer) if peer else None
    if peer_address is None:
        return peer or "unknown"  # e.g. a Unix socket: no address to say more with
    client = peer_address
    if not _trusted(client, proxies):
        return str(client)
    for hop in reversed(hops[-_MAX_HOPS:]):
        address = parse_address(hop)
        if address is None:
            break  # the last trusted hop is as far as anyone vouches
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)


def client_address(request: web.Request, proxies: Sequence[Network]) -> str:
    """The address of the client that sent ``request`` (see the module's docstring)."""
    peer = request.remote
    if not proxies:
        return peer or "unknown"
    headers = request.headers
    if "X-Forwarded-For" in headers:
        hops = forwarded_for(headers.getall("X-Forwarded-For"))
    else:
        hops = forwarded_rfc7239(headers.getall("Forwarded", ()))
    return resolve(peer, hops, proxies)


def ignored_forwarding(request: web.Request, proxies: Sequence[Network]) -> bool:
    """Does ``request`` carry forwarding headers that are ignored (its peer is not a trusted
    proxy)?  From a client, a forgery; from a balancer the operator did not name, every
    client behind it counts as one (which an operator should hear about, once)."""
    headers = request.headers
    if "X-Forwarded-For" not in headers and "Forwarded" not in headers:
        return False
    peer = parse_address(request.remote or "")
    return peer is None or not _trusted(peer, proxies)
