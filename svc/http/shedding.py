"""Answering a client that is being refused (503 busy, 429) a little later.

A refusal costs about what a ``GET /`` costs, so a client that ignores
``Retry-After`` and re-sends at once (50 requests in flight, thousands a
second) keeps the event loop busy with refusals alone, and every other request
waits behind them.  Holding each refusal for :data:`DELAY` seconds caps such a
client at ``in_flight / DELAY`` requests a second, for the price of a sleeping
coroutine.  At most :data:`MAX_HELD` refusals are held at once (a bound on what
an attacker with many connections can make us keep); past that they go out at
once.  A client that honours ``Retry-After`` never notices: it was going to
wait at least a second anyway.
"""

from __future__ import annotations

import asyncio

DELAY = 0.5
MAX_HELD = 1000

_held = 0


async def hold_refusal() -> None:
    global _held
    if _held >= MAX_HELD:
        return
    _held += 1
    try:
        await asyncio.sleep(DELAY)
    finally:
        _held -= 1
