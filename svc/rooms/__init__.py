"""The real-time layer: WebSocket rooms, presence, fan-out."""

from .hub import Hub, RoomSettings

__all__ = ["Hub", "RoomSettings"]
