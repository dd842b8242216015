"""The pub/sub brokers' ordered batcher (svc/broker/pubsub.py), on its own: one write in
flight, the rest batched behind it, each caller answered with its own result.  The
statements it carries are tested against the real server by the broker's conformance
suite and tests/test_postgres_feed.py."""

from __future__ import annotations

import asyncio

import pytest

from svc.broker.pubsub import OneInFlight


class Recorder:
    """A write that waits until released, so callers can pile up behind it."""

    def __init__(self, fail_on: str | None = None):
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self._fail_on = fail_on

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        await self.release.wait()
        if self._fail_on in items:
            raise RuntimeError(f"cannot write {self._fail_on}")
        return [item.upper() for item in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_items_handed_over_meanwhile_go_together_in_order_each_with_its_result():
    write = Recorder()
    batcher = OneInFlight(write, "test")
    first = asyncio.ensure_future(batcher.add("a"))
    await _settle()  # "a" is in flight alone
    rest = [asyncio.ensure_future(batcher.add(item)) for item in "bcd"]
    await _settle()
    write.release.set()
    assert await asyncio.gather(first, *rest) == ["A", "B", "C", "D"]
    assert write.batches == [["a"], ["b", "c", "d"]]


async def test_most_caps_a_batch():
    write = Recorder()
    batcher = OneInFlight(write, "test", most=2)
    calls = [asyncio.ensure_future(batcher.add(item)) for item in "abcde"]
    await _settle()
    write.release.set()
    assert await asyncio.gather(*calls) == list("ABCDE")
    assert write.batches == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_failed_write_fails_its_batch_only():
    write = Recorder(fail_on="b")
    batcher = OneInFlight(write, "test")
    first = asyncio.ensure_future(batcher.add("a"))
    await _settle()
    failing = [asyncio.ensure_future(batcher.add(item)) for item in "bc"]
    await _settle()
    write.release.set()
    assert await first == "A"
    for call in failing:
        with pytest.raises(RuntimeError, match="cannot write b"):
            await call
    assert await batcher.add("d") == "D"  # the batcher goes on


async def test_a_caller_that_gives_up_does_not_cancel_the_others():
    write = Recorder()
    batcher = OneInFlight(write, "test")
    impatient = asyncio.ensure_future(batcher.add("a"))
    patient = asyncio.ensure_future(batcher.add("b"))
    await _settle()
    impatient.cancel()
    await _settle()
    write.release.set()
    assert await patient == "B"
    assert write.batches == [["a", "b"]]


async def test_results_none_answers_every_caller_none_and_drain_waits_for_the_writes():
    written: list[list[str]] = []

    async def write(items: list[str]) -> None:
        await asyncio.sleep(0.01)
        written.append(list(items))

    batcher = OneInFlight(write, "test")
    calls = [asyncio.ensure_future(batcher.add(item)) for item in "ab"]
    await _settle()
    await batcher.drain()
    assert written == [["a", "b"]]
    assert await asyncio.gather(*calls) == [None, None]
