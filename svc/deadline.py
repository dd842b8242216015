"""``async with deadline(seconds):`` on every Python svc supports.

``asyncio.timeout`` only exists from Python 3.11, and svc supports 3.10.  Used where svc
bounds a wait (the Postgres pool's queue) and by the tests (``svc.testing`` re-exports it).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """``async with deadline(s):`` raises TimeoutError if the block takes longer.

    ``asyncio.timeout`` on Python 3.11+; on 3.10 (which svc supports) the same
    thing by hand: cancel the task when time is up and turn that cancellation,
    and only that one, into TimeoutError.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):  # noqa: TID251 - guarded by the version
            yield
        return
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
