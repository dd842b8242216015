"""No token or password in a log line, whoever writes it.

aiohttp logs a request it cannot parse with the raw request line, query string
and all, and a WebSocket joins with ``?token=<JWT>``: one malformed request
would put a working token in the error log (with a traceback, per request).
:class:`SecretsFilter` sits on aiohttp's server-side loggers and rewrites each
record before any handler sees it: JWTs and the values of ``name=`` whose name
says password, secret, token or key (svc.redact's one list) become ``***``; a
request that could not be parsed is one line, no traceback (it is the client's
mistake, and a scanner's stream of them must not flood the log).
"""

from __future__ import annotations

import logging
import re

from aiohttp.http_exceptions import HttpProcessingError

from .redact import SECRET_WORDS

#: Three base64url segments, the first an encoded JSON object ("eyJ" = '{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_SECRET_VALUE = re.compile(rf"((?:{SECRET_WORDS})\w*)(=|%3D)[^&\s'\"]*", re.IGNORECASE)
#: The loggers of aiohttp's server side (errors, access lines, web).
LOGGERS = ("aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.websocket")


def scrub_text(text: str) -> str:
    return _SECRET_VALUE.sub(r"\1\2***", _JWT.sub("***", text))


class SecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            message = f"{message}: {type(exc).__name__}: {' '.join(str(exc).split())}"
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        elif record.exc_info:
            # Render the traceback now, scrubbed (the exception's text may quote the request);
            # the formatters write exc_text as they write any traceback (svc.logs).
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, scrub_text(formatted)
        record.msg, record.args = scrub_text(message), None
        return True


def install() -> None:
    """Put one SecretsFilter on each server-side aiohttp logger (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretsFilter) for f in logger.filters):
            logger.addFilter(SecretsFilter())
