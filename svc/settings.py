"""Settings, read once from the environment at start.

Every bad value raises :class:`SettingsError` naming the variable, which
``python -m svc`` prints as one line before exiting non-zero.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .broker import registry as broker_registry
from .http.client_address import Network, parse_networks
from .loop import EVENT_LOOPS
from .origin import compile_pattern, parse_origin
from .redact import scrub
from .storage import registry

log = logging.getLogger(__name__)


class SettingsError(Exception):
    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def default_broker_url(database_url: str) -> str:
    """The broker when ``BROKER_URL`` is unset: the storage's natural one, or ``memory://``."""
    return registry.get_plugin(database_url).default_broker_url(database_url) or "memory://"


@dataclass(frozen=True)
class Settings:
    database_url: str = "memory://"
    #: None: the storage's own broker (Postgres storage → Postgres), else in-process.
    broker_url: str | None = None
    host: str = "0.0.0.0"
    port: int = 8000
    jwt_secret_key: str | None = None
    jwt_lifetime: int = 3600
    cors_origins: tuple[str, ...] = ()
    cors_origin_regex: str | None = None
    bcrypt_rounds: int = 12
    #: Password hashes that may wait or run at once; beyond, 503 with Retry-After.
    #: None: eight per hashing thread.
    hash_queue: int | None = None
    #: How long start-up waits for a database that does not answer yet.
    database_timeout: float = 30.0
    #: Largest request body accepted; larger ones get 413.
    max_body_bytes: int = 64 * 1024
    #: "text" or "json" (one object per line).
    log_format: str = "text"
    #: One line per request and per WebSocket open and close.
    access_log: bool = False
    #: On SIGTERM, how long in-flight requests may take to finish.
    shutdown_timeout: float = 10.0
    #: On SIGTERM, how long readiness answers 503 while everything is still served, so
    #: a balancer's health check moves traffic away before the port closes (svc/drain.py).
    drain_seconds: float = 5.0
    #: Seconds a request body may take to arrive; slower ones get 408.
    body_timeout: float = 10.0
    #: Balancers whose X-Forwarded-For / Forwarded name the client (http/client_address.py).
    trusted_proxies: tuple[Network, ...] = ()
    #: Worker processes ``python -m svc`` runs on the one port (svc.workers).
    workers: int = 1
    # -- limits against abuse, per connection (svc/connections.py, docs/security.md) --
    #: Seconds a request head may take to arrive in full, from the connection's start or
    #: the previous response (so also how long an idle keep-alive connection is kept).
    header_timeout: float = 10.0
    #: Open connections at most; None: the file limit (RLIMIT_NOFILE) less a margin.
    max_connections: int | None = None
    #: WebSockets one user may hold open in this process; the next is closed with 4429.
    max_sockets_per_user: int = 32
    #: Bytes waiting for all slow WebSocket consumers together; past it the ones with
    #: the most waiting are closed with 1013.
    send_buffer_budget: int = 256 * 1024 * 1024
    #: "uvloop" or "asyncio" (svc/loop.py).
    #: Events of each room the broker keeps for resume (0: none, resume is off).
    room_history: int = 100
    #: Seconds a room's event stays in that history.
    room_history_ttl: float = 300.0
    event_loop: str = "uvloop"

    @property
    def resolved_broker_url(self) -> str:
        """``BROKER_URL``, or the storage's natural broker, or ``memory://``."""
        if self.broker_url is not None:
            return self.broker_url
        return default_broker_url(self.database_url)

    @property
    def auth_enabled(self) -> bool:
        return self.jwt_secret_key is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        get = _Reader(env)
        _warn_about_lookalikes(env)
        database_url = get.str("DATABASE_URL", cls.database_url)
        try:
            registry.get_plugin(database_url).check_url(database_url)
        except (registry.PluginError, TypeError, ValueError) as exc:
            # Whatever the plugin wrote, the URL's secrets stay out of the message.
            raise SettingsError("DATABASE_URL", scrub(str(exc), database_url)) from None
        broker_url = get.str("BROKER_URL", None)
        # Unset, the storage's own broker is checked the same way: a plugin it names
        # that is not installed is one line at start, not a traceback when the app is built.
        chosen = broker_url or default_broker_url(database_url)
        try:
            broker_registry.get_plugin(chosen).check_url(chosen)
        except (broker_registry.PluginError, TypeError, ValueError) as exc:
            where = "" if broker_url else " (unset: the storage's own broker)"
            raise SettingsError("BROKER_URL", scrub(str(exc), chosen) + where) from None
        regex = get.str("CORS_ORIGIN_REGEX", None)
        if regex is not None:
            try:
                compile_pattern(regex)
            except re.error as exc:
                raise SettingsError(
                    "CORS_ORIGIN_REGEX", f"not a regular expression ({exc})"
                ) from None
        secret = get.str("JWT_SECRET_KEY", None)
        if secret is None and "JWT_SECRET_KEY" in env:
            # Set but blank is a deployment gone wrong, not a wish for open mode.
            raise SettingsError(
                "JWT_SECRET_KEY",
                "is set but blank; give a secret of at least 32 bytes, or unset it for open mode",
            )
        if secret is not None and len(secret.encode()) < 32:
            # HS256 with a short secret can be brute-forced offline from one token.
            raise SettingsError("JWT_SECRET_KEY", "must be at least 32 bytes long")
        origins = _origins(get.str("CORS_ORIGINS", ""))
        try:
            trusted_proxies = parse_networks(get.str("TRUSTED_PROXIES", ""))
        except ValueError as exc:
            raise SettingsError("TRUSTED_PROXIES", str(exc)) from None
        workers = _workers(get.str("WORKERS", "1"))
        if workers > 1:
            _check_shared(workers, database_url, broker_url, chosen)
        return cls(
            database_url=database_url,
            broker_url=broker_url,
            host=get.str("HOST", cls.host),
            port=get.int("PORT", cls.port, 1, 65535),
            jwt_secret_key=secret,
            jwt_lifetime=get.int("JWT_LIFETIME", cls.jwt_lifetime, 1, 366 * 24 * 3600),
            cors_origins=origins,
            cors_origin_regex=regex,
            bcrypt_rounds=get.int("BCRYPT_ROUNDS", cls.bcrypt_rounds, 4, 31),
            hash_queue=get.int("HASH_QUEUE", cls.hash_queue, 1, 100_000),
            database_timeout=get.float("DATABASE_TIMEOUT", cls.database_timeout, 0, 3600),
            max_body_bytes=get.int("MAX_BODY_BYTES", cls.max_body_bytes, 1024, 64 * 1024 * 1024),
            log_format=get.choice("LOG_FORMAT", cls.log_format, ("text", "json")),
            access_log=get.bool("ACCESS_LOG", cls.access_log),
            shutdown_timeout=get.float("SHUTDOWN_TIMEOUT", cls.shutdown_timeout, 0, 600),
            drain_seconds=get.float("DRAIN_SECONDS", cls.drain_seconds, 0, 600),
            body_timeout=get.float("BODY_TIMEOUT", cls.body_timeout, 0.1, 3600),
            trusted_proxies=trusted_proxies,
            workers=workers,
            header_timeout=get.float("HEADER_TIMEOUT", cls.header_timeout, 0.1, 3600),
            max_connections=get.int("MAX_CONNECTIONS", cls.max_connections, 1, 10_000_000),
            max_sockets_per_user=get.int(
                "MAX_SOCKETS_PER_USER", cls.max_sockets_per_user, 1, 100_000
            ),
            send_buffer_budget=get.int(
                "SEND_BUFFER_BUDGET", cls.send_buffer_budget, 1024 * 1024, 2**40
            ),
            event_loop=get.choice("EVENT_LOOP", cls.event_loop, EVENT_LOOPS),
            room_history=get.int("ROOM_HISTORY", cls.room_history, 0, 100_000),
            room_history_ttl=get.float("ROOM_HISTORY_TTL", cls.room_history_ttl, 1, 7 * 24 * 3600),
        )


