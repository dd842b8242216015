"""svc.testing's helpers behave the same on every Python svc supports (nox: 3.10 and 3.13)."""

from __future__ import annotations

import asyncio

import pytest

from svc.testing import deadline, within


async def test_deadline_gives_up_with_timeout_error():
    with pytest.raises(TimeoutError):
        async with deadline(0.01):
            await asyncio.Event().wait()


async def test_deadline_lets_a_finished_block_through():
    async with deadline(10):
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # nothing left to cancel this task later


async def test_deadline_passes_on_a_cancellation_it_did_not_cause():
    entered = asyncio.Event()

    async def waits():
        async with deadline(10):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(waits())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_within_names_what_it_waited_for():
    with pytest.raises(AssertionError, match="gave up after"):
        await within(0.01, asyncio.Event().wait())
    assert await within(10, asyncio.sleep(0, "done")) == "done"
