"""The shapes svc sends, as ``TypedDict``s: what a caller of svc.client reads."""

from __future__ import annotations

from typing import Any, TypedDict


class Profile(TypedDict):
    display_name: str | None
    username: str | None
    bio: str | None
    email: str | None  # null unless the reader is its owner (auth on)
    avatar_url: str | None
    avatar_urls: dict[str, str] | None


class User(TypedDict):
    """A user record, as every REST body and room frame carries it."""

    id: str
    user_id: str
    profile: Profile
    version: int  # 0 for a member present without a stored user (auth off)
    created_at: str | None
    updated_at: str | None


class MembersPage(TypedDict):
    members: list[User]
    member_count: int
    next_cursor: str | None


class Message(TypedDict):
    """Another connection's message in the room; ``seq`` is the room's event number
    (``None`` from a server without resume)."""

    room: str
    sender: str | None
    data: Any
    seq: int | None
