"""``postgres://`` URLs: what svc reads from them, and what it hands to libpq.

svc takes three parameters of its own from the query, ``pool_size``,
``prepared_statements`` (prepared.py) and ``probe_every`` (seconds between two proofs
that the broker's ``LISTEN`` connection still delivers, and how long one may take:
:mod:`svc.broker.probe`, default 5); everything else (``sslmode``, ``options``,
``connect_timeout``...) is libpq's and passes through untouched.  The password is never
part of a message or a log line: :func:`redact` is the only form of the URL that svc
prints (``?password=`` masked too).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg2
import psycopg2.extensions

from svc.broker.probe import PROBE_EVERY, parse_probe_every
from svc.redact import redact_url, scrub

SCHEMES = ("postgres", "postgresql")
DEFAULT_POOL_SIZE = 10
MAX_POOL_SIZE = 1000
#: svc's own query parameters, removed before the URL reaches libpq (which rejects unknown ones).
SVC_PARAMS = ("pool_size", "prepared_statements", "probe_every")


@dataclass(frozen=True)
class PostgresURL:
    #: libpq connection parameters (password included: never print this).
    params: dict
    pool_size: int
    #: Prepare the hot statements on each pooled connection (never through a transaction
    #: pooler, which svc detects by itself: pooling.py).
    prepared_statements: bool
    #: The URL with the password masked, for messages.
    redacted: str
    #: Seconds between two proofs that the LISTEN connection delivers (svc.broker.probe).
    probe_every: float = PROBE_EVERY

    @classmethod
    def parse(cls, url: str) -> PostgresURL:
        """Parse and check ``url`` without any I/O; ValueError (password-free) if it cannot work."""
        try:
            return cls._parse(url, urlsplit(url))
        except ValueError as exc:
            # Belt and braces: libpq may quote a bad token, which may be the password.
            raise ValueError(scrub(str(exc), url)) from None

    @classmethod
    def _parse(cls, url: str, parts) -> PostgresURL:
        shown = redact(url)
        if parts.scheme.lower() not in SCHEMES:
            raise ValueError(f"{shown}: the scheme must be postgres:// or postgresql://")
        try:
            port = parts.port  # urllib checks that it is a number in range
        except ValueError:
            port = -1
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"{shown}: the port must be a number from 1 to 65535")
        # Take svc's parameters out of the raw query and leave libpq's exactly as written.
        base, _, query = url.partition("?")
        ours, theirs = [], []
        for piece in query.split("&") if query else []:
            name = unquote(piece.partition("=")[0])
            (ours if name in SVC_PARAMS else theirs).append(piece)
        svc = dict(parse_qsl("&".join(ours)))
        pool_size = _pool_size(svc.get("pool_size"), shown)
        prepared = _flag(svc.get("prepared_statements", "true"), "prepared_statements", shown)
        libpq_url = f"{base}?{'&'.join(theirs)}" if theirs else base
        try:
            params = psycopg2.extensions.parse_dsn(libpq_url)
        except psycopg2.ProgrammingError as exc:
            problem = str(exc).strip().removeprefix("invalid dsn: ")
            raise ValueError(f"{shown}: {problem}") from None
        try:
            probe_every = parse_probe_every(svc.get("probe_every"))
        except ValueError as exc:
            raise ValueError(f"{shown}: {exc}") from None
        return cls(
            params=params,
            pool_size=pool_size,
            prepared_statements=prepared,
            redacted=shown,
            probe_every=probe_every,
        )

    def dsn(self, application_name: str, **extra) -> str:
        """The libpq DSN of one svc component, with its own ``application_name`` (so an
        operator, or a test, can tell its connections apart).  ``extra`` libpq parameters
        apply unless the URL sets them.  No start-up parameter of svc's own: a pooler
        refuses ``options`` (PgBouncer: "unsupported startup parameter"), so svc's settings
        are statements (pooling.py)."""
        params = {**extra, **self.params, "application_name": application_name}
        return psycopg2.extensions.make_dsn(**params)

    def instance_name(self, role: str = "") -> str:
        """An ``application_name`` no other instance has: the URL's (or ``svc``), ``role``,
        the process id and a random suffix."""
        prefix = self.params.get("application_name", "svc")
        return f"{prefix}{role}-{os.getpid()}-{secrets.token_hex(3)}"


def _pool_size(raw: str | None, shown: str) -> int:
    if raw is None:
        return DEFAULT_POOL_SIZE
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_POOL_SIZE:
        raise ValueError(f"{shown}: pool_size must be a whole number from 1 to {MAX_POOL_SIZE}")
    return size


def _flag(raw: str, name: str, shown: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{shown}: {name} must be true or false")
    return value == "true"


def redact(url: str) -> str:
    """``url`` with its password (in the userinfo or ``?password=``) replaced by ``***``,
    even when the URL is too malformed for a parser to find it."""
    return redact_url(url)
