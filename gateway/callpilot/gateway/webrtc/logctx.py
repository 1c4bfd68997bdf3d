"""Log lines that name their call.

The gateway's log format is shared with the other features, so the call id
goes into the message itself: `grep call-…` then finds a call's whole story
(start, each leg's joins and ends with reasons, the server's end reason).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

log = logging.getLogger("callpilot.gateway.webrtc")


class CallLog(logging.LoggerAdapter[logging.Logger]):
    def __init__(self, call_id: str) -> None:
        super().__init__(log, {"call_id": call_id})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"call {self.extra['call_id'] if self.extra else '?'}: {msg}", kwargs
