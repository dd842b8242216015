"""``DATABASE_URL=sqlite:...``: which file, or one clear line saying what is wrong."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from svc_sqlite.url import database_path

from svc.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///svc.db", os.path.join(os.getcwd(), "svc.db")),
        ("sqlite:///data/svc.db", os.path.join(os.getcwd(), "data", "svc.db")),
        ("sqlite:////var/lib/svc/svc.db", "/var/lib/svc/svc.db"),
        ("SQLite:////tmp/x.db", "/tmp/x.db"),
        ("sqlite:////tmp/my%20file.db", "/tmp/my file.db"),
    ],
)
def test_the_file_a_url_names(url, path):
    assert database_path(url) == path


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://", "three slashes"),
        ("sqlite://host/x.db", "three slashes"),
        ("sqlite:/x.db", "scheme://"),
        ("sqlite:///", "names a file"),
        ("sqlite:////", "names a file"),
        ("sqlite:///data/", "names a file"),
        ("sqlite:///x.db?mode=ro", "no options"),
        ("sqlite:///x.db#frag", "no options"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite:///x%00.db", "NUL"),
    ],
)
def test_a_bad_url_stops_start_up_with_one_line(url, says):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"DATABASE_URL": url})
    message = str(info.value)
    assert message.startswith("DATABASE_URL: ") and says in message
    assert "\n" not in message


@given(st.text())
def test_any_text_is_a_path_or_a_clear_error(rest):
    try:
        path = database_path("sqlite:///" + rest)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert os.path.isabs(path) and "\x00" not in path


@given(st.lists(st.text(st.characters(exclude_characters="/\x00"), min_size=1), min_size=1))
def test_an_absolute_path_round_trips_through_its_url(segments):
    path = "/" + "/".join(segments)
    url = "sqlite:///" + quote(path)
    if any(s in (".", "..") for s in segments):
        return  # abspath normalises these away
    assert database_path(url) == path
