"""A TCP relay between svc and a server, over real sockets, for faults no server gives
on demand.

svc talks to the server through ``127.0.0.1:<relay.port>`` (:func:`through` makes the URL).
:meth:`Relay.cut` drops every connection and refuses new ones (to svc, exactly a server
that went away); :meth:`Relay.restore` brings it back.

A relay can also make a receiving connection mute without closing it.  A connection
whose client sent ``marker`` (``LISTEN`` for Postgres, ``SUBSCRIBE`` for Redis) is a
*receiving* connection.  :meth:`Relay.mute` stops forwarding the server's bytes
to every receiving connection, present and future, while keeping the connections open
and every other connection (the pool: writes, the probe's sends) working: exactly a
pooler that unlinked a ``LISTEN`` session, or a proxy that stopped forwarding one way.
:meth:`Relay.unmute` forwards again, what was held back included.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit


def through(url: str, relay: Relay) -> str:
    """``url`` with its host and port replaced by the relay's."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{relay.port}" if userinfo else f"127.0.0.1:{relay.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class Relay:
    def __init__(self, host: str, port: int, marker: bytes | None = None):
        self.target = (host, port)
        #: what makes a connection a receiving one (None: none is; mute has no effect)
        self.marker = marker
        self.port = 0
        self.muted = False
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Drop every connection and refuse new ones, until :meth:`restore`."""
        await self.close()

    async def restore(self) -> None:
        await self.start()  # on the same port: svc's URLs still point here

    def mute(self) -> None:
        self.muted = True

    def unmute(self) -> None:
        self.muted = False
        for link in self._links:
            link.flush()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
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

    def __init__(self, relay: Relay, client, server):
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
                if not self.receiving and self.relay.marker is not None:
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
