"""Which web origins may use svc: the one allow-list that HTTP CORS and the WebSocket upgrade share.

A leaf module (standard library only): settings validate ``CORS_ORIGINS`` with
:func:`parse_origin`, :mod:`svc.http.cors` and :mod:`svc.rooms.ws` ask an
:class:`OriginPolicy`.

An origin is what a browser sends in ``Origin``: ``scheme://host[:port]``, lower
case, without a default port, and nothing after it, not even a ``/``.  A configured
origin that is not of that form could never match and would fail silently, so it
stops start-up instead.  ``CORS_ORIGIN_REGEX`` must match an origin in full.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*\Z")


def parse_origin(text: str) -> str:
    """``text`` as the browser would send it; ValueError saying what is wrong with it."""
    if text == "null":
        # Sandboxed frames and file:// pages all send "null": allowing it allows all of them.
        raise ValueError('"null" is not an origin one can allow (every sandboxed page sends it)')
    scheme, sep, rest = text.partition("://")
    if not sep or not _SCHEME.match(scheme.lower()):
        raise ValueError(f"{text!r} is not an origin: it must start with a scheme, e.g. https://")
    if not rest:
        raise ValueError(f"{text!r} is not an origin: the host is missing")
    if any(c in rest for c in "/?#"):
        hint = rest.split("/")[0].split("?")[0].split("#")[0]
        raise ValueError(
            f"{text!r} is not an origin: nothing may follow the host, not even '/' "
            f"(write {scheme}://{hint})"
        )
    if "@" in rest or any(c.isspace() for c in rest):
        raise ValueError(f"{text!r} is not an origin: give only scheme://host[:port]")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not an origin: the port is not a number 0-65535") from None
    host = (parts.hostname or "").lower()
    if not host or (parts.netloc.endswith(":") and port is None):
        raise ValueError(f"{text!r} is not an origin: the host is missing or incomplete")
    scheme = scheme.lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


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
        self.pattern = re.compile(regex) if regex else None

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
        return self.pattern is not None and self.pattern.fullmatch(origin) is not None

    def allows_socket(self, origin: str | None, hosts: Iterable[str]) -> bool:
        """May a WebSocket with this ``Origin`` header open, on a request to one of ``hosts``
        (its ``Host``, and ``X-Forwarded-Host`` behind a proxy)?

        No ``Origin``: not a browser, which can send any header it likes anyway.  A page of
        the service's own origin always may (the ``/demo`` page); others as for CORS.
        """
        if origin is None:
            return True
        return self.allows(origin) or self.is_same_origin(origin, hosts)

    @staticmethod
    def is_same_origin(origin: str, hosts: Iterable[str]) -> bool:
        """Is ``origin`` the host the request came to?  The scheme is not compared: behind
        a TLS-terminating proxy the page is https while the request arrives as http."""
        try:
            normal = parse_origin(origin)
        except ValueError:
            return False
        parts = urlsplit(normal)
        origin_host = parts.hostname or ""
        origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        for host in hosts:
            found = _host_and_port(host)
            if found is None or found[0] != origin_host:
                continue
            port = found[1]
            if port == origin_port or (port is None and origin_port in (80, 443)):
                return True
        return False

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
