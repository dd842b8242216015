r"""What an origin is: the one rule ``CORS_ORIGINS`` is validated by (svc.settings) and the
allow-list matches by (:mod:`svc.http.origins`).  A leaf: standard library only.

An origin is what a browser sends in ``Origin``: ``scheme://host[:port]``, lower
case, without a default port, and nothing after it, not even a ``/``.  A configured
origin that is not of that form could never match and would fail silently, so it
stops start-up instead.  ``CORS_ORIGIN_REGEX`` must match an origin in full, and
only an origin of that form is ever matched (:func:`is_origin`): a pattern's ``.*`` must
not let ``https://evil.org https://a.up.railway.app`` (a list, which RFC 6454 allows)
or a path through.  It is compiled with ``re.ASCII``: ``\d`` is ``[0-9]``, not
every script's digits (``٣``, ``３``), and ``\w`` is ``[A-Za-z0-9_]``.
"""

from __future__ import annotations

import re
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


def is_origin(text: str) -> bool:
    """Is ``text`` one origin, exactly as a browser writes it (ASCII: a browser sends an
    internationalised name as punycode)?"""
    if not text.isascii():
        return False
    try:
        return parse_origin(text) == text
    except ValueError:
        return False
