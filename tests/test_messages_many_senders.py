"""Many members sending at once, on two real ``python -m svc`` processes sharing a broker
(Postgres, Redis): every process hears a room's messages in one order, the broker's numbers;
a sender's own messages keep their order; a burst is handed to the broker in batches; and
when the broker fails a batch, the members on the senders' process still hear each of its
messages once, and no process hears one twice."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import aiopg
import pytest
from svc_process import SvcProcess

from svc.testing import unique_id

pytestmark = pytest.mark.postgres

SENDERS = 8  # on each process
PER_SENDER = 40  # within the frame burst (100): the rate limit refuses none


@pytest.fixture(params=["postgres", "redis"])
async def two_processes(request, postgres_url, tmp_path):
    env = {"DATABASE_URL": postgres_url}
    if request.param == "redis":
        request.applymarker(pytest.mark.redis)
        env["BROKER_URL"] = request.getfixturevalue("redis_url")
    started = [await SvcProcess(env, tmp_path / f"svc{n}.log").start() for n in (1, 2)]
    yield request.param, started
    for svc in started:
        await svc.stop()


async def _join(http, base: str, room: str, user: str):
    ws = await http.ws_connect(f"{base}/ws/{room}?user_id={user}")
    welcome = await ws.receive_json(timeout=10)
    assert welcome["type"] == "welcome"
    return ws


async def _drain(ws) -> None:
    """A sender reads what it is sent (else it would end as a slow consumer)."""
    async for _ in ws:
        pass


async def _messages(ws, count: int, timeout: float = 20) -> list[dict]:
    """The next ``count`` message frames, and any more that arrive within a short while
    after them (a duplicate would)."""
    got: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        wait = deadline - loop.time() if len(got) < count else 0.5
        try:
            frame = await ws.receive_json(timeout=max(wait, 0.01))
        except asyncio.TimeoutError:
            if len(got) < count:
                raise AssertionError(f"{len(got)} of {count} messages heard") from None
            return got
        if frame["type"] == "message":
            got.append(frame)


async def _metric(http, base: str, name: str) -> float:
    text = await (await http.get(f"{base}/metrics")).text()
    for line in text.splitlines():
        if line.startswith((name + " ", name + "_total ")):  # a counter ends in _total
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _each_in_order(frames: list[dict], senders: list[str], per_sender: int) -> None:
    for sender in senders:
        own = [f["data"]["k"] for f in frames if f["from"] == sender]
        assert own == list(range(per_sender)), f"{sender}'s messages out of order: {own}"


async def test_many_senders_on_two_processes_one_order_everywhere(two_processes):
    kind, (one, two) = two_processes
    room = unique_id("r")
    async with aiohttp.ClientSession() as http:
        listeners = [await _join(http, svc.base, room, f"r{n}") for n, svc in enumerate((one, two))]
        names = [f"a{n}" for n in range(SENDERS)] + [f"b{n}" for n in range(SENDERS)]
        senders = [
            await _join(http, (one if name[0] == "a" else two).base, room, name) for name in names
        ]
        drains = [asyncio.ensure_future(_drain(ws)) for ws in senders]
        await asyncio.sleep(0.5)  # the joins' presence frames go by
        before = await _metric(http, one.base, _batches(kind))
        for k in range(PER_SENDER):  # both processes' senders at once, interleaved
            for ws in senders:
                await ws.send_str(json.dumps({"type": "message", "data": {"k": k}}))
        total = PER_SENDER * len(names)
        heard = [await _messages(ws, total) for ws in listeners]
        assert len(heard[0]) == len(heard[1]) == total, "a message was heard twice"
        # One order on both processes: the broker's numbers, without a gap.
        orders = [[(f["seq"], f["from"], f["data"]["k"]) for f in frames] for frames in heard]
        assert orders[0] == orders[1]
        seqs = [seq for seq, _, _ in orders[0]]
        assert seqs == list(range(seqs[0], seqs[0] + total))
        _each_in_order(heard[0], names, PER_SENDER)
        # The senders' process handed its burst to the broker in batches, not one a trip.
        batches = await _metric(http, one.base, _batches(kind)) - before
        assert batches < PER_SENDER * SENDERS / 2, f"{batches} batches for the burst"
        for task in drains:
            task.cancel()
        for ws in (*listeners, *senders):
            await ws.close()


def _batches(kind: str) -> str:
    """The metric counting the broker's write batches (statements, pipelines)."""
    if kind == "postgres":
        return "svc_broker_notify_statements"
    return "svc_broker_redis_publish_batches"


