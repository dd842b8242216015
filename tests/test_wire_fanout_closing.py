"""Sockets closed in the middle of a fan-out, over real sockets (svc/rooms/frames.py's rule 3).

A real ``python -m svc`` has 200 members in one room, each a minimal RFC 6455 client (the
style of bench/load.py) that checks every byte it is sent: whole, unmasked, uncompressed
frames, strict JSON, nothing after the server's Close.  One member's profile is updated
again and again; while those frames fan out, half the clients vanish (transport aborted,
some with a TCP reset) and some close cleanly.  The server must stay healthy, the others
must get every version in order, and the closed ones must be gone from the room.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct

import aiohttp
import pytest
from svc_process import SvcProcess

from svc.rooms import frames as wire
from svc.testing import deadline, unique_id

MEMBERS = 200
UPDATES = 160  # the closes take longer than 80 writes where presence cuts in (resume)
#: Members 1..ABORTED vanish; the next CLEAN close properly; the rest (and member 0,
#: the one whose profile changes) stay.
ABORTED = 100
CLEAN = 20
WAIT = 60.0

USER_KEYS = {"id", "user_id", "profile", "version", "created_at", "updated_at"}
FRAME_KEYS = {
    "welcome": {"type", "room", "connection_id", "member_count", "members"},
    "presence": {"type", "room", "joined", "left", "member_count"},
    "profile_updated": {"type", "room"} | USER_KEYS,
}


def _strict(constant: str):
    raise ValueError(f"{constant} in a frame: not strict JSON")


class Member:
    """One raw WebSocket client that records every frame and every protocol problem."""

    def __init__(self, user_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.user_id = user_id
        self.reader, self.writer = reader, writer
        self.frames: list[dict] = []
        self.problems: list[str] = []
        self.close_code: int | None = None
        self.after_close: bytes | None = None  # what followed the server's Close (must be b"")
        self.changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    @classmethod
    async def join(cls, host: str, port: int, room: str, user_id: str) -> Member:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws/{room}?user_id={user_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert b"sec-websocket-extensions" not in head.lower()  # rule 1: no compression
        member = cls(user_id, reader, writer)
        member._task = asyncio.ensure_future(member._read())
        return member

    async def _read(self) -> None:
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                if first & 0x70 or second & 0x80:
                    self.problems.append(f"RSV bits or a mask in {first:#x} {second:#x}")
                    return
                size = second & 0x7F
                if size == 126:
                    size = struct.unpack("!H", await self.reader.readexactly(2))[0]
                elif size == 127:
                    size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                payload = await self.reader.readexactly(size)
                if first == 0x88:  # Close: then the server may send nothing more
                    self.close_code = struct.unpack("!H", payload[:2])[0] if payload else None
                    self.after_close = await self.reader.read()
                    return
                if first == 0x89:  # the heartbeat's ping: a control frame between frames
                    continue
                if first != 0x81:
                    self.problems.append(f"unexpected frame header {first:#x}")
                    return
                self._text(payload)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                self.problems.append(f"the connection ended inside a frame: {exc.partial[:40]!r}")
        except ConnectionError:
            pass

    def _text(self, payload: bytes) -> None:
        try:
            frame = json.loads(payload, parse_constant=_strict)
        except ValueError as exc:
            self.problems.append(f"not a JSON frame ({exc}): {payload[:80]!r}")
            return
        expected = FRAME_KEYS.get(frame.get("type"))
        # seq (and the welcome's epoch): where the broker numbers room events
        if expected is None or set(frame) - {"seq", "epoch"} != expected:
            self.problems.append(f"unexpected frame: {payload[:200]!r}")
            return
        self.frames.append(frame)
        self.changed.set()

    def versions(self, user_id: str) -> list[int]:
        return [
            f["version"]
            for f in self.frames
            if f["type"] == "profile_updated" and f["id"] == user_id
        ]

    def left(self) -> set[str]:
        return {u for f in self.frames if f["type"] == "presence" for u in f["left"]}

    async def wait_for(self, condition) -> None:
        async with deadline(WAIT):
            while not condition(self):
                self.changed.clear()
                await self.changed.wait()

    def vanish(self, reset: bool) -> None:
        """Gone without a Close: the transport aborted; ``reset`` sends a TCP RST, not a FIN."""
        self._task.cancel()
        if reset:
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close_cleanly(self) -> None:
        """A masked Close 1000; then read on until the server's Close and its end of stream."""
        mask = os.urandom(4)
        body = struct.pack("!H", 1000)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
        self.writer.write(bytes((0x88, 0x80 | len(body))) + mask + masked)
        await asyncio.wait_for(self._task, WAIT)
        self.writer.close()

    def stop(self) -> None:
        self._task.cancel()
        self.writer.transport.abort()


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
async def server(request, tmp_path):
    database = "memory://" if request.param == "memory" else request.getfixturevalue("postgres_url")
    # Postgres storage brings its own broker (LISTEN/NOTIFY): changes and presence go that way.
    process = SvcProcess({"DATABASE_URL": database, "LOG_FORMAT": "json"}, tmp_path / "svc.log")
    await process.start()
    yield process
    returncode = await process.stop()
    assert returncode == 0, process.log()[-3000:]


