"""``create_app(settings)``: the one aiohttp application.

Resources are opened through ``cleanup_ctx`` in dependency order (password
pool, storage, then the rooms hub that listens to storage) and closed in the
reverse order.  ``on_shutdown`` runs before any of that: every WebSocket gets
its 1001 while storage is still there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from . import auth, cors, health, members, openapi, users, ws
from .errors import error_middleware
from .keys import HUB, PASSWORDS, SETTINGS, STORAGE
from .passwords import Passwords
from .rooms import Hub
from .settings import Settings, SettingsError
from .storage import Storage, Unavailable
from .storage.registry import get_plugin

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, storage: Storage | None = None) -> web.Application:
    """The application.  ``storage`` overrides the one ``settings.database_url`` names
    (tests use it to share one backend between several apps)."""
    settings = settings or Settings()
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[STORAGE] = storage or get_plugin(settings.database_url)(settings.database_url)
    app[PASSWORDS] = Passwords(settings.bcrypt_rounds)
    app.cleanup_ctx.append(_passwords_ctx)
    app.cleanup_ctx.append(_storage_ctx)
    app[HUB] = Hub(app[STORAGE])
    app.cleanup_ctx.append(_hub_ctx)  # after storage: it listens to storage's feeds
    app.on_shutdown.append(_close_sockets)  # shutdown runs before any cleanup closes storage
    health.setup_routes(app)
    users.setup_routes(app)
    auth.setup_routes(app)
    ws.setup_routes(app)
    members.setup_routes(app)
    openapi.setup(app, settings)  # after every route: it documents what is routed
    cors.setup(app, settings)  # last: it adds a preflight route to every route above
    return app


async def _passwords_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    app[PASSWORDS].close()


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    storage = app[STORAGE]
    await open_with_retry(storage, app[SETTINGS].database_timeout)
    yield
    await storage.close()


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    app[HUB].start()
    yield
    await app[HUB].stop()


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all()  # 1001 Going Away


async def open_with_retry(storage: Storage, timeout: float) -> None:
    """Open storage, retrying with backoff while it answers Unavailable.

    A PaaS may start svc before its database; past ``timeout`` seconds start-up
    stops with one line naming DATABASE_URL.
    """
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            await storage.open()
            return
        except Unavailable as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await storage.close()
                raise SettingsError(
                    "DATABASE_URL", f"the database did not answer within {timeout:g} s ({exc})"
                ) from None
            log.warning("storage not ready (%s); retrying in %.1f s", exc, min(delay, remaining))
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 5.0)
