"""After a burst of joins or leaves: collect what the closed sockets left, then give the
freed heap back to the operating system.

A burst of sockets (every client of a deploy reconnecting at once) allocates far more
than stays: request objects, welcomes, presence frames, write buffers.  glibc's malloc
keeps what is freed, and by itself returns only the top of its heap: what was freed
between the sockets that stay is still counted in the process's RSS, for as long as the
process lives.  Once a burst is over, svc asks malloc to return its free pages
(``malloc_trim(0)``), in a thread: ctypes releases the GIL, so the event loop goes on.
The trim holds malloc's lock while it walks the heap (63 ms for a 1.8 GB heap here);
Python's small objects come from its own allocator and do not wait for it.

A closed socket leaves reference cycles (aiohttp's protocol, transport, tasks) that only
the collector frees, and by the time they are garbage they sit in its oldest generation.
``python -m svc`` runs that generation's collections less often than Python's default
(:data:`GC_THRESHOLDS`, set at start-up): each walks every live socket's objects, about
50 ms for 2,000 sockets and 350 ms for 10,000 here, and a crowd connecting at once set
off two of them per 2,000 joins.  So when sockets left during a burst, the burst's end
runs one full collection before the trim: its cost comes once, when the burst is over,
and the heap of the sockets that left goes back (``svc_gc_collections`` in /metrics).

Measured (bench/README.md, "Where each target stands"): after 2,000 joins, RSS per idle
socket 18.6–19.8 KB without the trim, 16.5 KB with it; bare aiohttp's 14.1 KB either way.

A burst is over when no socket has opened or closed for ``QUIET`` seconds, after at
least ``BURST`` did since the last trim.  Where the C library has no ``malloc_trim``
(musl, macOS), there is no trim, and the collection still runs.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from .keys import HUB

log = logging.getLogger(__name__)

#: Seconds without a socket opening or closing: the burst is over.
QUIET = 1.0
#: Sockets opened or closed since the last trim, at least, for a trim to be worth it.
BURST = 200
#: The collector's thresholds for ``python -m svc``: Python's (700, 10, 10), but the
#: oldest generation collected after 100 collections of the middle one, not 10.  Python's
#: own rule still holds too: a full collection only once the objects that survived into
#: the oldest generation since the last one grow it by a quarter.
GC_THRESHOLDS = (700, 10, 100)


def _find_malloc_trim() -> Callable[[int], int] | None:
    # The process's own symbols, the C library's among them: no ctypes.util.find_library,
    # which runs ldconfig (or a compiler) at start-up to name the library.
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None


async def trim_after_bursts(
    churn: Callable[[], int],
    trim: Callable[[int], int] | None,
    left: Callable[[], int],
    collect: Callable[[], object] = gc.collect,
) -> None:
    """Once each burst of ``churn()`` (sockets opened plus closed, ever) is over: a full
    ``collect()`` if ``left()`` (sockets closed, ever) moved, then ``trim`` (if any)."""
    loop = asyncio.get_running_loop()
    trimmed_at = seen = churn()
    collected_at = left()
    while True:
        await asyncio.sleep(QUIET)
        now = churn()
        if now != seen:  # still moving
            seen = now
            continue
        if now - trimmed_at >= BURST:
            trimmed_at = now
            if left() != collected_at:
                collected_at = left()
                collect()  # on the loop: a collection holds the GIL throughout anyway
            if trim is not None:
                await loop.run_in_executor(None, trim, 0)


async def heap_trim_ctx(app: web.Application) -> AsyncIterator[None]:
    """``python -m svc``'s (not the tests' apps: one heap, one collector and one trimmer
    per process): the collector's thresholds, and the task that collects and trims."""
    trim = _find_malloc_trim()
    if trim is None:
        log.debug("no malloc_trim in the C library: freed heap is not given back")
    gc.set_threshold(*GC_THRESHOLDS)
    stats = app[HUB].stats
    task = asyncio.create_task(
        trim_after_bursts(lambda: stats.churn, trim, lambda: stats.left), name="svc-heap-trim"
    )
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
