"""Helpers the conformance suites (and svc's own tests) share."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest


def unique_id(prefix: str = "u") -> str:
    """An id (and username) no other test run uses."""
    return f"{prefix}{uuid.uuid4().hex[:20]}"


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01
) -> Any:
    """Wait for ``predicate()`` to hold (change feeds may deliver asynchronously) and return
    what it returned.  ``predicate`` may be a coroutine function (a check that makes a
    request, reads a database...): its result is awaited each time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        await asyncio.sleep(interval)


async def within(seconds: float, awaitable: Awaitable[Any]) -> Any:
    """``await awaitable``, failing the test after ``seconds``.

    ``asyncio.timeout`` only exists from Python 3.11; svc supports 3.10, and this
    reads the same on both.
    """
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"gave up after {seconds} s waiting for {awaitable!r}") from None


@contextmanager
def raises(exc_type: type[BaseException], rule: str):
    """Like ``pytest.raises``, but a failure names the rule the backend broke.

    Yields a list that holds the exception once it is caught, for further checks.
    """
    caught: list[BaseException] = []
    try:
        yield caught
    except exc_type as exc:
        caught.append(exc)
    except Exception as exc:
        pytest.fail(f"rule: {rule} (expected {exc_type.__name__}, got {type(exc).__name__}: {exc})")
    else:
        pytest.fail(f"rule: {rule} (expected {exc_type.__name__}, nothing was raised)")


@asynccontextmanager
async def reopener(make: Callable[[], Any]) -> AsyncIterator[Callable[[Any], Awaitable[Any]]]:
    """Build the ``reopen`` fixture of :class:`~svc.testing.StorageConformance`.

    ``make()`` returns a new, unopened backend on the same URL as the ``storage``
    fixture's.  Yields ``reopen(backend)``: closes ``backend``, opens a new one and
    returns it.  Every backend opened this way is closed on the way out::

        @pytest.fixture
        async def reopen(self, tmp_path):
            async with reopener(lambda: MyStorage(f"my://{tmp_path}/db")) as reopen:
                yield reopen
    """
    opened: list[Any] = []

    async def reopen(backend: Any) -> Any:
        await backend.close()
        again = make()
        await again.open()
        opened.append(again)
        return again

    try:
        yield reopen
    finally:
        for backend in opened:
            await backend.close()
