"""The event loop ``python -m svc`` runs on: uvloop, unless ``EVENT_LOOP=asyncio``.

uvloop (libuv's loop, in Cython) serves aiohttp's requests for less CPU: GET on memory took
0.86-0.93x the CPU per request of asyncio's loop, side by side (bench/README.md, "uvloop").  Every
built-in storage and broker runs on it: memory; Postgres (aiopg, with the fix for a
reconnect after a refused connect, plugins/svc_postgres/connection.py); Redis (redis-py's
asyncio client, plain transports); SQLite (aiosqlite: a thread per connection, its results
handed back with ``call_soon_threadsafe``).  A third party's plugin that does not can be run
with ``EVENT_LOOP=asyncio``.

It is installed as the event loop *policy*, so every loop the process makes is one (aiohttp's
``run_app`` makes its own), and is said in one log line at start.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("svc")

#: ``EVENT_LOOP``'s values, the default first.
EVENT_LOOPS = ("uvloop", "asyncio")


def loop_class(name: str) -> type[asyncio.AbstractEventLoop]:
    """The class of ``name``'s loop (one of EVENT_LOOPS), for a loop made by hand
    (svc.connections.gated_loop)."""
    if name == "uvloop":
        import uvloop

        return uvloop.Loop
    return asyncio.SelectorEventLoop


def install_event_loop(name: str) -> None:
    """Make the loops this process creates from now on ``name``'s (one of EVENT_LOOPS)."""
    if name == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        log.info("event loop: uvloop %s", uvloop.__version__)
    else:
        asyncio.set_event_loop_policy(None)  # the standard one
        log.info("event loop: asyncio (EVENT_LOOP=asyncio)")
