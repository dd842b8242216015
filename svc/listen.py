"""The listening sockets, bound before anything else is opened.

``python -m svc`` binds ``HOST``:``PORT`` itself, before the application opens its
storage and broker: a port already in use is then one line and exit 2, with no
connection opened and closed again for nothing (aiohttp would bind only after
``cleanup_ctx`` ran, and fail with a traceback).  The sockets go to ``web.run_app``.

Workers (svc.workers) each bind their own socket with ``SO_REUSEPORT``: the kernel
spreads new connections over them, and a worker that dies takes only its own queue.
"""

from __future__ import annotations

import errno
import socket

from .settings import SettingsError


def bind(host: str, port: int, backlog: int, reuse_port: bool = False) -> list[socket.socket]:
    """One listening socket per address ``host`` names (as asyncio's ``create_server``
    would make), or SettingsError naming ``PORT`` (in use) or ``HOST`` (no such address)."""
    return _bound(host, port, reuse_port, backlog)


def claim(host: str, port: int) -> list[socket.socket]:
    """Bound with ``SO_REUSEPORT`` but not listening: the supervising parent's hold on the
    port.  It fails at once if another program listens there, keeps any other program from
    binding it between two workers' lives, and receives no connection (only listening
    sockets take part in the kernel's spreading)."""
    return _bound(host, port, True, None)


def _bound(host: str, port: int, reuse_port: bool, backlog: int | None) -> list[socket.socket]:
    """A socket per address of ``host``, bound, and listening unless ``backlog`` is None."""
    sockets: list[socket.socket] = []
    try:
        for family, address in _addresses(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart in TIME_WAIT
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                # "::" and "0.0.0.0" side by side, as asyncio does.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
                if backlog is not None:
                    sock.listen(backlog)
            except OSError as exc:
                raise _refusal(host, port, exc) from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _addresses(host: str, port: int) -> list[tuple[int, tuple]]:
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise SettingsError(
            "HOST", f"{host!r} is not an address to listen on ({exc.strerror})"
        ) from None
    seen: list[tuple[int, tuple]] = []
    for family, _, _, _, address in infos:
        if (family, address) not in seen:
            seen.append((family, address))
    return seen


def _refusal(host: str, port: int, exc: OSError) -> SettingsError:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return SettingsError("PORT", f"{where} is already in use by another process")
    if exc.errno == errno.EADDRNOTAVAIL:
        return SettingsError("HOST", f"{host!r} is not an address of this machine")
    if exc.errno == errno.EACCES:
        return SettingsError("PORT", f"no permission to listen on {where}")
    return SettingsError("PORT", f"cannot listen on {where} ({exc.strerror})")