def log_problems(process: SvcProcess) -> list[str]:
    """Every log line of svc that is an error, a traceback or a warning from the rooms."""
    problems = []
    for line in process.log().splitlines():
        entry = json.loads(line)
        if (
            entry["level"] in ("ERROR", "CRITICAL")
            or "exc" in entry
            or "Traceback" in entry["message"]
            or (
                entry["level"] == "WARNING" and entry["logger"].startswith(("svc.rooms", "asyncio"))
            )
        ):
            problems.append(line)
    return problems


async def test_sockets_closed_mid_fanout_leave_the_server_and_the_room_sound(server):
    room = unique_id("room")
    ids = [unique_id(f"m{i:03d}-") for i in range(MEMBERS)]
    writer_id = ids[0]
    aborted, clean = ids[1 : 1 + ABORTED], ids[1 + ABORTED : 1 + ABORTED + CLEAN]
    staying = [writer_id, *ids[1 + ABORTED + CLEAN :]]
    host, port = "127.0.0.1", server.port

    async with aiohttp.ClientSession(server.base) as http:
        sem = asyncio.Semaphore(16)

        async def create(user_id: str) -> None:
            async with sem, http.put(f"/users/{user_id}/profile", json={"username": user_id}) as r:
                assert r.status == 201, await r.text()

        await asyncio.gather(*(create(user_id) for user_id in ids))

        async def join(user_id: str) -> Member:
            async with sem:
                return await Member.join(host, port, room, user_id)

        members = dict(zip(ids, await asyncio.gather(*(join(u) for u in ids)), strict=True))
        try:
            for member in members.values():
                await member.wait_for(lambda m: m.frames and m.frames[0]["type"] == "welcome")
            # Everyone is present before the stream starts (presence reaches every instance
            # before a join returns; the route reads the same record).
            async with http.get(f"/rooms/{room}/members?limit=500") as r:
                assert (await r.json())["member_count"] == MEMBERS

            async def stream() -> None:
                for n in range(UPDATES):
                    # A bio makes each frame ~1.2 KB: many writes per fan-out, not one packet.
                    body = {"display_name": f"name {n}", "bio": f"{n:03d} " + "x" * 990}
                    url = f"/users/{writer_id}/profile"
                    async with http.put(url, json=body, headers={"If-Match": f'"{n + 1}"'}) as r:
                        assert r.status == 200, await r.text()
                        assert (await r.json())["version"] == n + 2

            streaming = asyncio.ensure_future(stream())
            watcher = members[staying[-1]]
            # Start closing once frames are flowing, and close in small batches while the
            # stream goes on, so closes land between (and, for the kernel, during) fan-outs.
            flowing = asyncio.ensure_future(
                watcher.wait_for(lambda m: len(m.versions(writer_id)) >= 5)
            )
            await asyncio.wait([flowing, streaming], return_when=asyncio.FIRST_COMPLETED)
            if streaming.done():
                flowing.cancel()
                streaming.result()  # its failure, if it failed
            await flowing
            closing = []
            for start in range(0, ABORTED, 10):
                for offset, user_id in enumerate(aborted[start : start + 10]):
                    members[user_id].vanish(reset=offset % 2 == 0)
                closer = clean[start // 5 : start // 5 + 2]
                closing += [asyncio.ensure_future(members[u].close_cleanly()) for u in closer]
                await asyncio.sleep(0.01)
            await asyncio.gather(*closing)
            print(f"closes done after version {watcher.versions(writer_id)[-1]} of {UPDATES + 1}")
            assert not streaming.done(), "the stream ended before the closes: raise UPDATES"
            await streaming

            # The server stays healthy.
            async with http.get("/") as r:
                assert r.status == 200
            every_version = list(range(2, UPDATES + 2))
            for user_id in staying:
                member = members[user_id]
                await member.wait_for(lambda m: m.versions(writer_id)[-1:] == [UPDATES + 1])
                # Every version, once each, in order, in whole, well-formed frames.
                assert member.versions(writer_id) == every_version, user_id
                assert member.problems == [], (user_id, member.problems)
                assert member.close_code is None
            for user_id in clean:
                member = members[user_id]
                assert member.problems == [], (user_id, member.problems)
                assert member.close_code == 1000  # the server answered the Close...
                assert member.after_close == b""  # ...and sent nothing after it (rule 3)
                seen = member.versions(writer_id)
                assert seen == every_version[: len(seen)]  # a prefix: none lost or reordered
            for user_id in aborted:
                seen = members[user_id].versions(writer_id)
                assert members[user_id].problems == [], (user_id, members[user_id].problems)
                assert seen == every_version[: len(seen)]

            # The closed ones are gone: from the members route, and in the others' presence.
            gone = set(aborted) | set(clean)
            async with deadline(WAIT):
                while True:
                    async with http.get(f"/rooms/{room}/members?limit=500") as r:
                        page = await r.json()
                    if page["member_count"] == len(staying):
                        break
                    await asyncio.sleep(0.1)
            assert {m["id"] for m in page["members"]} == set(staying)
            for user_id in staying:
                member = members[user_id]
                await member.wait_for(lambda m: m.left() >= gone)
                assert member.left() == gone, user_id
                last = [f for f in member.frames if f["type"] == "presence"][-1]
                assert last["member_count"] == len(staying)
            async with http.get("/metrics") as r:
                metrics = await r.text()
            lines = metrics.splitlines()
            assert f"svc_websocket_connections {float(len(staying))}" in lines
            # Vanished sockets are not mistaken for slow consumers, nor is anyone else.
            assert 'svc_websocket_closed_total{reason="backlog"} 0.0' in lines
        finally:
            for member in members.values():
                member.stop()
    assert log_problems(server) == []


async def test_a_closing_transport_with_a_backlog_gets_nothing_after_its_close():
    """Rule 3 itself, on a real TCP socket: asyncio's transport still *appends* writes made
    after ``close()`` while its buffer drains, so without the ``is_closing()`` check a
    frame would reach the peer after the Close frame.  (End to end, aiohttp closes the
    transport and the hub drops the socket with no await in between, so the fan-out test
    above cannot reach that window; this test does.)"""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future = loop.create_future()

    class Keep(asyncio.Protocol):
        def connection_made(self, transport):
            accepted.set_result(transport)

    server = await loop.create_server(Keep, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    transport = await accepted
    try:
        backlog = wire.text_frame(b'"' + b"x" * (4 << 20) + b'"')  # more than the kernel takes
        close = b"\x88\x02\x03\xe8"
        assert wire.write(transport, backlog, max_backlog=1 << 30) is True
        assert transport.get_write_buffer_size() > 0  # still draining: the risky window
        transport.write(close)  # as aiohttp writes its Close
        transport.close()
        assert wire.write(transport, wire.text_frame(b'"late"'), max_backlog=1 << 30) is None
        received = await asyncio.wait_for(reader.read(), WAIT)  # everything, to the end
        assert received == backlog + close
    finally:
        writer.close()
        server.close()
