"""Genesys Cloud AudioHook (protocol v2) in: one session, one StreamCall.

    GET /connectors/audiohook      the AudioHook websocket (Genesys is the client)

Authentication happens on the upgrade: `X-API-KEY` (a Callpilot credential,
passed to the server as the SDK's api_key) is required, and a request
signature (`Signature`/`Signature-Input`, see signature.py) is verified when
present; failures get 401 before any session exists. A key the server later
refuses ends the session with `disconnect` reason `unauthorized`.

Messages are JSON text frames `{version: "2", id, type, seq, serverseq,
position, parameters}` from the client and `{version, id, type, seq,
clientseq, parameters}` from this server. Invariants: the client's `seq`
must be exactly the previous one plus one, its `serverseq` never above the
last `seq` sent, its `id` the session's; every server message carries the
next `seq` and, as `clientseq`, the last client `seq` received.

Client message -> what this server does:

* `open`      -> pick the PCMU 8 kHz offer (stereo `external`+`internal`
                 first, else mono), open the StreamCall (conversationId and
                 participant ANI as labels and customer hint), answer `opened`
                 {startPaused: false, media: [chosen]}. A probe (null
                 conversationId, no media) is answered `opened` with no media.
* binary      -> interleaved PCMU audio, queued for the call; `external` is
                 the CUSTOMER, `internal` the AGENT. Once the server has ended
                 the call, `disconnect` reason `completed` (or `error`).
* `ping`      -> `pong` at once (handled before any audio work).
* `paused`    -> the stream is paused (hold); `resumed` -> its
                 `discarded` duration becomes silence, so later words keep their time.
* `discarded` -> the audio the client dropped becomes silence of that length.
* `update`    -> `updated` (the call's language is fixed at start; logged).
* `dtmf`      -> logged as "a digit was pressed" (never the digit).
* `error`     -> logged with its code and message.
* `close`     -> the audio is flushed and closed, then `closed`; the gateway
                 waits for the server's `call_ended` (the last finals).
* anything malformed (not JSON, a missing field, a wrong seq/serverseq/id,
  an unknown type, audio before `opened`, a frame that is not whole stereo
  samples, no acceptable media) -> `disconnect` {reason: "error", info}.
  After a disconnect only `close` is answered (`closed`, whatever its seq:
  the client may not know which message was refused); if the client has not
  closed the socket within `DISCONNECT_GRACE_S` of `closed` or `disconnect`,
  the server closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web
from callpilot.gateway.connectors import signature
from callpilot.gateway.connectors.bridge import BridgeError, ClientPool, ConnectorLog, Sessions, StreamBridge
from callpilot.gateway.connectors.settings import ConnectorSettings
from callpilot.v1 import call_pb2, common_pb2

log = logging.getLogger("callpilot.gateway.connectors.audiohook")

MAX_TEXT = 65535
MAX_BINARY = 64 * 1024
DISCONNECT_GRACE_S = 10.0
MAX_SILENCE_S = 600.0
"""Longest gap filled with silence at once (a bigger `discarded` is capped, not trusted)."""
NULL_UUID = "00000000-0000-0000-0000-000000000000"
ROLE = {"external": common_pb2.SPEAKER_ROLE_CUSTOMER, "internal": common_pb2.SPEAKER_ROLE_AGENT}
CLIENT_TYPES = {"open", "close", "ping", "paused", "resumed", "discarded", "update", "dtmf", "error"}
DURATION_RE = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_duration(value: object) -> float:
    """ISO-8601 durations as AudioHook uses them ("PT1.25S", "PT2M3S"); seconds."""
    match = DURATION_RE.match(value) if isinstance(value, str) else None
    if not match or value == "PT":
        raise ValueError(f"{value!r} is not an ISO-8601 duration like PT1.5S")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


class ClientError(Exception):
    """The client broke the protocol; the session answers `disconnect` reason `error`."""


def choose_media(offers: object) -> dict[str, Any] | None:
    """The offer to accept: PCMU 8 kHz, stereo external+internal first, else one known channel."""
    if not isinstance(offers, list):
        raise ClientError("open: 'media' must be a list")
    usable = [
        o
        for o in offers
        if isinstance(o, dict)
        and o.get("type") == "audio"
        and o.get("format") == "PCMU"
        and o.get("rate") == 8000
        and isinstance(o.get("channels"), list)
        and o["channels"]
        and all(c in ROLE for c in o["channels"])
        and len(set(o["channels"])) == len(o["channels"])
    ]
    stereo = [o for o in usable if len(o["channels"]) == 2]
    chosen = stereo or usable
    return chosen[0] if chosen else None


class AudioHookSession:
    """One AudioHook websocket: sequence numbers, state and the call's bridge."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        pool: ClientPool,
        settings: ConnectorSettings,
        api_key: str,
        header_session_id: str = "",
    ) -> None:
        self.ws = ws
        self.pool = pool
        self.settings = settings
        self.api_key = api_key
        self.id = ""
        self.seq = 0
        self.clientseq = 0
        self.state = "connected"  # connected -> active <-> paused -> closed | disconnected
        self.bridge: StreamBridge | None = None
        self.channels = 0
        # Named by the upgrade's Audiohook-Session-Id until the first message gives the id.
        self.log = ConnectorLog(log, f"audiohook session {header_session_id or uuid.uuid4().hex[:8]}")
        self._disconnect_timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[bool] | None = None

    async def send(self, type_: str, parameters: dict[str, Any]) -> None:
        self.seq += 1
        message = {
            "version": "2",
            "id": self.id or NULL_UUID,
            "type": type_,
            "seq": self.seq,
            "clientseq": self.clientseq,
            "parameters": parameters,
        }
        with contextlib.suppress(ConnectionResetError):
            await self.ws.send_str(json.dumps(message, separators=(",", ":")))

    async def disconnect(self, reason: str, info: str) -> None:
        if self.state in ("disconnected", "closed"):
            return
        self.log.warning("disconnect (%s): %s", reason, info)
        self.state = "disconnected"
        await self.send("disconnect", {"reason": reason, "info": info})
        if self.bridge is not None:
            self.bridge.close_audio()
        self._close_later()

    def _close_later(self) -> None:
        """The client closes the socket after `closed`/`disconnect`; one that does not is cut off."""
        if self._disconnect_timer is None:
            self._disconnect_timer = asyncio.get_running_loop().call_later(DISCONNECT_GRACE_S, self._cut_off)

    def _cut_off(self) -> None:
        self.log.warning("the client did not close the socket within %.0fs; closing it", DISCONNECT_GRACE_S)
        self._closing = asyncio.create_task(self.ws.close())

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                arrived = time.monotonic()
                if msg.type == WSMsgType.TEXT:
                    if await self.on_text(msg.data):
                        break
                elif msg.type == WSMsgType.BINARY:
                    await self.on_audio(msg.data, arrived)
        finally:
            if self._disconnect_timer is not None:
                self._disconnect_timer.cancel()
            await self.finish()

    async def on_text(self, text: str) -> bool:
        """Handle one text message; True once `closed` was sent."""
        try:
            return await self._dispatch(text)
        except ClientError as err:
            if self.state != "disconnected":
                await self.disconnect("error", f"Client Error: {err}")
            return False

    async def _dispatch(self, text: str) -> bool:
        if len(text) > MAX_TEXT:
            raise ClientError("text message too large (over 64K)")
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            raise ClientError("text message is not valid JSON") from None
        if not (
            isinstance(message, dict)
            and message.get("version") == "2"
            and isinstance(message.get("id"), str)
            and isinstance(message.get("type"), str)
            and type(message.get("seq")) is int
            and type(message.get("serverseq")) is int
            and isinstance(message.get("position"), str)
            and isinstance(message.get("parameters"), dict)
        ):
            raise ClientError("message is not a well-formed AudioHook v2 client message")
        if message["seq"] != self.clientseq + 1 and self.state != "disconnected":
            raise ClientError(f"invalid seq {message['seq']} (expected {self.clientseq + 1})")
        self.clientseq = message["seq"]
        if message["serverseq"] > self.seq:
            raise ClientError(f"invalid serverseq {message['serverseq']} (last seq sent is {self.seq})")
        if not self.id:
            if not UUID_RE.match(message["id"]):
                raise ClientError("the session id must be a UUID")
            self.id = message["id"]
            self.log = ConnectorLog(log, f"audiohook session {self.id}")
        elif message["id"] != self.id:
            raise ClientError("session identifier mismatch")
        kind, params = message["type"], message["parameters"]
        if kind not in CLIENT_TYPES:
            raise ClientError(f"'{kind[:40]}' is not a supported client message")
        if kind == "close":
            return await self.on_close(params)
        if self.state == "disconnected":
            return False  # after a disconnect only close is answered
        if kind == "ping":
            await self.send("pong", {})
        elif kind == "open":
            await self.on_open(params)
        elif self.state == "connected":
            raise ClientError(f"'{kind}' before 'open'")
        elif kind == "paused":
            self.state = "paused"
            self.log.info("paused at %s", message["position"])
        elif kind == "resumed":
            self.state = "active"
            await self.add_silence(parse_or_error(params.get("discarded", "PT0S"), "resumed.discarded"))
            self.log.info("resumed at %s", message["position"])
        elif kind == "discarded":
            seconds = parse_or_error(params.get("discarded"), "discarded.discarded")
            await self.add_silence(seconds)
            self.log.info("client discarded %.3fs of audio", seconds)
        elif kind == "update":
            self.log.info(
                "update: language %r (the call keeps its starting language)", params.get("language")
            )
            await self.send("updated", {})
        elif kind == "dtmf":
            self.log.info("a DTMF digit was pressed")
        elif kind == "error":
            self.log.warning("client error %s: %s", params.get("code"), str(params.get("message", ""))[:200])
        return False

    async def on_open(self, params: dict[str, Any]) -> None:
        if self.state != "connected":
            raise ClientError("a second 'open'")
        conversation = params.get("conversationId")
        if not isinstance(conversation, str) or not UUID_RE.match(conversation):
            raise ClientError("open: 'conversationId' must be a UUID")
        offers = params.get("media")
        if conversation == NULL_UUID and not offers:  # a connection probe
            self.state = "active"
            await self.send("opened", {"startPaused": False, "media": []})
            return
        media = choose_media(offers)
        if media is None:
            raise ClientError("open: no media offer of PCMU at 8000 Hz; offer PCMU external+internal")
        participant = params.get("participant") if isinstance(params.get("participant"), dict) else {}
        ani = str(participant.get("ani", ""))[:64] if participant else ""
        channels = list(media["channels"])
        audio = call_pb2.AudioConfig(
            encoding=common_pb2.AUDIO_ENCODING_MULAW, sample_rate_hertz=8000, channel_count=len(channels)
        )
        if len(channels) == 2:
            audio.channel_roles.extend(ROLE[c] for c in channels)
        else:
            audio.mono_role = ROLE[channels[0]]
        config = call_pb2.CallConfig(
            audio=audio,
            labels={
                "connector": "audiohook",
                "genesys_conversation_id": conversation,
                "genesys_organization_id": str(params.get("organizationId", ""))[:64],
                "audiohook_session_id": self.id,
            },
        )
        language = params.get("language")
        if isinstance(language, str) and re.match(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", language):
            config.language_code = language
        if ani.startswith("tel:"):
            ani = ani[4:]
        if ani:
            config.customer_hint.phone = ani
        self.bridge = StreamBridge(self.pool, self.api_key, config, self.log)
        try:
            await self.bridge.start(self.settings.start_timeout_s)
        except BridgeError as err:
            await self.disconnect("unauthorized" if err.unauthorized else "error", str(err))
            return
        self.channels = len(channels)
        self.state = "active"
        self.log.info(
            "opened: call %s for conversation %s, channels %s", self.bridge.call_id, conversation, channels
        )
        await self.send("opened", {"startPaused": False, "media": [media]})

    async def add_silence(self, seconds: float) -> None:
        """Audio the client did not send (discarded, paused) becomes silence, in order with the rest."""
        if self.bridge is not None and seconds > 0:
            frames = round(min(seconds, MAX_SILENCE_S) * 8000)
            await self.bridge.feed(b"\xff" * (frames * self.channels))

    async def on_audio(self, data: bytes, arrived: float) -> None:
        if self.state == "disconnected":
            return
        if self.bridge is None or self.state not in ("active", "paused"):
            await self.disconnect("error", "Client Error: audio before the session was opened")
            return
        if len(data) > MAX_BINARY or len(data) % self.channels:
            await self.disconnect(
                "error", f"Client Error: an audio frame of {len(data)} bytes is not whole samples"
            )
            return
        if self.bridge.finished:  # the server ended the call (EndCall, shutdown, an error)
            failure = self.bridge.failure
            if failure is None:
                await self.disconnect("completed", f"the call ended on the server ({self.bridge.end_reason})")
            else:
                await self.disconnect("unauthorized" if failure.unauthorized else "error", str(failure))
            return
        await self.bridge.feed(data, (arrived,))

    async def on_close(self, params: dict[str, Any]) -> bool:
        self.log.info("close (%s)", params.get("reason", "?"))
        if self.bridge is not None:
            self.bridge.close_audio()
        self.state = "closed"
        await self.send("closed", {})
        self._close_later()
        return False  # keep reading until the client closes the socket

    async def finish(self) -> None:
        bridge = self.bridge
        if bridge is None or bridge.finished:
            return
        bridge.close_audio()
        if not await bridge.wait_finished(self.settings.finish_timeout_s):
            await bridge.abort()


def parse_or_error(value: object, field: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as err:
        raise ClientError(f"{field}: {err}") from None


async def websocket(
    request: web.Request, settings: ConnectorSettings, pool: ClientPool, sessions: Sessions
) -> web.StreamResponse:
    api_key = request.headers.get("X-API-KEY", "").strip()
    if not api_key:
        log.warning("AudioHook connection refused: no X-API-KEY (from %s)", request.remote)
        return web.Response(status=401, text="X-API-KEY is required\n")
    if "Signature" in request.headers or "Signature-Input" in request.headers:
        if not settings.audiohook_client_secret:
            log.warning(
                "AudioHook connection refused: signed, but CALLPILOT_AUDIOHOOK_CLIENT_SECRET is not set"
            )
            return web.Response(
                status=401, text="signature cannot be verified: no client secret configured\n"
            )
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            signature.verify(headers, request.rel_url.path_qs, request.host, settings.audiohook_client_secret)
        except signature.SignatureError as err:
            log.warning("AudioHook connection refused: %s", err)
            return web.Response(status=401, text=f"bad signature: {err}\n")
    ws = web.WebSocketResponse(max_msg_size=MAX_BINARY + 1024, autoping=True)
    header_id = request.headers.get("Audiohook-Session-Id", "")
    await ws.prepare(request)
    session = AudioHookSession(ws, pool, settings, api_key, header_id if UUID_RE.match(header_id) else "")
    sessions.add(ws)
    try:
        with contextlib.suppress(ConnectionResetError):
            await session.run()
    finally:
        sessions.remove(ws)
    return ws
