"""A Twilio Media Streams client for the tests: what Twilio's media servers send, on a real websocket.

Messages follow Twilio's documentation exactly: JSON text frames `connected`,
`start`, `media`, `dtmf`, `mark`, `stop`; `sequenceNumber`, `chunk` and
`timestamp` are decimal strings; audio is base64 μ-law 8 kHz, 20 ms (160
bytes) per media message and track. The upgrade request carries
`X-Twilio-Signature`, computed with the `twilio` library over the websocket URL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz


def sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def signature(auth_token: str, url: str, params: dict[str, str] | None = None) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, params or {}))


class MediaStream:
    """One stream: call `open`, then `start`, `media`…, `stop`."""

    def __init__(self, gateway_url: str, auth_token: str) -> None:
        self.url = gateway_url.replace("http://", "ws://") + "/connectors/twilio"
        self.auth_token = auth_token
        self.stream_sid = sid("MZ")
        self.call_sid = sid("CA")
        self.account_sid = sid("AC")
        self.sequence = 0
        self.chunks = {"inbound": 0, "outbound": 0}
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self, *, sign_with: str | None = None, signed: bool = True) -> None:
        """Connect; `sign_with` signs with another token (a forged request), `signed=False` omits it."""
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        headers = {}
        if signed:
            headers["X-Twilio-Signature"] = signature(sign_with or self.auth_token, self.url)
        self.ws = await self.http.ws_connect(self.url, headers=headers, autoping=True)
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    def _next(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    async def start(
        self, custom: dict[str, str], tracks: tuple[str, ...] = ("inbound", "outbound"), **fmt: Any
    ) -> None:
        media_format = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1, **fmt}
        await self.send(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": list(tracks),
                    "mediaFormat": media_format,
                    "customParameters": custom,
                },
                "streamSid": self.stream_sid,
            }
        )

    async def media(
        self, track: str, timestamp_ms: int, payload: bytes | str, chunk: int | None = None
    ) -> None:
        if chunk is None:
            self.chunks[track] += 1
            chunk = self.chunks[track]
        encoded = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
        await self.send(
            {
                "event": "media",
                "sequenceNumber": self._next(),
                "media": {
                    "track": track,
                    "chunk": str(chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": encoded,
                },
                "streamSid": self.stream_sid,
            }
        )

    async def dtmf(self, digit: str) -> None:
        await self.send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def mark(self, name: str) -> None:
        await self.send(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    async def stop(self) -> None:
        await self.send(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )

    async def play(self, inbound: bytes, outbound: bytes, *, realtime: bool = True) -> None:
        """Both tracks in 20 ms frames, paced to the wall clock as Twilio sends them."""
        frames = max(len(inbound), len(outbound)) // FRAME_BYTES
        begin = time.monotonic()
        for i in range(frames):
            for track, audio in (("inbound", inbound), ("outbound", outbound)):
                frame = audio[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]
                if len(frame) == FRAME_BYTES:
                    await self.media(track, i * 20, frame)
            if realtime:
                delay = begin + (i + 1) * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def closed(self, timeout: float = 30.0) -> tuple[int | None, str]:
        """Wait for the gateway to close the socket; its close code and reason."""
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return self.ws.close_code, str(msg.extra or "")
