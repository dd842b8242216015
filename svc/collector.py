"""The collector of ``python -m svc``: full passes rare during a burst of sockets, and one
when a burst in which sockets left is over.

A full collection walks every live socket's objects: about 50 ms for 2,000 sockets and
350 ms for 10,000 here, and with Python's thresholds a crowd connecting at once set off
two of them per 2,000 joins.  So ``python -m svc`` collects the oldest generation less
often (:data:`GC_THRESHOLDS`, set at start-up).  Measured side by side (bench/README.md,
"House, second cut (issue 26): house-rules"): server CPU for 2,000 joins 0.70 s
[0.57-0.95] with these thresholds, 0.85 s [0.78-1.04] with Python's (x1.21).

Alone, rarer full passes leave the reference cycles of closed sockets (aiohttp's protocol,
transport, tasks) in the oldest generation: three rounds of 2,000 sockets joining and
leaving left the RSS 37, 62 and 86 MiB above its start, where Python's thresholds held it
at 36-37 MiB (bench/README.md, "The collector").  So when sockets left during a burst, the
burst's end runs one full collection: its cost comes once, when the burst is over
(``svc_gc_collections`` in /metrics).

A burst is over when no socket has opened or closed for ``QUIET`` seconds, after at
least ``BURST`` did since the last one.

(No ``malloc_trim`` after the collection any more, and no ``gc.freeze()`` at start-up:
re-measured against their removal, neither moved a bench figure by 5 %; bench/README.md.)
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from .keys import HUB

#: Seconds without a socket opening or closing: the burst is over.
QUIET = 1.0
#: Sockets opened or closed since the last burst, at least, for a burst to count.
BURST = 200
#: The collector's thresholds for ``python -m svc``: Python's (700, 10, 10), but the
#: oldest generation collected after 100 collections of the middle one, not 10.  Python's
#: own rule still holds too: a full collection only once the objects that survived into
#: the oldest generation since the last one grow it by a quarter.
GC_THRESHOLDS = (700, 10, 100)


async def collect_after_bursts(
    churn: Callable[[], int],
    left: Callable[[], int],
    collect: Callable[[], object] = gc.collect,
) -> None:
    """Once each burst of ``churn()`` (sockets opened plus closed, ever) is over: a full
    ``collect()`` if ``left()`` (sockets closed, ever) moved."""
    counted_at = seen = churn()
    collected_at = left()
    while True:
        await asyncio.sleep(QUIET)
        now = churn()
        if now != seen:  # still moving
            seen = now
            continue
        if now - counted_at >= BURST:
            counted_at = now
            if left() != collected_at:
                collected_at = left()
                collect()  # on the loop: a collection holds the GIL throughout anyway


async def collector_ctx(app: web.Application) -> AsyncIterator[None]:
    """``python -m svc``'s (not the tests' apps: one collector per process): the
    collector's thresholds, and the task that collects after bursts."""
    gc.set_threshold(*GC_THRESHOLDS)
    stats = app[HUB].stats
    task = asyncio.create_task(
        collect_after_bursts(lambda: stats.churn, lambda: stats.left), name="svc-collector"
    )
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
