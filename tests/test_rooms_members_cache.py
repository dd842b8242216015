"""The caches behind a welcome: a room's first ids (MemberSet) and a profileless member's body."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from svc.rooms.member_set import MemberSet
from svc.serialize import ProfilelessMember

ids = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"])  # small: ids meet often
operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "discard", "update"]),
        ids,
    ),
    max_size=60,
)


@given(st.integers(1, 6), operations)
def test_first_ids_follow_every_change_of_the_set(k, ops):
    members, model = MemberSet(), set()
    for op, user_id in ops:
        before = members.first(k)
        shown = list(before)
        if op == "add":
            members.add(user_id)
            model.add(user_id)
        elif op == "discard":
            members.discard(user_id)
            model.discard(user_id)
        elif op == "update":
            members.update({user_id, user_id + "x"})
            model.update({user_id, user_id + "x"})
        assert members.first(k) == sorted(model)[:k]
        assert set(members) == model and len(members) == len(model)
        assert members - {user_id} == model - {user_id}
        # svc.rooms.welcome_cache keys on the list itself: a changed one must be a new list,
        # and a list handed out is never edited.
        assert before == shown
        if members.first(k) != shown:
            assert members.first(k) is not before


@given(st.text(min_size=1, max_size=80))
def test_a_profileless_body_is_the_json_of_its_record(user_id):
    member = ProfilelessMember(user_id)
    assert member.body == json.dumps(member.to_dict(), separators=(",", ":")).encode()
    assert json.loads(member.body)["id"] == user_id
