"""``redis://`` and ``rediss://`` URLs: what svc reads from them, and what it hands to redis-py.

``redis://[[user]:password@]host[:port][/db][?param=value&...]``; ``rediss://`` is
the same over TLS.  svc's own query parameters:

- ``prefix``: the start of every key and of the channel (default ``svc``).
  Services (or test runs) sharing one Redis database are kept apart by it.
- ``heartbeat``: seconds between a process's presence heartbeats (default 5).
- ``node_ttl``: seconds of silence after which the other processes expire a
  process and announce its members' departure (default 20).  A dead process's
  members are gone within ``node_ttl + heartbeat`` seconds, which must be at
  most 30 (the contract); ``node_ttl`` must be at least twice ``heartbeat``,
  so one late beat does not expire a live process.
- ``timeout``: seconds any one Redis command may take (default 2).  It bounds
  what a write request pays for publishing its change when Redis is in trouble.
- ``probe_every``: seconds between two proofs that the pub/sub connection
  still delivers (a token to itself, :mod:`svc.broker.probe`), and how long
  one may take (default 5, from 0.1 to 60).

Passed through to redis-py: ``max_connections`` (default 16) and the TLS
options ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
``ssl_check_hostname``.  Anything else is refused, so a typo is not ignored.
The password is never part of a message: :attr:`RedisURL.redacted` is the
only form of the URL that svc prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from svc.broker.probe import parse_probe_every

SCHEMES = ("redis", "rediss")
DEFAULT_PREFIX = "svc"
DEFAULT_HEARTBEAT = 5.0
DEFAULT_NODE_TTL = 20.0
DEFAULT_TIMEOUT = 2.0
DEFAULT_MAX_CONNECTIONS = 16
#: The contract: a process that dies leaves no member behind for longer than this.
GHOST_LIMIT = 30.0

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_PASS_THROUGH = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)
_OURS = ("prefix", "heartbeat", "node_ttl", "timeout", "max_connections", "probe_every")


@dataclass(frozen=True)
class RedisURL:
    host: str
    port: int
    db: int
    tls: bool
    prefix: str
    heartbeat: float
    node_ttl: float
    timeout: float
    max_connections: int
    probe_every: float
    #: Keyword arguments for redis-py's connections (password included: never print these).
    connection_kwargs: dict = field(repr=False)
    #: The URL with the password masked, for messages.
    redacted: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.db}"

    @classmethod
    def parse(cls, url: str) -> RedisURL:
        """Parse and check ``url`` without any I/O; ValueError (password-free) if it cannot work."""
        parts = urlsplit(url)
        shown = redact(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError(f"{shown}: the scheme must be redis:// or rediss://")
        try:
            port = parts.port if parts.port is not None else 6379
        except ValueError:
            port = -1
        if not 1 <= port <= 65535:
            raise ValueError(f"{shown}: the port must be a number from 1 to 65535")
        db_text = parts.path.lstrip("/")
        if not (db_text == "" or (db_text.isdigit() and len(db_text) <= 5)):
            raise ValueError(f"{shown}: the path must be a database number, e.g. /0")
        query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in _OURS and name not in _PASS_THROUGH:
                accepted = ", ".join(_OURS + _PASS_THROUGH)
                raise ValueError(f"{shown}: unknown parameter {name!r} (accepted: {accepted})")
            query[name] = value
        prefix = query.get("prefix", DEFAULT_PREFIX)
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"{shown}: prefix must be 1 to 100 of A-Z, a-z, 0-9, _ . : -")
        heartbeat = _number(query, "heartbeat", DEFAULT_HEARTBEAT, 0.05, 10.0, shown)
        node_ttl = _number(query, "node_ttl", DEFAULT_NODE_TTL, 0.1, GHOST_LIMIT, shown)
        if node_ttl < 2 * heartbeat:
            raise ValueError(f"{shown}: node_ttl must be at least twice heartbeat")
        if node_ttl + heartbeat > GHOST_LIMIT:
            raise ValueError(
                f"{shown}: node_ttl + heartbeat must be at most {GHOST_LIMIT:g} s "
                "(how long a dead process's members may linger)"
            )
        timeout = _number(query, "timeout", DEFAULT_TIMEOUT, 0.05, 60.0, shown)
        try:
            probe_every = parse_probe_every(query.get("probe_every"))
        except ValueError as exc:
            raise ValueError(f"{shown}: {exc}") from None
        max_connections = int(
            _number(query, "max_connections", DEFAULT_MAX_CONNECTIONS, 2, 10_000, shown)
        )
        kwargs: dict = {name: query[name] for name in _PASS_THROUGH if name in query}
        if "ssl_check_hostname" in kwargs:
            kwargs["ssl_check_hostname"] = kwargs["ssl_check_hostname"].lower() in (
                "1",
                "true",
                "yes",
            )
        if kwargs and scheme != "rediss":
            raise ValueError(f"{shown}: ssl_* parameters need rediss://")
        host = unquote(parts.hostname or "localhost")
        kwargs.update(host=host, port=port, db=int(db_text or 0))
        if parts.username:
            kwargs["username"] = unquote(parts.username)
        if parts.password is not None:
            kwargs["password"] = unquote(parts.password)
        if scheme == "rediss":
            kwargs["ssl"] = True
        return cls(
            host=host,
            port=port,
            db=int(db_text or 0),
            tls=scheme == "rediss",
            prefix=prefix,
            heartbeat=heartbeat,
            node_ttl=node_ttl,
            timeout=timeout,
            max_connections=max_connections,
            probe_every=probe_every,
            connection_kwargs=kwargs,
            redacted=shown,
        )


def _number(query: dict, name: str, default: float, low: float, high: float, shown: str) -> float:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # NaN fails too
        raise ValueError(f"{shown}: {name} must be a number from {low:g} to {high:g}")
    return value


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "the broker URL"
    if password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))
