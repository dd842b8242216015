"""A TCP relay that can make a receiving connection mute without closing it.

svc talks to its broker's server through ``127.0.0.1:<relay.port>``.  A connection
whose client sent ``marker`` (``LISTEN`` for Postgres, ``SUBSCRIBE`` for Redis) is a
*receiving* connection.  :meth:`MutingRelay.mute` stops forwarding the server's bytes
to every receiving connection, present and future, while keeping the connections open
and every other connection (the pool: writes, the probe's sends) working: exactly a
pooler that unlinked a ``LISTEN`` session, or a proxy that stopped forwarding one way.
:meth:`MutingRelay.unmute` forwards again, what was held back included.
"""

from __future__ import annotations

import asyncio


class MutingRelay:
    def __init__(self, host: str, port: int, marker: bytes):
        self.target = (host, port)
        self.marker = marker
        self.port = 0
        self.muted = False
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def mute(self) -> None:
        self.muted = True

    def unmute(self) -> None:
        self.muted = False
        for link in self._links:
            link.flush()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self._links:
            link.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(self, writer, up_writer)
        self._links.append(link)
        try:
            await asyncio.gather(link.upstream(reader), link.downstream(up_reader))
        finally:
            self._links.remove(link)


class _Link:
    """One client connection and its server connection."""

    def __init__(self, relay: MutingRelay, client, server):
        self.relay = relay
        self.client = client
        self.server = server
        self.receiving = False
        self._held: list[bytes] = []
        self._seen = b""

    def flush(self) -> None:
        held, self._held = self._held, []
        for data in held:
            self.client.write(data)

    def abort(self) -> None:
        self.client.transport.abort()
        self.server.transport.abort()

    async def upstream(self, reader) -> None:
        """Client → server, always forwarded; watching for the marker."""
        try:
            while data := await reader.read(65536):
                if not self.receiving:
                    self._seen = (self._seen + data)[-4096:]
                    self.receiving = self.relay.marker in self._seen.upper()
                self.server.write(data)
                await self.server.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.abort()

    async def downstream(self, reader) -> None:
        """Server → client, held back while muted (receiving connections only)."""
        try:
            while data := await reader.read(65536):
                if self.receiving and self.relay.muted:
                    self._held.append(data)
                    continue
                self.client.write(data)
                await self.client.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.abort()
