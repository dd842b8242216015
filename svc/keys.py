"""Every ``web.AppKey`` of the application, in one place."""

from aiohttp import web

from .passwords import Passwords
from .settings import Settings
from .storage import Storage

SETTINGS = web.AppKey("settings", Settings)
STORAGE = web.AppKey("storage", Storage)
PASSWORDS = web.AppKey("passwords", Passwords)
