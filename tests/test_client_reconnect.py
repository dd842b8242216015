"""svc.client's ``Room`` across a real ``python -m svc`` that stops and starts again on the
same port: the room reconnects with backoff by itself, and, the in-process broker's history
gone with the process (a new epoch), its state is rebuilt from the new process's welcome
(people who joined or changed meanwhile are in it).  With the history in Redis, a room whose
process was killed resumes, on the restarted process or on another, with nothing missed."""

from __future__ import annotations

import asyncio

import pytest
from svc_process import SvcProcess

from svc.client import Backoff, Room, SvcClient
from svc.testing import unique_id, wait_until, within

QUICK = Backoff(initial=0.05, max=0.5)


@pytest.fixture
async def process(tmp_path):
    started = SvcProcess({"DATABASE_URL": "memory://"}, tmp_path / "svc.log")
    await started.start()
    yield started
    await started.stop()


async def test_a_room_reconnects_when_its_server_comes_back_on_the_same_port(process):
    room_id = unique_id("room")
    async with Room(process.base, room_id, user_id="watcher", backoff=QUICK) as room:
        first, epoch = room.connection_id, room.state.epoch
        assert epoch is not None
        assert await process.stop() == 0  # SIGTERM: svc closes every socket with 1001
        await wait_until(lambda: room.status == "reconnecting", timeout=10)
        tried = room.attempts
        await wait_until(lambda: room.attempts >= tried + 2, timeout=10)  # it keeps trying
        await process.start(attempts=1)  # the same port: the process is new, storage empty
        async with SvcClient(process.base) as api:
            await api.update_profile("newcomer", {"username": "newcomer"})
        async with Room(process.base, room_id, user_id="newcomer") as other:
            await wait_until(lambda: set(room.members) == {"watcher", "newcomer"}, timeout=10)
            assert room.welcomes == 2 and room.connection_id != first
            # the new process's history is another: not resumed, rebuilt from its welcome
            assert room.resumes == 0 and room.state.epoch not in (None, epoch)
            assert room.member_count == 2 and room.members["newcomer"]["version"] == 1
            await other.send("after the restart")
            message = await within(10, room.messages().__anext__())
            assert message["data"] == "after the restart"


async def test_a_server_that_never_answers_is_retried_until_closed(tmp_path):
    """A dead server is not a refusal: the room keeps trying, with growing waits, until the
    caller closes it (connect() bounded by the caller's timeout)."""
    from svc_process import free_port

    room = Room(f"http://127.0.0.1:{free_port()}", "lobby", backoff=QUICK)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(room.connect(), 1.5)
    assert room.attempts >= 3 and room.status in ("connecting", "reconnecting")
    assert room.error is None
    await room.close()
    assert room.status == "closed"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("back_on", ["the restarted process", "the other process"])
async def test_a_killed_process_s_room_resumes_from_redis_with_nothing_missed(
    tmp_path, postgres_url, redis_url, back_on
):
    """Two real processes share Postgres and Redis (which holds the rooms' history).  The
    room's process is killed (SIGKILL: no goodbye); ten messages go through the other one
    meanwhile; the room comes back, on its restarted process or on the other one, resumes
    and has every message once, in order."""
    env = {"DATABASE_URL": postgres_url, "BROKER_URL": redis_url}
    one = await SvcProcess(env, tmp_path / "one.log").start()
    two = await SvcProcess(env, tmp_path / "two.log").start()
    got: list = []
    room_id = unique_id("room")
    try:
        room = Room(one.base, room_id, user_id=unique_id(), backoff=QUICK)
        room.on_message = lambda message: got.append(message["data"])
        async with room, Room(two.base, room_id, user_id=unique_id()) as sender:
            await sender.send("before")
            await wait_until(lambda: got == ["before"], timeout=10)
            one.kill()
            await one.proc.wait()
            await wait_until(lambda: room.status == "reconnecting", timeout=10)
            for n in range(10):
                await sender.send(n)
            await asyncio.sleep(0.3)
            if back_on == "the other process":
                room.base_url = two.base  # as a balancer sends it to a live process
            else:
                await one.start(attempts=1)
            await wait_until(lambda: len(got) >= 11, timeout=20)
            await sender.send("after")
            await wait_until(lambda: got[-1:] == ["after"], timeout=10)
            assert got == ["before", *range(10), "after"]
            assert room.resumes == 1
    finally:
        await one.stop()
        await two.stop()
