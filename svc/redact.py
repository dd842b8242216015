"""Secrets out of URLs before they reach a message or a log line.

``DATABASE_URL`` and ``BROKER_URL`` may carry a password in the userinfo
(``postgres://ada:pw@db/app``) or in the query (``?password=pw``), and an
operator's typo (``postgres:///ada:pw@db/app``, ``ada:pw@db/app``) puts it
where a URL parser no longer sees a password at all.  So these functions do not
trust a parser: whatever stands before the last ``@`` of the part before the
query, past the first ``:``, is treated as a password, and so is the value of
any query parameter whose name says password, secret, token or key.

Public API (docs/plugins.md): plugins may import :func:`redact_url` and :func:`scrub`,
as the built-in ones do; their names and meaning are kept.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
#: A name that contains one of these words (any case) holds a secret: a URL's query
#: parameter here, a ``name=value`` in a log line (svc.log_secrets).  The one list.
SECRET_WORDS = r"pass|pwd|secret|token|key"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/+")
_SECRET_PARAM = re.compile(SECRET_WORDS, re.IGNORECASE)


def _split(url: str) -> tuple[str, str | None, str, str | None]:
    """(scheme with its slashes, userinfo or None, the rest up to the query, query or None)."""
    base, mark, query = url.partition("?")
    match = _SCHEME.match(base)
    scheme = match.group(0) if match else ""
    rest = base[len(scheme) :]
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return scheme, None, rest, query if mark else None
    return scheme, userinfo, host, query if mark else None


def _params(query: str) -> list[tuple[str, str | None]]:
    pairs = []
    for piece in query.split("&"):
        name, eq, value = piece.partition("=")
        pairs.append((name, value if eq else None))
    return pairs


def redact_url(url: str) -> str:
    """``url`` with every password-like part replaced by ``***``."""
    scheme, userinfo, host, query = _split(url)
    shown = scheme
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        shown += f"{user}:{MASK}@" if colon else f"{userinfo}@"
    shown += host
    if query is not None:
        pieces = []
        for name, value in _params(query):
            if value is None:
                pieces.append(name)
            elif _SECRET_PARAM.search(unquote(name)):
                pieces.append(f"{name}={MASK}")
            else:
                pieces.append(f"{name}={value}")
        shown += "?" + "&".join(pieces)
    return shown


def url_secrets(url: str) -> list[str]:
    """Every secret in ``url``, as written and percent-decoded, longest first."""
    found: set[str] = set()
    _, userinfo, _, query = _split(url)
    if userinfo is not None and ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    for name, value in _params(query or ""):
        if value and _SECRET_PARAM.search(unquote(name)):
            found.add(value)
    found |= {unquote(secret) for secret in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, *urls: str | None) -> str:
    """``text`` with every secret of ``urls`` masked (a driver may quote any part of a URL)."""
    for url in urls:
        if url:
            for secret in url_secrets(url):
                text = text.replace(secret, MASK)
    return text
