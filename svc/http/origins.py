r"""Which web origins may use svc: the one allow-list HTTP CORS and the WebSocket upgrade share.

Settings validate ``CORS_ORIGINS`` with the rule of what an origin is
(:mod:`svc.origin`); :mod:`svc.http.cors` and the WebSocket route ask an
:class:`OriginPolicy`.

svc's own origin (the ``/demo`` page) may open a socket without being listed,
but only where the ``Host`` header proves nothing: an IP address or a
``localhost`` name, which no one else's DNS can point at svc.  A DNS name equal
to ``Host`` is not enough: a DNS-rebinding page (``http://evil.example:8000``,
its name re-pointed at svc's address) sends ``Origin`` and ``Host`` that agree.
So a page served under a DNS name (``https://svc.example.com/demo``) needs that
origin in ``CORS_ORIGINS``; ``X-Forwarded-Host`` is never read (anyone can send
it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..origin import DEFAULT_PORTS, compile_pattern, is_origin, parse_origin


def _names_this_machine(host: str) -> bool:
    """An IP literal or a ``localhost`` name: a host no one else's DNS can re-point."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_and_port(host_header: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit("//" + host_header.strip())
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


class OriginPolicy:
    """The allow-list: exact origins, a pattern, or every origin (``*``)."""

    def __init__(self, origins: Iterable[str] = (), regex: str | None = None):
        origins = tuple(origins)
        #: ``CORS_ORIGINS=*``: every origin, and responses need not vary by it.
        self.any = "*" in origins
        self.exact = frozenset(parse_origin(o) for o in origins if o != "*")
        self.pattern = compile_pattern(regex) if regex else None

    @property
    def enabled(self) -> bool:
        """Whether pages of other origins may use the API (else: no CORS at all)."""
        return self.any or bool(self.exact) or self.pattern is not None

    def allows(self, origin: str) -> bool:
        """May a page of ``origin`` call the API from a browser?"""
        if self.any:
            return True
        if origin in self.exact:
            return True
        return (
            self.pattern is not None
            and self.pattern.fullmatch(origin) is not None
            and is_origin(origin)
        )

    def allows_socket(self, origin: str | None, host: str) -> bool:
        """May a WebSocket with this ``Origin`` header open, on a request to ``host`` (its
        ``Host`` header)?

        No ``Origin``: not a browser, which can send any header it likes anyway.  A page of
        the service's own origin may (the ``/demo`` page) where ``Host`` is an IP address or
        ``localhost``; under a DNS name only if listed (see the module); others as for CORS.
        """
        if origin is None:
            return True
        return self.allows(origin) or self.is_same_origin(origin, host)

    @staticmethod
    def is_same_origin(origin: str, host: str) -> bool:
        """Is ``origin`` the host the request came to, and one no DNS can re-point (an IP
        or ``localhost``)?  The scheme is not compared: behind a TLS-terminating proxy the
        page is https while the request arrives as http."""
        try:
            normal = parse_origin(origin)
        except ValueError:
            return False
        parts = urlsplit(normal)
        origin_host = parts.hostname or ""
        if not _names_this_machine(origin_host):
            return False
        origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        found = _host_and_port(host)
        if found is None or found[0] != origin_host:
            return False
        port = found[1]
        return port == origin_port or (port is None and origin_port in (80, 443))

    def describe(self) -> str:
        """The policy in force, for the start-up log."""
        if self.any:
            return "CORS: every origin (CORS_ORIGINS=*)"
        if not self.enabled:
            return (
                "CORS off: only pages of the service's own origin may call it from a browser "
                "(set CORS_ORIGINS or CORS_ORIGIN_REGEX to allow others)"
            )
        allowed = sorted(self.exact)
        if self.pattern is not None:
            allowed.append(f"any origin matching {self.pattern.pattern} in full")
        return "CORS: pages of these origins may call the API and open sockets: " + ", ".join(
            allowed
        )
