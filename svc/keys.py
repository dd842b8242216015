"""Every ``web.AppKey`` of the application, in one place: a leaf, importing nothing of svc.

The handlers (svc/http/) and the wiring (app.py, serving.py) import these keys; the values'
classes live in every layer (the hub in rooms/, the metrics in http/, the settings in the
wiring).  Importing those classes here made this module the knot of a six-module cycle
(keys -> http.metrics -> keys ...), dodged with imports inside functions.  So each key names
the class of its value as text, where that class lives: aiohttp reads a key's type only to
show it in the key's ``repr``, and tests/test_layers.py holds every name here to the value
``create_app`` stores (a renamed or moved class fails it).
"""

from aiohttp import web

SETTINGS = web.AppKey("settings", "svc.settings.Settings")
STORAGE = web.AppKey("storage", "svc.storage.Storage")
BROKER = web.AppKey("broker", "svc.broker.Broker")
PASSWORDS = web.AppKey("passwords", "svc.passwords.Passwords")
HUB = web.AppKey("hub", "svc.rooms.Hub")
#: This process's drain window after SIGTERM (drain.py); readiness reads it.
DRAIN = web.AppKey("drain", "svc.drain.Drain")
METRICS = web.AppKey("metrics", "svc.http.metrics.Metrics")
#: Which web origins may call the API and open sockets (HTTP CORS and the WebSocket upgrade).
ORIGINS = web.AppKey("origins", "svc.http.origins.OriginPolicy")
#: Failed logins per client and username, and per client, in this process (http/login_throttle.py).
LOGIN_THROTTLE = web.AppKey("login_throttle", "svc.http.login_throttle.LoginThrottle")
#: Pages of GET /rooms/{room}/members read once for the requests that ask together (members.py).
MEMBER_PAGES = web.AppKey("member_pages", "svc.shared_reads.SharedReads")
#: The OpenAPI document, rendered once at start.
OPENAPI_JSON = web.AppKey("openapi_json", bytes)
#: What python -m svc's listening gate counts: open, refused, head timeouts (connections.py).
CONNECTIONS = web.AppKey("connections", "svc.connections.ConnectionStats")
