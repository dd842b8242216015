"""A presence batch's frames (svc/rooms/member_bytes.py) are byte for byte the frames the room
built before it laid each batch out once: for any batch, any mark, either representation.
The reference below is that code (``Room._fan_out`` and ``_presence_frame`` as they were)."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from svc.rooms import frames
from svc.rooms.member_bytes import PresenceBatch
from svc.serialize import ProfilelessMember
from svc.storage import User

WHEN = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
ids = st.text(min_size=1, max_size=8)  # any text: quoting and non-ASCII included
profiles = st.fixed_dictionaries(
    {},
    optional={
        "display_name": st.text(max_size=10),
        "email": st.just("a@example.com"),
        "bio": st.text(max_size=10),
        "avatar_urls": st.dictionaries(st.sampled_from(["s", "m"]), st.text(max_size=5)),
    },
)


def reference(room_id, pending, records, member_count, with_email, mark):
    """The frame a connection with ``mark`` was sent, the way the room built it."""
    first = min(number for _, number in pending.values())
    key = first - 1 if mark < first else mark
    news = {user: state for user, state in pending.items() if state[1] > key}
    if not news:
        return None
    return frames.encode_with_users(
        {
            "type": "presence",
            "room": room_id,
            "left": [user_id for user_id, (present, _) in news.items() if not present],
            "member_count": member_count,
        },
        "joined",
        [records[user_id] for user_id, (present, _) in news.items() if present],
        with_email,
    )


@st.composite
def batches(draw):
    users = draw(st.lists(ids, min_size=1, max_size=12, unique=True))
    number = draw(st.integers(0, 50))
    pending, records = {}, {}
    for user_id in users:  # arrival order: numbers ascend, with gaps (changes superseded)
        number += draw(st.integers(1, 3))
        present = draw(st.booleans())
        pending[user_id] = (present, number)
        if present:
            if draw(st.booleans()):
                records[user_id] = ProfilelessMember(user_id)
            else:
                profile = {"username": user_id, **draw(profiles)}
                version = draw(st.integers(1, 9))
                records[user_id] = User(user_id, profile, version, WHEN, WHEN)
    marks = draw(st.lists(st.integers(-1, number + 2), min_size=1, max_size=8))
    return pending, records, marks


@given(
    batch=batches(),
    room_id=ids,
    member_count=st.integers(0, 10_000),
    with_email=st.booleans(),
)
def test_each_marks_frame_is_the_one_built_before(batch, room_id, member_count, with_email):
    pending, records, marks = batch
    laid_out = PresenceBatch(room_id, pending, records, member_count, with_email)
    for mark in marks:
        expected = reference(room_id, pending, records, member_count, with_email, mark)
        assert laid_out.frame_after(mark) == expected
        assert laid_out.frame_after(mark) == expected  # and again, from its cache


def test_a_mark_past_the_batch_hears_nothing_and_one_before_hears_all():
    pending = {"a": (True, 5), "b": (False, 6), "c": (True, 9)}
    records = {"a": ProfilelessMember("a"), "c": ProfilelessMember("c")}
    batch = PresenceBatch("r", pending, records, 2, True)
    assert batch.frame_after(9) is None
    everything = batch.frame_after(0)
    assert b'"left":["b"]' in everything and everything.count(b'"user_id"') == 2
    assert batch.frame_after(6).count(b'"user_id"') == 1  # c alone