FAIL_ON = "boom-{room}"
TRIGGER = """
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.payload LIKE '%{marker}%' THEN
        RAISE EXCEPTION 'the test fails this batch';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER {name} BEFORE INSERT ON svc_room_events
    FOR EACH ROW EXECUTE FUNCTION {name}();
"""


@pytest.fixture
async def on_postgres(postgres_url, tmp_path):
    """Two processes on the Postgres broker."""
    env = {"DATABASE_URL": postgres_url}
    started = [await SvcProcess(env, tmp_path / f"svc{n}.log").start() for n in (1, 2)]
    yield started
    for svc in started:
        await svc.stop()


async def test_a_batch_the_broker_fails_is_heard_here_once_and_nowhere_twice(
    on_postgres, postgres_url
):
    """The Postgres broker fails the statement carrying one marked message (a trigger of
    the test's on the room history raises), with whatever else shares its batch: the members
    on the senders' process hear every message once (those of the failed batch unnumbered),
    each sender's in order; the other process hears the rest, once each, in the same order."""
    one, two = on_postgres
    room = unique_id("r")
    name = f"fail_{unique_id('t').replace('-', '_')}"
    marker = FAIL_ON.format(room=room)
    async with aiopg.connect(postgres_url) as admin, admin.cursor() as cur:
        await cur.execute(TRIGGER.format(name=name, marker=marker))
        try:
            async with aiohttp.ClientSession() as http:
                await _burst_with_a_failure(http, one, two, room, marker)
        finally:
            await cur.execute(f"DROP TRIGGER {name} ON svc_room_events; DROP FUNCTION {name}()")


async def _burst_with_a_failure(http, one, two, room: str, marker: str) -> None:
    here = await _join(http, one.base, room, "r0")
    there = await _join(http, two.base, room, "r1")
    names = [f"s{n}" for n in range(SENDERS)]
    senders = [await _join(http, one.base, room, name) for name in names]
    drains = [asyncio.ensure_future(_drain(ws)) for ws in senders]
    await asyncio.sleep(0.5)
    errors = await _metric(http, one.base, "svc_broker_errors")
    for k in range(PER_SENDER):
        for n, ws in enumerate(senders):
            data = {"k": k}
            if k == PER_SENDER // 2 and n == 0:
                data["marker"] = marker
            await ws.send_str(json.dumps({"type": "message", "data": data}))
    total = PER_SENDER * SENDERS
    heard_here = await _messages(here, total)
    failed = int(await _metric(http, one.base, "svc_broker_errors") - errors)
    assert failed >= 1, "the marked message's batch did not fail"
    # The marked message shared its statement: the burst went to the broker in batches.
    assert failed > 1, "the failed batch carried the marked message alone"
    heard_there = await _messages(there, total - failed)
    # Here: every message once, each sender's in order; the failed ones without a seq.
    assert len(heard_here) == total
    _each_in_order(heard_here, names, PER_SENDER)
    unnumbered = [f for f in heard_here if "seq" not in f]
    assert len(unnumbered) == failed
    assert any(f["data"].get("marker") == marker for f in unnumbered)
    # There: the numbered ones, once each, in the same order as here.
    numbered = [(f["seq"], f["from"], f["data"]["k"]) for f in heard_here if "seq" in f]
    assert [(f["seq"], f["from"], f["data"]["k"]) for f in heard_there] == numbered
    for task in drains:
        task.cancel()
    for ws in (here, there, *senders):
        await ws.close()
