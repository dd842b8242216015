"""Does ``LISTEN`` deliver through this URL?  A message to itself says.

Through a transaction pooler (PgBouncer, Supavisor) a ``LISTEN`` is made on whichever
server connection ran it, which then serves other clients: a notification reaches that
server connection while no client is linked to it, and the pooler drops it (PgBouncer logs
``got packet 'A' from server when not linked``).  Nothing fails: the listener just never
hears anything.  So the broker proves delivery before relying on it: a connection of its
own listens on a channel nobody else uses, another connection notifies it, and the
notification must arrive within a few seconds (milliseconds, directly).

:func:`delivers` is the whole check: any holder of a listening connection can call it
(the broker at start; a periodic check of a live listener the same way).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import aiopg

#: Seconds a notification may take to come back before LISTEN is declared not to work.
TIMEOUT = 5.0
#: Prefix of the check's own channels (each check a fresh one: a late answer of an earlier
#: check cannot pass for this one's).
CHANNEL_PREFIX = "svc_listen_check_"


async def delivers(
    listening: aiopg.Connection,
    notify: Callable[[str, tuple], Awaitable[object]],
    timeout: float = TIMEOUT,
) -> bool:
    """Listen on a fresh channel on ``listening``, send it a notification through ``notify``
    (runs one statement on *another* connection: on the same one, a pooler would hand the
    answer back with the statement that caused it), and say whether it arrived within
    ``timeout`` seconds.  ``listening`` must be a connection whose notifications nobody
    else reads meanwhile (the check consumes them); the channel is unlistened before
    returning, whatever the outcome."""
    token = secrets.token_hex(8)
    channel = CHANNEL_PREFIX + token
    async with listening.cursor(timeout=timeout) as cur:
        await cur.execute(f"LISTEN {channel}")
    try:
        await notify("SELECT pg_notify(%s, %s)", (channel, token))
        return await _heard(listening.notifies, channel, token, timeout)
    finally:
        if not listening.closed:
            async with listening.cursor(timeout=timeout) as cur:
                await cur.execute(f"UNLISTEN {channel}")


async def _heard(notifies, channel: str, token: str, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:  # bounded by the deadline
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            notice = await asyncio.wait_for(notifies.get(), remaining)
        except asyncio.TimeoutError:
            return False
        if notice.channel == channel and notice.payload == token:
            return True
