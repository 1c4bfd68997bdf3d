"""JSON errors a page can show.

Every 4xx/5xx from the WebRTC API has the same body,

    {"error": {"code": "INVALID_SDP", "message": "...", "field": "sdp"}}

so a page needs one line to display it (`body.error.message`), and a
program can branch on the stable `code` without parsing prose.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error answered to the caller as JSON with an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, *, field: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.headers = dict(headers or {})
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers={**self.headers, **(headers or {})})


def bad_request(message: str, *, field: str = "", code: str = "INVALID_ARGUMENT") -> ApiError:
    return ApiError(400, code, message, field=field)
