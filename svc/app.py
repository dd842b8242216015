"""``create_app(settings)``: the one aiohttp application; ``build_app`` (it as ``python -m
svc`` and its workers serve it: start-up lines, heap settings, shared /metrics) and
``app_from_env`` (Gunicorn's factory), both built on svc.serving's parts.

Resources are opened through ``cleanup_ctx`` in dependency order (password
pool, storage, the broker with the rooms hub as its listener) and closed in
the reverse order.  ``on_shutdown`` runs before any of that: every WebSocket
gets its 1001 while the broker and storage are still there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from . import log_secrets
from .broker import Broker
from .broker.registry import get_plugin as get_broker_plugin
from .collector import collector_ctx
from .connections import ConnectionStats
from .drain import Drain
from .http import auth, demo, health, members, metrics, openapi, users, ws
from .http.login_throttle import LoginThrottle
from .http.metrics import Metrics
from .http.middleware import observe_requests
from .http.origins import OriginPolicy
from .http.request_limits import HANDLER_ARGS
from .http.worker_metrics import share
from .keys import (
    BROKER,
    CONNECTIONS,
    DRAIN,
    HUB,
    LOGIN_THROTTLE,
    METRICS,
    ORIGINS,
    PASSWORDS,
    SETTINGS,
    STORAGE,
)
from .passwords import Passwords
from .redact import scrub
from .rooms import Hub, RoomSettings
from .serving import (
    GUNICORN_BOOT_ERROR,
    BootRunner,
    gunicorn_directory,
    runner_options,
    say_error,
    settings_from_env,
)
from .settings import Settings, SettingsError
from .storage import Misconfigured, Storage, Unavailable
from .storage.registry import get_plugin as get_storage_plugin
from .storage.registry import scheme_of
from .workers import WORKER_VARIABLE, WORKERS_DIR_VARIABLE, parent_is_gone

log = logging.getLogger(__name__)
#: The start-up lines (open mode, storage and broker, origins), under "svc" as ever.
startup_log = logging.getLogger("svc")


def create_app(
    settings: Settings | None = None,
    storage: Storage | None = None,
    broker: Broker | None = None,
) -> web.Application:
    """The application.  ``storage`` and ``broker`` override the ones the settings name
    (tests use them to share one backend between several apps).

    ``settings`` is required: called with none (``gunicorn 'svc.app:create_app()'``), it
    would serve memory storage and an in-process broker, whatever the environment says,
    each worker its own users, while /health/ready said 200.  Servers use
    :func:`app_from_env`."""
    if not isinstance(settings, Settings):
        raise TypeError(
            "create_app() needs its Settings (create_app(Settings.from_env())); to serve "
            "svc under Gunicorn, use svc.app:app_from_env with aiohttp.GunicornWebWorker"
        )
    log_secrets.install()  # before any request can be logged
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        # never inflate a request body (request_limits.py); HEADER_TIMEOUT is aiohttp's
        # keep-alive timer, armed at the connection's start and after each response
        # (svc/connections.py): a head must be whole within it.
        handler_args={**HANDLER_ARGS, "keepalive_timeout": settings.header_timeout},
    )
    app[SETTINGS] = settings
    app[ORIGINS] = OriginPolicy(settings.cors_origins, settings.cors_origin_regex)
    app[STORAGE] = storage or get_storage_plugin(settings.database_url)(settings.database_url)
    broker_url = settings.resolved_broker_url
    app[BROKER] = broker or get_broker_plugin(broker_url)(broker_url)
    app[BROKER].history_size = settings.room_history
    app[BROKER].history_ttl = settings.room_history_ttl
    app[PASSWORDS] = Passwords(settings.bcrypt_rounds, max_queue=settings.hash_queue)
    app[LOGIN_THROTTLE] = LoginThrottle()
    limits = RoomSettings(
        max_sockets_per_user=settings.max_sockets_per_user,
        send_buffer_budget=settings.send_buffer_budget,
    )
    app[HUB] = Hub(app[STORAGE], app[BROKER], limits, private_email=settings.auth_enabled)
    app[CONNECTIONS] = ConnectionStats()  # counted by python -m svc's gate (connections.py)
    app[METRICS] = Metrics(app)
    app[DRAIN] = Drain(settings.drain_seconds)
    # Request ids, JSON errors, CORS, metrics, access lines: for every answer (http/middleware.py).
    app.middlewares.append(observe_requests(app))
    app.cleanup_ctx.append(_passwords_ctx)
    app.cleanup_ctx.append(_storage_ctx)
    app.cleanup_ctx.append(_broker_ctx)  # after storage: the hub reads users as news arrives
    app.on_shutdown.append(_close_sockets)  # shutdown runs before any cleanup
    health.setup_routes(app)
    users.setup_routes(app)
    auth.setup_routes(app)
    ws.setup_routes(app)
    members.setup_routes(app)
    metrics.setup_routes(app)
    demo.setup_routes(app)  # /demo and /static/*: the live demo page and svc-client.js
    openapi.setup(app)  # after every route: it documents what is routed
    return app


def build_app(settings: Settings) -> web.Application:
    """The application as a server runs it: start-up lines said, the collector set, and,
    in a worker of ``WORKERS``, /metrics for the whole service."""
    if not settings.auth_enabled:
        startup_log.warning(
            "JWT_SECRET_KEY is not set: auth is off, anyone may change any user (open mode)"
        )
    startup_log.info(
        "storage: %s; broker: %s",
        scheme_of(settings.database_url),
        scheme_of(settings.resolved_broker_url),
    )
    app = create_app(settings)
    startup_log.info("%s", app[ORIGINS].describe())
    app.cleanup_ctx.append(collector_ctx)  # full collections after bursts, not during
    directory = os.environ.get(WORKERS_DIR_VARIABLE)
    if directory:
        share(app, directory, os.environ[WORKER_VARIABLE], parent_is_gone)
    return app


async def app_from_env() -> web.AppRunner:
    """Gunicorn's factory (``aiohttp.GunicornWebWorker``), configured from the environment
    exactly as ``python -m svc`` is:
    ``gunicorn svc.app:app_from_env --worker-class aiohttp.GunicornWebWorker``.

    A bad setting, or a database that refuses or does not answer, is the one ``svc: error:``
    line and the worker exits with Gunicorn's boot error, so Gunicorn stops rather than
    starting it again and again."""
    try:
        settings = settings_from_env()
    except SettingsError as exc:
        say_error(exc)
        raise SystemExit(GUNICORN_BOOT_ERROR) from None
    if scheme_of(settings.database_url) == "memory":
        # Gunicorn does not tell its workers how many they are: say it, once per worker.
        startup_log.warning(
            "DATABASE_URL is memory://: each Gunicorn worker has users of its own; "
            "with more than one worker, set DATABASE_URL to a shared database"
        )
    app = build_app(settings)
    # /metrics for every worker of this Gunicorn, each labelled by its pid.
    directory = gunicorn_directory()
    if directory is not None:
        share(app, directory, str(os.getpid()), parent_is_gone)
    # Gunicorn passes the backlog (--backlog, 2048 by default) and signals; the runner is
    # returned so that svc's own options hold, not Gunicorn's graceful timeout.
    return BootRunner(app, **runner_options(settings))


async def _passwords_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    app[PASSWORDS].close()


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    storage = app[STORAGE]
    await open_with_retry(
        "DATABASE_URL", "the database", storage.open, storage.close, app[SETTINGS]
    )
    yield
    await storage.close()


async def _broker_ctx(app: web.Application) -> AsyncIterator[None]:
    broker, hub = app[BROKER], app[HUB]
    await open_with_retry(
        "BROKER_URL", "the broker", lambda: broker.open(hub), broker.close, app[SETTINGS]
    )
    hub.start()
    yield
    await hub.stop()
    await broker.close()


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all()  # 1001 Going Away


async def open_with_retry(
    variable: str,
    what: str,
    open_: Callable[[], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
    settings: Settings,
) -> None:
    """Open, retrying with backoff while it answers Unavailable.

    A PaaS may start svc before its database; past ``DATABASE_TIMEOUT``
    seconds start-up stops with one line naming ``variable``.  Misconfigured
    (bad credentials, no such database, no right to create tables) stops it at
    once, with the same one line.
    """
    timeout = settings.database_timeout
    deadline = time.monotonic() + timeout
    delay = 0.2
    # Whatever a plugin says, no secret of either URL reaches a log line.
    urls = (settings.database_url, settings.broker_url)
    while True:
        try:
            await open_()
            return
        except Misconfigured as exc:  # waiting will not help: one line, exit 2, now
            await close()
            raise SettingsError(variable, scrub(str(exc), *urls)) from None
        except Unavailable as exc:
            problem = scrub(str(exc), *urls)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await close()
                # Neutral on purpose: ``problem`` says whether it refused (a pooler that is
                # full, a port nobody listens on) or did not answer at all.
                raise SettingsError(
                    variable, f"{what} was still unavailable after {timeout:g} s: {problem}"
                ) from None
            wait = min(delay, remaining)
            log.warning("%s not ready (%s); retrying in %.1f s", what, problem, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, 5.0)
