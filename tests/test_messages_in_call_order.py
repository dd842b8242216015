"""``Broker.messages_in_call_order``: who may get concurrent ``publish_message`` calls.

A broker that says True gets each room message at once (the hub does not wait for the call
before); one that does not, a third party's written before the attribute, gets one call at
a time, as before.  The conformance kit checks a broker that says True.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from svc_memory import MemoryStorage

from svc.app import create_app
from svc.broker.memory import MemoryBroker
from svc.settings import Settings
from svc.testing import BrokerConformance, unique_id
from svc.testing.broker import Recorder


class AwaitsFirst(MemoryBroker):
    """A third party's broker whose ``publish_message`` awaits (a lookup, a connection
    from a pool) before it takes the message: concurrent calls would overtake each other.
    It says nothing of ``messages_in_call_order``."""

    def __init__(self, url: str):
        super().__init__(url)
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def publish_message(self, message):
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(random.uniform(0, 0.002))
            return await super().publish_message(message)
        finally:
            self.in_flight -= 1


class ClaimsButAwaitsFirst(AwaitsFirst):
    """Says ``messages_in_call_order`` and is wrong."""

    messages_in_call_order = True


class TakesAtOnce(MemoryBroker):
    """The memory broker takes a message before any await: saying so is true."""

    messages_in_call_order = True


class TestKitOnAnHonestClaim(BrokerConformance):
    """The whole kit passes on a broker that says True and keeps it (the kit's new check
    runs rather than skips)."""

    @pytest.fixture
    def make_broker(self):
        url = f"memory://{unique_id('bus')}"
        return lambda: TakesAtOnce(url)


async def test_the_kit_catches_a_broker_that_claims_call_order_and_awaits_first():
    url = f"memory://{unique_id('bus')}"
    opened = []

    async def open_broker(name="listener"):
        broker, recorder = ClaimsButAwaitsFirst(url), Recorder(name)
        await broker.open(recorder)
        opened.append(broker)
        return broker, recorder

    try:
        with pytest.raises(AssertionError, match="in the order of the calls"):
            await BrokerConformance().test_concurrent_messages_keep_their_call_order(open_broker)
    finally:
        for broker in opened:
            await broker.close()


async def _join(client, room: str, user: str):
    ws = await client.ws_connect(f"/ws/{room}?user_id={user}")
    assert (await ws.receive_json(timeout=10))["type"] == "welcome"
    return ws


async def _messages(ws, count: int) -> list[dict]:
    got = []
    while len(got) < count:
        frame = await ws.receive_json(timeout=10)
        if frame["type"] == "message":
            got.append(frame)
    return got


async def test_a_broker_that_does_not_say_so_gets_one_call_at_a_time(aiohttp_client):
    """Many senders at once on one app: its broker, which awaits before taking a message,
    never has two calls in flight, and the other app hears every sender's messages in the
    order sent, numbered as the first app's members heard them."""
    url = f"memory://{unique_id('bus')}"
    storage = MemoryStorage()
    settings = Settings(database_url="memory://", broker_url=url, bcrypt_rounds=4)
    brokers = [AwaitsFirst(url), AwaitsFirst(url)]
    here, there = [
        await aiohttp_client(create_app(settings, storage=storage, broker=broker))
        for broker in brokers
    ]
    room = unique_id("r")
    senders = [await _join(here, room, f"s{n}") for n in range(6)]
    listener_here = await _join(here, room, "r0")
    listener_there = await _join(there, room, "r1")
    await asyncio.sleep(0.2)  # the joins' presence frames go out (they are not messages)
    per_sender = 20
    for k in range(per_sender):
        for n, ws in enumerate(senders):
            await ws.send_json({"type": "message", "data": f"s{n}.{k}"})
    total = per_sender * len(senders)
    heard_here = await _messages(listener_here, total)
    heard_there = await _messages(listener_there, total)
    assert brokers[0].calls == total
    assert brokers[0].most_in_flight == 1, "publish_message was called again before it returned"
    for n in range(len(senders)):
        own = [f["data"] for f in heard_there if f["from"] == f"s{n}"]
        assert own == [f"s{n}.{k}" for k in range(per_sender)]
    assert [(f["seq"], f["data"]) for f in heard_there] == [
        (f["seq"], f["data"]) for f in heard_here
    ]
    for ws in (*senders, listener_here, listener_there):
        await ws.close()
