"""No client writes a log line of its own, or drives the operator's terminal (issue 24,
finding 5): control characters are escaped in every log line, text as JSON.

The attack, on a real ``python -m svc`` with ``ACCESS_LOG=true``: ``%0d%0a`` in a path
wrote a whole forged access line, ``%0a`` split one, ANSI and terminal-title escapes
reached the log raw.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from svc_process import SvcProcess

from svc.logs import JSONFormatter, RequestIdFilter, TextFormatter, escape_controls
from svc.testing import wait_until

FORGED = "2026-12-06 12:00:00,000 INFO svc.access [41-aa-9]: DELETE /users/admin 204 0.50 ms"
# Paths as a client writes them, %-encoded: aiohttp decodes them into request.path.
PATHS = [
    "/users/x%0d%0a" + FORGED.replace(" ", "%20"),  # a whole forged line after CR LF
    "/users/a%0ab",  # a bare LF
    "/users/%1b[31mred%1b[0m",  # ANSI colour
    "/users/%1b]0;pwned%07",  # a terminal's window title (OSC)
    "/users/%1b[2J%1b[H",  # clear the screen
    "/users/line%e2%80%a8sep%e2%80%a9par%c2%85nel",  # U+2028, U+2029, NEL
    "/users/%e2%80%aeevil",  # a right-to-left override
    "/users/tab%09del%7f%00nul",
]
# Raw requests aiohttp cannot parse: it logs the request line (svc.log_secrets scrubs it).
MALFORMED = [
    b"GET /\x1b]0;pwned\x07 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Evil: a\x1b[31mb\r\n\r\n",
    b"GET /\x1b[2J HTTP/7.7\r\nHost: x\r\n\r\n",
]
_RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


async def send(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_control_characters_in_requests_are_escaped_in_the_log(tmp_path, log_format):
    process = SvcProcess({"ACCESS_LOG": "true", "LOG_FORMAT": log_format}, tmp_path / "svc.log")
    await process.start()
    try:
        for path in PATHS:
            head = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            assert (await send(process.port, head.encode())).startswith(b"HTTP/1.1 404")
        for raw in MALFORMED:
            assert (await send(process.port, raw)).startswith(b"HTTP/1.")
        await wait_until(
            lambda: process.log().count("/users/tab") + process.log().count("handling") >= 4,
            timeout=10,
        )
    finally:
        await process.stop()
    data = process.log_path.read_bytes().decode()
    lines = data.split("\n")
    assert lines[-1] == "", "the log ends with a whole line"
    for line in lines[:-1]:
        assert not _RAW_CONTROL.search(line), f"a raw control character: {line!r}"
        if log_format == "json":
            json.loads(line)  # one record per line, each whole
        else:
            # A line is a record, or an indented line of a traceback: never a forged record.
            assert _RECORD_START.match(line) or line.startswith("    "), line
    records = [json.loads(line)["message"] for line in lines[:-1]] if log_format == "json" else []
    if log_format == "text":
        assert not any(line.startswith(FORGED) for line in lines)
        access = [line for line in lines if "svc.access" in line and "/users/" in line]
        assert len(access) == len(PATHS), access
        assert any("/users/x\\r\\n2026-12-06 12:00:00,000 INFO" in line for line in access)
        assert any("\\x1b]0;pwned\\x07" in line for line in access)
        assert any("line\\u2028sep\\u2029par\\x85nel" in line for line in access)
    else:
        # JSON escapes them and keeps the text: the message is what the client sent.
        access = [m for m in records if m.startswith("GET /users/")]
        assert len(access) == len(PATHS), records
        assert any(f"/users/x\r\n{FORGED}" in m for m in access)
        assert any("\x1b]0;pwned\x07" in m for m in access)
    assert "pwned" in data  # the malformed request lines were logged too, escaped


def _record(message: str, args: tuple, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord("svc.test", logging.WARNING, __file__, 1, message, args, exc_info)
    RequestIdFilter().filter(record)
    return record


_text = st.text(max_size=60)


@given(message=_text, args=st.lists(_text, max_size=3))
def test_any_string_logged_is_one_line_without_control_characters(message, args):
    template = message.replace("%", "%%") + " %s" * len(args)
    for formatter in (TextFormatter(), JSONFormatter()):
        line = formatter.format(_record(template, tuple(args)))
        assert not _RAW_CONTROL.search(line) and "\n" not in line and "\r" not in line
        assert len(line.splitlines()) == 1, line
    entry = json.loads(JSONFormatter().format(_record(template, tuple(args))))
    # escaped, not lost (logging leaves a message without arguments as it is: no % applied)
    assert entry["message"] == (template % tuple(args) if args else template)


@given(text=_text)
def test_exception_text_is_escaped_and_a_traceback_never_starts_a_line(text):
    try:
        raise ValueError(text)
    except ValueError as exc:
        caught = exc
    formatted = TextFormatter().format(_record("failed: %s", (text,), caught))
    first, *rest = formatted.split("\n")
    assert _RECORD_START.match(first) and not _RAW_CONTROL.search(formatted)
    assert rest and all(line.startswith("    ") for line in rest), formatted
    assert escape_controls(text) in formatted


def test_escapes_are_readable():
    assert escape_controls("a\r\n\tb\x1b[0m\x00\x7f\x85\u2028\u202e") == (
        "a\\r\\n\\tb\\x1b[0m\\x00\\x7f\\x85\\u2028\\u202e"
    )
    assert escape_controls("naïve café — 東京 🚀") == "naïve café — 東京 🚀"
