"""svc.broker.probe on its own: the rule every broker's receiving connection follows, with an
in-process transport that the test can make mute (the brokers' real connections:
test_broker_probe.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from svc.broker.probe import DeliveryProbe
from svc.storage import Unavailable
from svc.testing import wait_until


class Loopback:
    """Hands every token back at once, unless mute; counts re-opens."""

    def __init__(self):
        self.mute = False
        self.unsendable = False
        self.reopened = 0
        self.probe: DeliveryProbe | None = None

    async def send(self, token: str) -> None:
        if self.unsendable:
            raise ConnectionError("the server is down")
        if not self.mute:
            asyncio.get_running_loop().call_soon(self.probe.heard, token)

    def reopen(self) -> None:
        self.reopened += 1


def probe_on(loop: Loopback, every: float = 0.1) -> DeliveryProbe:
    loop.probe = DeliveryProbe("test: receiver", loop.send, loop.reopen, lambda: True, every)
    return loop.probe


async def test_a_mute_receiver_is_refused_at_start():
    loop = Loopback()
    loop.mute = True
    with pytest.raises(Unavailable, match="not delivering: no echo in 0.1 s"):
        await probe_on(loop).start()


async def test_one_line_per_episode_a_reopen_per_failed_proof_and_one_line_back(caplog):
    caplog.set_level(logging.INFO, logger="svc.broker.probe")
    loop = Loopback()
    probe = probe_on(loop)
    await probe.start()
    try:
        probe.check()  # delivering: no complaint
        loop.mute = True
        await wait_until(lambda: loop.reopened >= 3, timeout=5)
        with pytest.raises(Unavailable, match="not delivering"):
            probe.check()
        assert probe.stalls == 1
        loop.mute = False
        probe.kick()
        await wait_until(lambda: probe.problem is None, timeout=5)
        probe.check()
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [
            "test: receiver is not delivering: no echo in 0.1 s; re-opening it",
            "test: receiver delivers again",
        ]
    finally:
        await probe.stop()


async def test_a_token_that_cannot_be_sent_proves_nothing():
    loop = Loopback()
    probe = probe_on(loop)
    await probe.start()
    try:
        loop.unsendable = True
        await asyncio.sleep(0.5)  # several rounds, none of them a verdict
        assert loop.reopened == 0 and probe.problem is None
    finally:
        await probe.stop()
