"""What parses text from outside for private rooms and socket tokens, fuzzed with Hypothesis:
auth frames, room tokens, login tokens carrying a room, and the password-set event on the
brokers' wire (which the previous release must read as nothing to do)."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from token_helpers import SECRET

from svc.broker import PasswordSet, RoomMessage
from svc.broker.pubsub import PubSubBroker, decode, encode_message, encode_password_set
from svc.http.auth import InvalidToken, decode_token
from svc.http.room_tokens import RoomTokenError, check_room_token, is_private
from svc.http.socket_auth import BadAuthFrame, auth_frame_fields, parse_auth_frame
from svc.settings import Settings

KEYS = Settings(jwt_secret_key=SECRET, private_rooms="team-[0-9]+")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300)
@given(st.text())
def test_any_text_is_an_auth_frame_or_bad_auth_frame(text):
    try:
        token, room_token = parse_auth_frame(text)
    except BadAuthFrame as exc:
        assert str(exc)  # a reason to show
    else:
        assert isinstance(token, str) and token
        assert room_token is None or isinstance(room_token, str)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["type", "token", "room_token", "other"]), json_values, max_size=4
    )
)
def test_any_object_is_an_auth_frame_or_bad_auth_frame(frame):
    try:
        token, room_token = auth_frame_fields(frame)
    except BadAuthFrame:
        good = (
            frame.get("type") == "auth"
            and isinstance(frame.get("token"), str)
            and frame["token"]
            and (frame.get("room_token") is None or isinstance(frame.get("room_token"), str))
        )
        assert not good
    else:
        assert frame["type"] == "auth" and token == frame["token"]
        assert room_token == (frame.get("room_token") or None)


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_any_string_as_a_room_token_is_refused_with_a_reason(text):
    with pytest.raises(RoomTokenError):
        check_room_token(KEYS, text, "team-1", "u1")


claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": json_values,
        "room": json_values,
        "exp": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.text()),
        "iat": json_values,
    },
)


@settings(max_examples=300)
@given(claims)
def test_signed_claims_of_any_shape_open_the_room_only_when_all_are_right(payload):
    token = jwt.encode(payload, SECRET, "HS256")
    try:
        exp = check_room_token(KEYS, token, "team-1", "u1")
    except RoomTokenError as exc:
        assert str(exc)
    else:
        assert payload["sub"] == "u1" and payload["room"] == "team-1"
        assert exp == payload["exp"] > time.time() - 1
    try:
        login = decode_token(KEYS, token)
    except InvalidToken:
        pass
    else:
        assert "room" not in login  # a room token never logs anyone in


@given(st.text(alphabet="abcdefghij0123456789-", max_size=12))
def test_private_is_a_full_match(room_id):
    import re

    assert is_private(KEYS, room_id) == (re.fullmatch("team-[0-9]+", room_id) is not None)


@settings(max_examples=200)
@given(
    st.text(min_size=1, max_size=64),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_a_password_set_travels_exactly_and_the_previous_release_drops_it(user_id, at):
    payload = encode_password_set("node-a", PasswordSet(user_id, at))
    assert payload.isascii()
    event = decode(payload)
    assert event.item == PasswordSet(user_id, at) and event.node == "node-a"
    assert decode(payload, "m").item == PasswordSet(user_id, at)  # on Postgres' channel
    # The previous release's reader (pubsub.decode of "m" events, condensed) takes it as a
    # message to the room "", which no room can be: dropped without a warning.
    data = json.loads(payload)
    previous = RoomMessage(data["r"], data["f"], data["d"])
    assert previous.room_id == "" and json.loads(previous.data) is None


def test_a_room_message_is_still_a_room_message():
    payload = encode_message("n", RoomMessage("r1", "u1", '{"a":1}'))
    assert decode(payload).item == RoomMessage("r1", "u1", '{"a":1}')


class _Listener:
    def __init__(self):
        self.heard = []

    def on_password_set(self, event):
        self.heard.append(event)


class _Broker(PubSubBroker):
    open = close = ping = publish_change = publish_message = None
    presence_join = presence_leave = presence_members = presence_count = None


@pytest.mark.parametrize(
    "bad",
    [
        '{"t":"m","n":"x","r":"","f":"u","d":"null","a":"soon"}',
        '{"t":"m","n":"x","r":"","f":1,"d":"null","a":1.5}',
        '{"t":"m","n":"x","r":"","f":"u","d":"null","a":true}',
    ],
)
def test_a_malformed_password_set_is_not_an_event(bad):
    with pytest.raises(ValueError):
        decode(bad)


async def test_a_node_hears_the_others_password_sets_not_its_own():
    broker = _Broker("x://")
    broker.node_id = "me"
    broker.listener = listener = _Listener()
    broker.dispatch(decode(encode_password_set("me", PasswordSet("u1", 1.0))))
    broker.dispatch(decode(encode_password_set("other", PasswordSet("u1", 2.0))))
    assert listener.heard == [PasswordSet("u1", 2.0)]
