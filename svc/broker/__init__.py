"""The broker: what crosses processes (changes, room messages, presence)."""

from .base import (
    Broker,
    BrokerListener,
    BrokerMisconfigured,
    BrokerUnavailable,
    Change,
    PresenceChange,
    RoomEvent,
    RoomHistory,
    RoomMessage,
    calling_the_broker,
)

__all__ = [
    "Broker",
    "BrokerListener",
    "BrokerMisconfigured",
    "BrokerUnavailable",
    "Change",
    "PresenceChange",
    "RoomEvent",
    "RoomHistory",
    "RoomMessage",
    "calling_the_broker",
]
