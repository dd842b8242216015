"""The real-time layer: WebSocket rooms, presence, fan-out (``docs/api.md``, "WebSocket rooms").

A one-way stack (docs/development.md): the hub routes, a room owns its state, a connection
its socket; the WebSocket route that feeds them is :mod:`svc.http.ws`."""

from .hub import Hub
from .limits import RoomSettings

__all__ = ["Hub", "RoomSettings"]
