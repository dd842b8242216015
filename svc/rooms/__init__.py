"""The real-time layer: WebSocket rooms, presence, fan-out (``docs/api.md``, "WebSocket rooms")."""

from .hub import Hub, RoomSettings

__all__ = ["Hub", "RoomSettings"]
