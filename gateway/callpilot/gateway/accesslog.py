"""The gateway's access log, without credentials.

Browsers cannot set headers on a WebSocket, an EventSource or a sendBeacon,
so those carry their credential as `?access_token=`; call links carry a join
token as `?join=`. aiohttp's default access log writes the whole query
string, so this logger writes the request line with those values replaced
by `[redacted]`. Policy: no secret (API key, JWT, join or customer token)
ever reaches a log line.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

SECRET_PARAMETERS = frozenset({"access_token", "join", "token"})


def redacted(path_qs: str) -> str:
    """`path_qs` with the values of credential parameters replaced."""
    path, sep, query = path_qs.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    return path + "?" + urlencode([(k, "[redacted]" if k in SECRET_PARAMETERS else v) for k, v in pairs])


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request: peer, request line (credentials redacted), status, bytes, seconds."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs',
            request.remote or "-",
            request.method,
            redacted(request.path_qs),
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
        )
