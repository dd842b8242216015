r"""Which web origins may use svc: the one allow-list HTTP CORS and the WebSocket upgrade share.

A leaf module (standard library only): settings validate ``CORS_ORIGINS`` with
:func:`parse_origin`, :mod:`svc.http.cors` and :mod:`svc.http.ws` ask an
:class:`OriginPolicy`.

An origin is what a browser sends in ``Origin``: ``scheme://host[:port]``, lower
case, without a default port, and nothing after it, not even a ``/``.  A configured
origin that is not of that form could never match and would fail silently, so it
stops start-up instead.  ``CORS_ORIGIN_REGEX`` must match an origin in full, and
only an origin of that form is ever matched: a pattern's ``.*`` must not let
``https://evil.org https://a.up.railway.app`` (a list, which RFC 6454 allows)
or a path through.  It is compiled with ``re.ASCII``: ``\d`` is ``[0-9]``, not
every script's digits (``٣``, ``３``), and ``\w`` is ``[A-Za-z0-9_]``.

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


def compile_pattern(regex: str) -> re.Pattern:
    """``CORS_ORIGIN_REGEX`` as svc matches it (ASCII classes: see the module)."""
    return re.compile(regex, re.ASCII)


def _is_origin(text: str) -> bool:
    """Is ``text`` one origin, exactly as a browser writes it (ASCII: a browser sends an
    internationalised name as punycode)?"""
    if not text.isascii():
        return False
    try:
        return parse_origin(text) == text
    except ValueError:
        return False


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
            and _is_origin(origin)
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
