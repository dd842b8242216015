"""The join reads ``?user_id=`` and ``?token=`` without ``request.query`` (whose parse a
socket would keep for its life): it must read exactly what ``request.query`` reads."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from svc.http.admission import query_value

NAMES = st.sampled_from(["user_id", "token", "user_id ", "", "x"])
# Raw query text: separators, escapes (valid, broken, non-ASCII), plus signs, anything printable.
RAW = st.text(
    alphabet=st.sampled_from(list("&=+%;#?ab01_-.~ ")) | st.characters(codec="utf-8"),
    max_size=60,
)


@given(query=RAW, name=NAMES)
def test_it_reads_what_request_query_reads(query, name):
    request = make_mocked_request("GET", "/ws/room?" + quote(query, safe="&=+%;"))
    assert query_value(request, name) == request.query.get(name)


@given(pairs=st.lists(st.tuples(NAMES, st.text(max_size=20)), max_size=6), name=NAMES)
def test_the_first_of_repeated_names_wins_as_with_request_query(pairs, name):
    query = "&".join(f"{quote(key)}={quote(value)}" for key, value in pairs)
    request = make_mocked_request("GET", f"/ws/room?{query}")
    assert query_value(request, name) == request.query.get(name)


def test_no_query():
    request = make_mocked_request("GET", "/ws/room")
    assert query_value(request, "user_id") is None
