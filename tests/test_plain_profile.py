"""The plain-text fast path of a profile update (svc/http/plain_profile.py) loads a body
exactly as ``profile_schema`` does, or leaves it to the schema: for any JSON body."""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st
from marshmallow import ValidationError

from svc.http.plain_profile import plain_profile_update
from svc.http.schemas import profile_schema

names = st.sampled_from(["display_name", "bio", "username", "email", "avatar_url", "other", ""])
texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="ab_.-9", min_size=2, max_size=34),  # usernames, near their limits
    st.text(min_size=95, max_size=105),  # display_name's limit
    st.text(min_size=995, max_size=1005),  # bio's
    st.sampled_from(["\0", "a\0b", "\ud800", "x\udfff", "Zoë", "ok name"]),
)
values = st.one_of(texts, st.none(), st.integers(), st.booleans(), st.lists(st.integers()))
bodies = st.one_of(
    st.dictionaries(names, values, max_size=4),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=3),
    st.none(),
)


@given(bodies)
@example({"display_name": "n1"})
@example({"bio": None, "display_name": "x" * 100, "username": "abc"})
@example({"display_name": "x" * 101})
@example({"username": "ab"})
@example({"username": "abc\n"})
@example({})
@example({"display_name": "a\0b"})
@example({"bio": "x\ud800"})
@example({"display_name": "ok", "email": "a@example.com"})
def test_the_fast_path_loads_as_the_schema_does_or_not_at_all(body):
    body = json.loads(json.dumps(body))  # what json.loads hands read_json
    loaded = plain_profile_update(body)
    try:
        expected = profile_schema.load(body)
    except ValidationError:
        assert loaded is None  # the schema answers its 422
        return
    if loaded is not None:
        assert loaded == expected
        assert list(loaded) == list(expected)  # in the schema's order too


def test_plain_text_fields_take_the_fast_path():
    body = {"username": "a_b.c-9", "bio": None, "display_name": "Zoë"}
    assert plain_profile_update(body) == {"display_name": "Zoë", "username": "a_b.c-9", "bio": None}
    assert plain_profile_update({"email": "a@example.com"}) is None  # left to the schema
