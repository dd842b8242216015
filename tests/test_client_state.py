"""svc.client's ``RoomState`` frame by frame (it has no I/O): resume keeps the state and
drops what was applied already, any other welcome rebuilds it; and, with Hypothesis, any
stream of room events cut anywhere by a welcome, a drop, a resume that replays too much or a
new epoch ends in the room's true state."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from svc.client import RoomState

CREATED = "2026-12-06T10:00:00+00:00"


def record(user_id: str, version: int, name: str | None = None) -> dict:
    profile = dict.fromkeys(
        ("display_name", "username", "bio", "email", "avatar_url", "avatar_urls")
    )
    profile["display_name"] = name
    return {
        "id": user_id,
        "user_id": user_id,
        "profile": profile,
        "version": version,
        "created_at": CREATED,
        "updated_at": None,
    }


def welcome(members, seq, epoch="e1", resumed=None) -> dict:
    frame = {"type": "welcome", "room": "r", "connection_id": "c", "members": members}
    frame.update(member_count=len(members), epoch=epoch, seq=seq)
    if resumed is not None:
        frame["resumed"] = resumed
    return frame


def feed(state: RoomState, frame: dict, messages: list | None = None) -> None:
    """What Room does with a frame; the messages delivered go to ``messages``."""
    if frame["type"] == "welcome":
        state.welcome(frame)
    elif not state.is_repeat(frame):
        if frame["type"] == "presence":
            state.presence(frame)
        elif frame["type"] == "profile_updated":
            state.profile(frame)
        elif messages is not None:
            messages.append(frame["seq"])


def versions(state: RoomState) -> dict[str, int]:
    return {user_id: user["version"] for user_id, user in state.members.items()}


def test_a_resumed_welcome_keeps_the_state_and_repeats_are_dropped():
    state = RoomState()
    feed(state, welcome([record("a", 1)], seq=4))
    assert state.resume_point == "e1:4"
    feed(state, {"type": "profile_updated", "room": "r", "seq": 5, **record("a", 2)})
    feed(state, welcome([], seq=9, resumed=True))  # a resumed welcome need not list anyone
    assert versions(state) == {"a": 2} and state.seq == 5
    # the replay starts at our seq (one too early): the repeat is dropped, the rest applied
    feed(state, {"type": "profile_updated", "room": "r", "seq": 5, **record("a", 1, "old")})
    left = {"type": "presence", "room": "r", "joined": [], "left": ["a"], "member_count": 0}
    feed(state, {**left, "seq": 6})
    assert versions(state) == {} and state.resume_point == "e1:6"


def test_any_other_welcome_rebuilds():
    for other in (
        welcome([record("b", 3)], seq=2, resumed=False),
        welcome([record("b", 3)], seq=2, epoch="e2", resumed=True),  # another history
        welcome([record("b", 3)], seq=2),  # a server without resume
    ):
        state = RoomState()
        feed(state, welcome([record("a", 1)], seq=4))
        feed(state, other)
        assert versions(state) == {"b": 3} and state.resume_point == f"{other['epoch']}:2"


def test_without_seq_there_is_nothing_to_resume():
    state = RoomState()
    frame = welcome([record("a", 1)], seq=None)
    del frame["epoch"], frame["seq"]
    feed(state, frame)
    assert state.resume_point is None
    feed(state, {"type": "profile_updated", "room": "r", **record("a", 2)})
    assert versions(state) == {"a": 2}


# -- any stream, cut anywhere ---------------------------------------------------------------

USERS = ["u0", "u1", "u2", "u3"]


@st.composite
def room_history(draw):
    """A room's events as the server would number them, and its state after each."""
    present: dict[str, int] = {}
    version = dict.fromkeys(USERS, 1)
    frames, states = [], [{}]
    for seq in range(1, draw(st.integers(0, 30)) + 1):
        user = draw(st.sampled_from(USERS))
        kind = draw(st.sampled_from(["presence", "update", "message"]))
        if kind == "presence" and user in present:
            del present[user]
            frame = {"type": "presence", "joined": [], "left": [user]}
        elif kind == "presence":
            present[user] = version[user]
            frame = {"type": "presence", "joined": [record(user, version[user])], "left": []}
        elif kind == "update" and user in present:
            version[user] += 1
            present[user] = version[user]
            frame = {"type": "profile_updated", **record(user, version[user])}
        else:
            frame = {"type": "message", "from": user, "data": seq}
        if frame["type"] == "presence":
            frame["member_count"] = len(present)
        frames.append({**frame, "room": "r", "seq": seq})
        states.append(dict(present))
    return frames, states


