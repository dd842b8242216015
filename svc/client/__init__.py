"""svc.client: a Python client of svc, the counterpart of the browser's svc-client.js.

``SvcClient`` makes the REST calls; ``Room`` keeps a room live (state, messages, reconnection
with backoff, resume).  It needs aiohttp only and imports nothing of the server, so a third
party can depend on it alone.  The guide is docs/client.md::

    async with SvcClient("http://127.0.0.1:8000") as svc:
        await svc.update_profile("alice", {"username": "alice"})
    async with Room("http://127.0.0.1:8000", "lobby", user_id="alice") as room:
        print(room.member_count, sorted(room.members))
"""

from .api import SvcClient
from .backoff import Backoff
from .errors import RoomRefused, SvcError, is_final_close
from .records import MembersPage, Message, Profile, User
from .room import Room
from .state import RoomState, is_newer

__all__ = [
    "Backoff",
    "MembersPage",
    "Message",
    "Profile",
    "Room",
    "RoomRefused",
    "RoomState",
    "SvcClient",
    "SvcError",
    "User",
    "is_final_close",
    "is_newer",
]
