"""One heartbeat for all of a hub's sockets, instead of aiohttp's timer per socket.

aiohttp's ``WebSocketResponse(heartbeat=)`` keeps a timer handle per socket and
re-arms it (a ``call_soon``) on every frame received: ~400 B of an idle socket
and a timer per join (bench/memory_per_socket.py).  Here one task visits every
connection ``SWEEPS`` times per interval: a client quiet for ``heartbeat``
seconds gets a ping, one that leaves a ping unanswered for half of that is
dropped.  A dead peer is found within 1.75 intervals (aiohttp: 1.5).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hub import Hub

#: Visits per heartbeat interval: the precision of the ping and drop times.
SWEEPS = 4


async def beat_forever(hub: Hub) -> None:
    loop = asyncio.get_running_loop()
    while True:
        interval = hub.limits.heartbeat  # read each time: tests lower it on a live app
        await asyncio.sleep(interval / SWEEPS)
        now = loop.time()
        for conn in hub.connections():  # nothing here awaits, so nothing joins or leaves
            conn.check_alive(now, interval)
