"""A Genesys AudioHook (v2) client for the tests: what Genesys Cloud sends, on a real websocket.

Client messages carry `version: "2"`, the session `id`, `type`, `seq` (1, 2, …),
`serverseq` (the last server seq seen), `position` (ISO-8601 duration of the
audio sent so far) and `parameters`; audio goes in binary frames of
interleaved PCMU samples in the channel order of the accepted offer.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
from callpilot.gateway.connectors import signature

STEREO = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
FRAME_MS = 20


def duration(seconds: float) -> str:
    return f"PT{seconds:.3f}".rstrip("0").rstrip(".") + "S"


class AudioHookClient:
    def __init__(self, gateway_url: str) -> None:
        self.url = gateway_url.replace("http://", "ws://") + "/connectors/audiohook"
        self.id = str(uuid.uuid4())
        self.conversation_id = str(uuid.uuid4())
        self.organization_id = str(uuid.uuid4())
        self.seq = 0
        self.serverseq = 0
        self.samples = 0  # per channel, for `position`
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.received: list[dict[str, Any]] = []

    def headers(self, api_key: str | None, secret: bytes | None = None) -> dict[str, str]:
        headers = {
            "Audiohook-Organization-Id": self.organization_id,
            "Audiohook-Correlation-Id": str(uuid.uuid4()),
            "Audiohook-Session-Id": self.id,
        }
        if api_key is not None:
            headers["X-API-KEY"] = api_key
        if secret is not None:
            host = self.url.split("//", 1)[1].split("/", 1)[0]
            lower = {k.lower(): v for k, v in headers.items()}
            headers.update(
                signature.sign(
                    lower,
                    "/connectors/audiohook",
                    host,
                    secret,
                    nonce=uuid.uuid4().hex,
                    created=int(time.time()),
                )
            )
        return headers

    async def connect(self, headers: dict[str, str]) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        self.ws = await self.http.ws_connect(self.url, headers=headers, autoping=True)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()

    @property
    def position(self) -> str:
        return duration(self.samples / 8000)

    async def send(self, type_: str, parameters: dict[str, Any], **override: Any) -> None:
        assert self.ws is not None
        self.seq += 1
        message = {
            "version": "2",
            "id": self.id,
            "type": type_,
            "seq": self.seq,
            "serverseq": self.serverseq,
            "position": self.position,
            "parameters": parameters,
            **override,
        }
        await self.ws.send_str(json.dumps(message))

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def receive(self, timeout: float = 20.0) -> dict[str, Any]:
        """The next server text message (checks its version, id and seq order)."""
        assert self.ws is not None
        msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        message: dict[str, Any] = json.loads(msg.data)
        assert message["version"] == "2" and message["seq"] == self.serverseq + 1, message
        self.serverseq = message["seq"]
        self.received.append(message)
        return message

    async def open(
        self, media: list[dict[str, Any]] | None = None, ani: str = "+15550100101"
    ) -> dict[str, Any]:
        await self.send(
            "open",
            {
                "organizationId": self.organization_id,
                "conversationId": self.conversation_id,
                "participant": {
                    "id": str(uuid.uuid4()),
                    "ani": ani,
                    "aniName": "Maria",
                    "dnis": "+15550199999",
                },
                "media": [STEREO] if media is None else media,
                "language": "en-US",
            },
        )
        return await self.receive()

    async def audio(self, stereo: bytes) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(stereo)
        self.samples += len(stereo) // 2

    async def play(self, external: bytes, internal: bytes, *, realtime: bool = True) -> None:
        """Interleave the two channels into 20 ms binary frames, paced like Genesys."""
        n = max(len(external), len(internal))
        external, internal = external.ljust(n, b"\xff"), internal.ljust(n, b"\xff")
        step = 8 * FRAME_MS
        begin = time.monotonic()
        for i, offset in enumerate(range(0, n, step)):
            a, b = external[offset : offset + step], internal[offset : offset + step]
            frame = bytes(x for pair in zip(a, b, strict=True) for x in pair)
            await self.audio(frame)
            if realtime:
                delay = begin + (i + 1) * FRAME_MS / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def close_session(self) -> dict[str, Any]:
        await self.send("close", {"reason": "end"})
        return await self.receive()
