"""The broker: what crosses processes (changes, room messages, presence)."""

from .base import Broker, BrokerListener, Change, PresenceChange, RoomMessage

__all__ = ["Broker", "BrokerListener", "Change", "PresenceChange", "RoomMessage"]