#: More worker processes than this is a typo, not a machine.
MAX_WORKERS = 256


def _workers(raw: str) -> int:
    """``WORKERS``: a whole number, or ``auto`` for one per CPU this process may run on
    (its affinity: a container limited by cpuset gets its share, not the host's)."""
    if raw.lower() == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # no sched_getaffinity (macOS)
            return os.cpu_count() or 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WORKERS:
        raise SettingsError(
            "WORKERS", f"must be auto or a whole number from 1 to {MAX_WORKERS}, got {raw!r}"
        )
    return value


def _check_shared(workers: int, database_url: str, broker_url: str | None, chosen: str) -> None:
    """Workers are separate processes: what one keeps in its memory the others never see
    (a user created through one would be 404 through the next), so refuse, naming each."""
    in_memory = []
    if registry.scheme_of(database_url) == "memory":
        in_memory.append("DATABASE_URL is memory://")
    if broker_registry.scheme_of(chosen) == "memory":
        where = "BROKER_URL is memory://" if broker_url else "BROKER_URL is unset (memory://)"
        in_memory.append(where)
    if in_memory:
        raise SettingsError(
            "WORKERS",
            f"{workers} worker processes need storage and a broker shared between processes, "
            f"but {' and '.join(in_memory)}; set them to postgres:// or redis:// (or WORKERS=1)",
        )


