"""``async with deadline(seconds):`` on every Python svc supports.

``asyncio.timeout`` only exists from Python 3.11, and svc supports 3.10.  Used where svc
bounds a wait (the Postgres pool's queue) and by the tests (``svc.testing`` re-exports it).

Public API (docs/plugins.md): plugins may import :func:`deadline`, as the built-in
Postgres plugin does; its name and meaning are kept.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

if sys.version_info >= (3, 11):
    #: ``asyncio.timeout`` itself, not wrapped: the Postgres pool enters it for every request
    #: that queues for a connection, and a wrapping generator was 2-3 % of svc's CPU on PUT.
    deadline = asyncio.timeout  # noqa: TID251 - 3.11+ only, checked above

else:

    @asynccontextmanager
    async def deadline(seconds: float) -> AsyncIterator[None]:
        """``async with deadline(s):`` raises TimeoutError if the block takes longer:
        ``asyncio.timeout`` by hand.  Cancel the task when time is up and turn that
        cancellation, and only that one, into TimeoutError."""
        task = asyncio.current_task()
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = asyncio.get_running_loop().call_later(seconds, expire)
        try:
            yield
        except asyncio.CancelledError:
            if fired:
                raise TimeoutError(f"gave up after {seconds} s") from None
            raise
        finally:
            handle.cancel()
