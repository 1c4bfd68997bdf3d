"""The keys under which the gateway's app holds its shared objects.

They live in their own module, below every feature, so that `app` (which
imports the features to register them) and the features (which read these
keys) do not import each other: the gateway has no import cycle.
"""

from __future__ import annotations

from aiohttp import web
from callpilot.client import AsyncCallpilot
from callpilot.gateway.config import GatewaySettings

SETTINGS = web.AppKey("settings", GatewaySettings)
CLIENT = web.AppKey("client", AsyncCallpilot)
