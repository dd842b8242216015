"""A message the broker fails to number is still heard on its sender's process, and not
before that sender's earlier messages, numbered but waiting there for another process's
event (svc/rooms/sequence.py, ``Sequence.then``)."""

from __future__ import annotations

import asyncio

from svc_memory import MemoryStorage

from svc.app import create_app
from svc.broker import BrokerUnavailable
from svc.broker.memory import MemoryBroker
from svc.settings import Settings
from svc.testing import unique_id

#: How late this process hears the others' messages: under Sequence's GAP_WAIT (1 s), so
#: its own numbered message waits for them rather than giving up on them.
LATE = 0.4


class _HearsLate:
    """A listener's stand-in that hands over the other processes' messages LATE s late."""

    def __init__(self, listener):
        self._listener = listener

    def __getattr__(self, name):
        return getattr(self._listener, name)

    def on_message(self, message) -> None:
        asyncio.get_running_loop().call_later(LATE, self._listener.on_message, message)


class HearsLateAndFails(MemoryBroker):
    """A broker on a slow channel (the others' messages arrive late) that fails to take a
    message whose data says "fail"."""

    async def open(self, listener) -> None:
        await super().open(_HearsLate(listener))

    async def publish_message(self, message):
        if "fail" in message.data:
            raise BrokerUnavailable("the test fails this one")
        return await super().publish_message(message)


async def _join(client, room: str, user: str):
    ws = await client.ws_connect(f"/ws/{room}?user_id={user}")
    assert (await ws.receive_json(timeout=10))["type"] == "welcome"
    return ws


async def _message(ws) -> dict:
    while True:
        frame = await ws.receive_json(timeout=10)
        if frame["type"] == "message":
            return frame


async def test_an_unnumbered_message_waits_for_the_senders_earlier_ones(aiohttp_client):
    url = f"memory://{unique_id('bus')}"
    storage = MemoryStorage()
    settings = Settings(database_url="memory://", broker_url=url, bcrypt_rounds=4)
    here, there = [
        await aiohttp_client(create_app(settings, storage=storage, broker=broker))
        for broker in (HearsLateAndFails(url), MemoryBroker(url))
    ]
    room = unique_id("r")
    alice, listener = await _join(here, room, "alice"), await _join(here, room, "listener")
    bob, witness = await _join(there, room, "bob"), await _join(there, room, "witness")
    await asyncio.sleep(0.2)  # the joins' presence frames go by
    await bob.send_json({"type": "message", "data": "from bob"})
    numbered = await _message(witness)  # numbered: here hears it LATE s from now
    await alice.send_json({"type": "message", "data": "first"})  # numbered after bob's
    assert (await _message(witness))["data"] == "first"  # numbered; here it waits for bob's
    await alice.send_json({"type": "message", "data": "fail"})  # the broker fails it
    heard = [await _message(listener) for _ in range(3)]
    assert [(f["from"], f["data"]) for f in heard] == [
        ("bob", "from bob"),
        ("alice", "first"),
        ("alice", "fail"),
    ]
    assert [f.get("seq") for f in heard] == [numbered["seq"], numbered["seq"] + 1, None]
    for ws in (alice, listener, bob, witness):
        await ws.close()