def _origins(raw: str) -> tuple[str, ...]:
    """``CORS_ORIGINS`` as browsers send origins (lower case, no default port); one that
    could never match (a trailing ``/``, a path, no scheme) stops start-up naming it."""
    origins = []
    for item in (o.strip() for o in raw.split(",")):
        if not item:
            continue
        try:
            origins.append(item if item == "*" else parse_origin(item))
        except ValueError as exc:
            raise SettingsError("CORS_ORIGINS", str(exc)) from None
    return tuple(origins)


#: Every variable svc reads (the contract's, and the limits documented in docs/).
KNOWN_VARIABLES = (
    "DATABASE_URL",
    "BROKER_URL",
    "HOST",
    "PORT",
    "JWT_SECRET_KEY",
    "JWT_LIFETIME",
    "CORS_ORIGINS",
    "CORS_ORIGIN_REGEX",
    "BCRYPT_ROUNDS",
    "HASH_QUEUE",
    "DATABASE_TIMEOUT",
    "MAX_BODY_BYTES",
    "BODY_TIMEOUT",
    "LOG_FORMAT",
    "ACCESS_LOG",
    "SHUTDOWN_TIMEOUT",
    "TRUSTED_PROXIES",
    "WORKERS",
    "DRAIN_SECONDS",
    "HEADER_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_SOCKETS_PER_USER",
    "SEND_BUFFER_BUDGET",
    "EVENT_LOOP",
)
#: Names other services use for the same thing: svc ignores them, so say so.
LOOKALIKES = {
    "JWT_SECRET": "JWT_SECRET_KEY",
    "JWT_KEY": "JWT_SECRET_KEY",
    "JWT_SECRETKEY": "JWT_SECRET_KEY",
    "JWT_SIGNING_KEY": "JWT_SECRET_KEY",
    "DATABASE_URI": "DATABASE_URL",
    "DB_URL": "DATABASE_URL",
    "DB_URI": "DATABASE_URL",
    "POSTGRES_URL": "DATABASE_URL",
    "CORS_ORIGIN": "CORS_ORIGINS",
    "CORS_ALLOWED_ORIGINS": "CORS_ORIGINS",
    "CORS_ALLOW_ORIGINS": "CORS_ORIGINS",
    "BROKER_URI": "BROKER_URL",
    "REDIS_URL": "BROKER_URL",
}


def _warn_about_lookalikes(env: Mapping[str, str]) -> None:
    """A misspelt variable is silently ignored (a misspelt JWT_SECRET_KEY means open mode):
    warn about each name that looks like one of svc's and is not."""
    for name in sorted(env):
        if name in KNOWN_VARIABLES:
            continue
        meant = LOOKALIKES.get(name)
        if meant is None:
            close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.85)
            # Same first word only: HOSTNAME is not a typo of HOST.
            if close and close[0].split("_")[0] == name.split("_")[0]:
                meant = close[0]
        if meant is not None and meant not in env:
            log.warning("%s is not a setting of svc and is ignored; did you mean %s?", name, meant)


class _Reader:
    """Typed access to the environment; empty counts as unset."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def str(self, name: str, default):
        value = self.env.get(name, "").strip()
        return value if value else default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default).lower()
        if value not in choices:
            raise SettingsError(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.str(name, None)
        if raw is None:
            return default
        value = raw.lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise SettingsError(name, f"must be true or false, got {raw!r}")

    def int(self, name: str, default: int, low: int, high: int) -> int:
        return self._number(name, default, low, high, int, "a whole number")

    def float(self, name: str, default: float, low: float, high: float) -> float:
        return self._number(name, default, low, high, float, "a number of seconds")

    def _number(self, name, default, low, high, kind, what):
        raw = self.str(name, None)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            shown = str if kind is int else "{:g}".format  # 1048576, not 1.04858e+06
            raise SettingsError(
                name, f"must be {what} from {shown(low)} to {shown(high)}, got {raw!r}"
            )
        return value
