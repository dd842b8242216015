"""aiopg's connections, made safe to open again after a failed connect under uvloop.

aiopg (1.4.0, still so upstream: aio-libs/aiopg#909) leaves a file descriptor registered
with the event loop when a connect fails: during the handshake it watches the socket for
writing; when the server refuses, libpq closes the socket inside ``poll()``, and aiopg's
``Connection._ready`` removes the *reader*, forgets the descriptor (``_fileno = None``),
and only then skips removing the *writer* because the descriptor is forgotten.  asyncio's
selector loop shrugs that off; uvloop keeps the descriptor's poll handle, closed, in its
table, so the next socket the kernel gives that number (the next connect attempt, often)
cannot be watched: ``RuntimeError: unable to perform operation on <UVPoll closed=True>``,
and a database outage is never recovered from.

:class:`Connection` removes that writer itself, in the same callback: later the number may
already belong to another socket.  :func:`connect` and :func:`create_pool` are aiopg's own
(same arguments, same behaviour) opening this class.  Every connection svc_postgres opens
goes through them (tests/test_postgres_uvloop.py).
"""

from __future__ import annotations

import types
import weakref
from typing import Any

import aiopg
import aiopg.connection
import aiopg.pool


class Connection(aiopg.Connection):
    """``aiopg.Connection`` whose failed connect leaves no writer behind (aio-libs/aiopg#909)."""

    @staticmethod
    def _ready(weak_self: weakref.ref[Any]) -> None:
        self = weak_self()
        if self is None:
            return
        watched_for_writing = self._fileno if self._writing else None
        aiopg.Connection._ready(weak_self)
        if watched_for_writing is not None and self._fileno is None:
            # aiopg forgot a closed descriptor with its writer still on (see above).
            self._loop.remove_writer(watched_for_writing)


def _calling(function: types.FunctionType, **names: Any) -> types.FunctionType:
    """aiopg's ``function``, its global ``names`` (what it calls) replaced by ours."""
    missing = set(names) - set(function.__code__.co_names)
    if missing:
        raise ImportError(
            f"svc_postgres.connection: aiopg {aiopg.__version__}'s {function.__qualname__} "
            f"no longer calls {', '.join(sorted(missing))}; see aio-libs/aiopg#909"
        )
    replaced = types.FunctionType(
        function.__code__,
        {**function.__globals__, **names},
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    replaced.__kwdefaults__ = function.__kwdefaults__
    replaced.__qualname__ = function.__qualname__
    return replaced


def _check_aiopg() -> None:
    """Fail at import, not during an outage, if aiopg changed what this module relies on."""
    probe = aiopg.Connection.__init__.__code__.co_names
    ready = aiopg.Connection._ready.__code__.co_names
    if not {"_fileno", "_writing", "_loop"} <= set(probe) | set(ready):
        raise ImportError(
            f"svc_postgres.connection: aiopg {aiopg.__version__}'s Connection no longer has "
            "_fileno, _writing and _loop; see aio-libs/aiopg#909 and whether it is fixed"
        )


_check_aiopg()

#: ``aiopg.connect``, opening :class:`Connection`.
connect = _calling(aiopg.connection.connect, Connection=Connection)


class Pool(aiopg.Pool):
    """``aiopg.Pool`` whose connections are :class:`Connection`: aiopg's own filling code,
    calling :func:`connect` where it called aiopg's."""

    _fill_free_pool = _calling(aiopg.Pool._fill_free_pool, connect=connect)


#: ``aiopg.create_pool``, making a :class:`Pool`.
create_pool = _calling(aiopg.pool.create_pool, Pool=Pool)
