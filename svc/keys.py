"""Every ``web.AppKey`` of the application, in one place."""

from aiohttp import web

from .broker import Broker
from .connections import ConnectionStats
from .drain import Drain
from .http.login_throttle import LoginThrottle
from .http.metrics import Metrics
from .http.origins import OriginPolicy
from .passwords import Passwords
from .rooms import Hub
from .settings import Settings
from .storage import Storage

SETTINGS = web.AppKey("settings", Settings)
STORAGE = web.AppKey("storage", Storage)
BROKER = web.AppKey("broker", Broker)
PASSWORDS = web.AppKey("passwords", Passwords)
HUB = web.AppKey("hub", Hub)
#: This process's drain window after SIGTERM (drain.py); readiness reads it.
DRAIN = web.AppKey("drain", Drain)
METRICS = web.AppKey("metrics", Metrics)
#: Which web origins may call the API and open sockets (HTTP CORS and the WebSocket upgrade).
ORIGINS = web.AppKey("origins", OriginPolicy)
#: Failed logins per client and username, and per client, in this process (http/login_throttle.py).
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
#: The OpenAPI document, rendered once at start.
OPENAPI_JSON = web.AppKey("openapi_json", bytes)
#: What python -m svc's listening gate counts: open, refused, head timeouts (connections.py).
CONNECTIONS = web.AppKey("connections", ConnectionStats)
