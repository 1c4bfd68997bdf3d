"""Supervisor alerts computed on the server from a call's own events.

`rules.AlertRules` holds a tenant's configuration; `engine.AlertEngine` is a
pure, per-call state machine fed with the call's events and the time, and
returns the `Alert` messages to emit. It does no I/O, so the same rules run
in the session, in tests, and over a stored call's log.
"""

from callpilot.server.alerts.engine import AlertEngine
from callpilot.server.alerts.rules import AlertRules

__all__ = ["AlertEngine", "AlertRules"]
