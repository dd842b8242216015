"""Helpers the conformance suites (and svc's own tests) share."""

from __future__ import annotations

import asyncio
import uuid


def unique_id(prefix: str = "u") -> str:
    """An id (and username) no other test run uses."""
    return f"{prefix}{uuid.uuid4().hex[:20]}"


async def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> None:
    """Wait for ``predicate()`` to hold: change feeds may deliver asynchronously."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        await asyncio.sleep(interval)