def snapshot(states, seq: int, epoch: str, resumed=None) -> dict:
    members = [record(user, v) for user, v in states[seq].items()]
    return welcome(members, seq=seq, epoch=epoch, resumed=resumed)


@given(room_history(), st.data())
def test_any_stream_cut_by_drops_and_resumes_ends_in_the_rooms_state(history, data):
    frames, states = history
    last = len(frames)
    state = RoomState()
    joined_at = data.draw(st.integers(0, last), "joined at")
    feed(state, snapshot(states, joined_at, "e1"))
    applied = joined_at
    delivered: list[int] = []
    missed: set[int] = set()  # messages sent while away that no resume could bring back
    while applied < last:
        dropped_at = data.draw(st.integers(applied + 1, last), "dropped at")
        for frame in frames[applied:dropped_at]:
            feed(state, frame, delivered)
        applied = dropped_at
        assert state.resume_point == f"e1:{applied}" or state.epoch != "e1"
        if state.epoch == "e1" and data.draw(st.booleans(), "resumed"):
            # a server may replay from before our seq: what was applied must not be again
            replay_from = data.draw(st.integers(max(0, applied - 3), applied), "replay from")
            resumed = welcome([], seq=last, resumed=True)  # need not list anyone
            resumed["member_count"] = len(states[last])  # but counts them as of now
            feed(state, resumed)
            for frame in frames[replay_from:applied]:
                feed(state, frame, delivered)
        else:  # the history was lost: a new epoch's full welcome
            rebuilt_at = data.draw(st.integers(applied, last), "rebuilt at")
            feed(state, snapshot(states, rebuilt_at, "e2", resumed=False))
            missed |= set(range(applied + 1, rebuilt_at + 1))
            applied = rebuilt_at
    assert versions(state) == states[last]
    assert state.member_count == len(states[last])
    sent = [f["seq"] for f in frames[joined_at:] if f["type"] == "message"]
    assert delivered == [seq for seq in sent if seq not in missed]  # in order, each once


# -- frames that are not svc's ----------------------------------------------------------------

FIELD = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4)
VALUE = st.recursive(
    FIELD,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
KEYS = ["type", "room", "members", "member_count", "joined", "left", "id", "version",
        "created_at", "seq", "epoch", "resumed", "from", "data", "profile"]  # fmt: skip
FRAME = st.dictionaries(st.sampled_from(KEYS), VALUE) | st.fixed_dictionaries(
    {"type": st.sampled_from(["welcome", "presence", "profile_updated", "message"])},
    optional={key: VALUE for key in KEYS[1:]},
)


@given(st.lists(FRAME.map(json.dumps) | st.text(max_size=30), max_size=6))
async def test_a_frame_that_is_not_svcs_is_skipped_and_the_room_carries_on(texts):
    from svc.client import Room

    room = Room("http://127.0.0.1:1", "r", page_members=False)
    good = welcome([record("a", 1)], seq=1)
    for text in texts:
        await room.apply(text)
    await room.apply(json.dumps(good))  # a welcome without resume rebuilds, whatever came
    assert set(room.members) == {"a"} and room.state.seq == 1
    await room.apply(
        json.dumps({"type": "profile_updated", "room": "r", "seq": 2, **record("a", 2)})
    )
    assert room.members["a"]["version"] == 2
