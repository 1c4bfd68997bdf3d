"""Twilio Media Streams in: `<Start><Stream track="both_tracks">` bridged into one StreamCall.

    POST /connectors/twilio/twiml[?dial=…]         TwiML that starts the stream (Twilio voice webhook;
                                                   the key as basic-auth password, or ?key=)
    GET  /connectors/twilio                        the Media Streams websocket

Twilio sends JSON text frames: `connected`, `start` (streamSid, callSid,
tracks, mediaFormat, customParameters), `media` (track, chunk, timestamp in
ms since the stream began, base64 μ-law 8 kHz), `dtmf`, `mark`, `stop`. The
inbound track is the caller (CUSTOMER, channel 0), the outbound track what
the caller hears, i.e. the agent (AGENT, channel 1); `alignment.py` places
each packet by its timestamp, so lost packets are silence, not a shift.

Trust: every request must carry `X-Twilio-Signature`, the base64 HMAC-SHA1 of
the URL Twilio requested (plus the sorted form parameters of a POST) keyed
with the account's auth token, checked with the `twilio` library's
validator; a bad or missing one gets 403 before any websocket exists. The
stream's `customParameters` must carry a Callpilot credential (`callpilot_key`
or `callpilot_token`), passed to the server as the SDK's api_key; `caller`
(the caller's phone) becomes the customer hint.

Malformed input (Twilio documents no error replies, so the policy is ours,
and each case writes one log line naming the stream):

* not JSON, or no `event`                    -> close 1007 (invalid frame payload)
* `media`/`dtmf`/`mark` before `start`, a second `start`,
  a `start` without credential                -> close 1008 (policy violation)
* a `start` whose mediaFormat is not audio/x-mulaw 8000 Hz mono -> close 1003
* undecodable base64, an unknown track, a bad timestamp -> that frame is dropped
  (its time becomes silence) and the stream goes on
* an out-of-order chunk                      -> placed at its timestamp (see alignment.py)
* `stop` without `start`                     -> close 1000, no call
* media after the server ended the call      -> close 1000
* an unknown event                           -> ignored (forward compatible)

The call ends when `stop` arrives or the socket closes: the audio is flushed
and the gateway waits for the server's `call_ended` before letting go.
DTMF digits are logged as "a digit was pressed", never their value (they may be
card numbers or PINs).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import time
import uuid
from typing import Any
from xml.sax.saxutils import quoteattr

from aiohttp import WSCloseCode, WSMsgType, web
from callpilot.gateway.connectors.alignment import StereoAligner
from callpilot.gateway.connectors.bridge import BridgeError, ClientPool, ConnectorLog, Sessions, StreamBridge
from callpilot.gateway.connectors.settings import ConnectorSettings
from callpilot.v1 import call_pb2, common_pb2
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

log = logging.getLogger("callpilot.gateway.connectors.twilio")

SAMPLES_PER_MS = 8
TRACK_CHANNEL = {"inbound": 0, "outbound": 1}
MAX_MESSAGE = 64 * 1024
MAX_PARAM = 256
CREDENTIAL_PARAMS = ("callpilot_key", "callpilot_token")


def public_url(request: web.Request, settings: ConnectorSettings, *, websocket: bool) -> str:
    """The URL Twilio requested, as it signed it (see ConnectorSettings.public_url)."""
    if settings.public_url:
        base = settings.public_url
    else:
        proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        base = f"{proto}://{request.host}"
    if websocket:
        base = "wss://" + base[len("https://") :] if base.startswith("https://") else "ws://" + base[7:]
    return base + request.rel_url.path_qs


def signature_ok(
    request: web.Request, settings: ConnectorSettings, params: dict[str, str], *, websocket: bool
) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not settings.twilio_auth_token:
        return False
    url = public_url(request, settings, websocket=websocket)
    return bool(RequestValidator(settings.twilio_auth_token).validate(url, params, signature))


def _refuse_unsigned(request: web.Request, settings: ConnectorSettings, what: str) -> web.Response:
    if not settings.twilio_auth_token:
        log.warning("%s refused: CALLPILOT_TWILIO_AUTH_TOKEN is not set", what)
        return web.Response(
            status=503, text="the Twilio connector is off: set CALLPILOT_TWILIO_AUTH_TOKEN on the gateway\n"
        )
    why = "missing" if "X-Twilio-Signature" not in request.headers else "invalid"
    log.warning("%s refused: %s X-Twilio-Signature (from %s)", what, why, request.remote)
    return web.Response(status=403, text=f"{why} X-Twilio-Signature\n")


async def twiml(request: web.Request, settings: ConnectorSettings) -> web.Response:
    """The voice webhook: answer the call with TwiML that streams both tracks to this gateway.

    The webhook URL configured on the Twilio number carries the credential
    (`?key=`) and optionally where to connect the caller (`&dial=` a number or
    SIP URI); Twilio signs that URL with its query, so neither can be altered.
    """
    form = await request.post()
    params = {k: str(v) for k, v in form.items()}
    if not signature_ok(request, settings, params, websocket=False):
        return _refuse_unsigned(request, settings, "TwiML request")
    key = basic_auth_password(request) or request.query.get("key", "")
    if not key:
        log.warning("TwiML request refused: the webhook URL carries no credential")
        return web.Response(
            status=400,
            text="put a Callpilot API key in the webhook URL: https://twilio:<key>@host/… or ?key=<key>\n",
        )
    stream_url = public_url(request, settings, websocket=True).split("/connectors/")[0] + "/connectors/twilio"
    parts = [
        "<Start>",
        f'<Stream url={quoteattr(stream_url)} track="both_tracks">',
        f'<Parameter name="callpilot_key" value={quoteattr(key)}/>',
        f'<Parameter name="caller" value={quoteattr(params.get("From", ""))}/>',
        "</Stream>",
        "</Start>",
    ]
    dial = request.query.get("dial", "")
    if dial:
        target = f"<Sip>{_xml(dial)}</Sip>" if dial.startswith("sip:") else f"<Number>{_xml(dial)}</Number>"
        parts.append(f"<Dial>{target}</Dial>")
    else:
        parts.append('<Pause length="3600"/>')
    body = '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(parts) + "</Response>"
    log.info("TwiML for call %s: stream to %s", params.get("CallSid", "?"), stream_url)
    return web.Response(text=body, content_type="application/xml")


def basic_auth_password(request: web.Request) -> str:
    """The password of HTTP basic auth (Twilio sends the webhook URL's `user:password@` this way).

    Preferred over `?key=`: a header stays out of access logs, a query string does not.
    """
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return ""
    try:
        _user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return password


def _xml(text: str) -> str:
    return quoteattr(text)[1:-1]


class ProtocolViolation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class TwilioStream:
    """One Media Streams websocket: its state machine, aligner and StreamCall."""

    def __init__(self, ws: web.WebSocketResponse, pool: ClientPool, settings: ConnectorSettings) -> None:
        self.ws = ws
        self.pool = pool
        self.settings = settings
        self.log = ConnectorLog(log, f"twilio stream {uuid.uuid4().hex[:8]}")
        self.bridge: StreamBridge | None = None
        self.aligner = StereoAligner()
        self.arrivals: list[float] = []
        self.dropped = 0
        self.last_chunk = {0: 0, 1: 0}

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.TEXT:
                    raise ProtocolViolation(
                        WSCloseCode.UNSUPPORTED_DATA, "Media Streams sends JSON text frames"
                    )
                if await self.handle(msg.data, time.monotonic()):
                    break
        except ProtocolViolation as violation:
            self.log.warning("closing: %s", violation.reason)
            await self.ws.close(code=violation.code, message=violation.reason.encode()[:120])
        finally:
            await self.finish()

    async def handle(self, text: str, arrived: float) -> bool:
        """Handle one message; True when the stream is over."""
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            raise ProtocolViolation(WSCloseCode.INVALID_TEXT, "a message is not JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("event"), str):
            raise ProtocolViolation(WSCloseCode.INVALID_TEXT, "a message has no 'event'")
        event = message["event"]
        if event == "connected":
            return False
        if event == "start":
            await self.on_start(message)
            return False
        if event == "stop":
            if self.bridge is None:
                self.log.warning("'stop' without 'start'; no call was made")
                await self.ws.close(code=WSCloseCode.OK, message=b"stop without start")
            else:
                self.log.info("stop: ending call %s", self.bridge.call_id)
                await self.ws.close()
            return True
        if event in ("media", "dtmf", "mark") and self.bridge is None:
            raise ProtocolViolation(WSCloseCode.POLICY_VIOLATION, f"'{event}' before 'start'")
        if event == "media":
            await self.on_media(message, arrived)
        elif event == "dtmf":
            self.log.info("a DTMF digit was pressed")
        elif event != "mark":
            self.log.info("ignoring unknown event %r", event[:40])
        return False

    async def on_start(self, message: dict[str, Any]) -> None:
        if self.bridge is not None:
            raise ProtocolViolation(WSCloseCode.POLICY_VIOLATION, "a second 'start'")
        start = message.get("start")
        if not isinstance(start, dict):
            raise ProtocolViolation(WSCloseCode.POLICY_VIOLATION, "'start' has no start object")
        fmt = start.get("mediaFormat") or {}
        if not isinstance(fmt, dict) or (
            fmt.get("encoding"),
            fmt.get("sampleRate"),
            fmt.get("channels", 1),
        ) not in (
            ("audio/x-mulaw", 8000, 1),
            ("audio/x-mulaw", "8000", "1"),
        ):
            raise ProtocolViolation(
                WSCloseCode.UNSUPPORTED_DATA, f"unsupported mediaFormat {json.dumps(fmt)[:80]}"
            )
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            params = {}
        credential = next((str(params[p]) for p in CREDENTIAL_PARAMS if params.get(p)), "")
        if not credential:
            raise ProtocolViolation(
                WSCloseCode.POLICY_VIOLATION, "no callpilot_key or callpilot_token in customParameters"
            )
        tracks = start.get("tracks") or ["inbound"]
        for track, channel in TRACK_CHANNEL.items():
            self.aligner.set_absent(channel, track not in tracks)
        call_sid = str(start.get("callSid", ""))[:MAX_PARAM]
        stream_sid = str(start.get("streamSid") or message.get("streamSid", ""))[:MAX_PARAM]
        self.log = ConnectorLog(log, f"twilio stream {stream_sid or '?'}")
        config = call_pb2.CallConfig(
            audio=call_pb2.AudioConfig(
                encoding=common_pb2.AUDIO_ENCODING_MULAW,
                sample_rate_hertz=8000,
                channel_count=2,
                channel_roles=[common_pb2.SPEAKER_ROLE_CUSTOMER, common_pb2.SPEAKER_ROLE_AGENT],
            ),
            labels={"connector": "twilio", "twilio_call_sid": call_sid, "twilio_stream_sid": stream_sid},
        )
        caller = str(params.get("caller", ""))[:MAX_PARAM]
        if caller:
            config.customer_hint.phone = caller
        self.bridge = StreamBridge(self.pool, credential, config, self.log)
        try:
            await self.bridge.start(self.settings.start_timeout_s)
        except BridgeError as err:
            raise ProtocolViolation(
                WSCloseCode.POLICY_VIOLATION if err.unauthorized else WSCloseCode.TRY_AGAIN_LATER, str(err)
            ) from None
        self.log.info("start: call %s for Twilio call %s, tracks %s", self.bridge.call_id, call_sid, tracks)

    async def on_media(self, message: dict[str, Any], arrived: float) -> None:
        assert self.bridge is not None
        if self.bridge.finished:  # the server ended the call (EndCall, shutdown, an error)
            raise ProtocolViolation(
                WSCloseCode.OK, f"the call ended on the server ({self.bridge.end_reason})"
            )
        media = message.get("media")
        try:
            if not isinstance(media, dict):
                raise ValueError("no media object")
            channel = TRACK_CHANNEL[media.get("track", "inbound")]
            timestamp = int(media["timestamp"])
            if timestamp < 0:
                raise ValueError("negative timestamp")
            samples = base64.b64decode(media["payload"], validate=True)
        except (KeyError, ValueError, TypeError, binascii.Error) as exc:
            self.dropped += 1
            if self.dropped <= 10 or self.dropped % 1000 == 0:
                self.log.warning("dropped a malformed media frame (%d so far): %s", self.dropped, exc)
            return
        chunk = int(media["chunk"]) if str(media.get("chunk", "")).isdigit() else 0
        if chunk and chunk <= self.last_chunk[channel]:
            self.log.info(
                "chunk %d of track %d arrived after chunk %d", chunk, channel, self.last_chunk[channel]
            )
        self.last_chunk[channel] = max(self.last_chunk[channel], chunk)
        self.aligner.push(channel, timestamp * SAMPLES_PER_MS, samples)
        self.arrivals.append(arrived)
        out = self.aligner.pop()
        if out:
            arrivals, self.arrivals = tuple(self.arrivals), []
            await self.bridge.feed(out, arrivals)

    async def finish(self) -> None:
        bridge = self.bridge
        if bridge is None:
            return
        if not bridge.finished:
            await bridge.feed(self.aligner.flush(), tuple(self.arrivals))
            self.arrivals = []
            bridge.close_audio()
            if not await bridge.wait_finished(self.settings.finish_timeout_s):
                await bridge.abort()
        if self.aligner.late_samples or self.aligner.gap_samples:
            self.log.info(
                "alignment: %d ms of gaps filled with silence, %d ms of late audio dropped",
                self.aligner.gap_samples // SAMPLES_PER_MS,
                self.aligner.late_samples // SAMPLES_PER_MS,
            )


async def websocket(
    request: web.Request, settings: ConnectorSettings, pool: ClientPool, sessions: Sessions
) -> web.StreamResponse:
    if not signature_ok(request, settings, {}, websocket=True):
        return _refuse_unsigned(request, settings, "Media Streams websocket")
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=30.0)
    await ws.prepare(request)
    stream = TwilioStream(ws, pool, settings)
    sessions.add(ws)
    try:
        with contextlib.suppress(ConnectionResetError):
            await stream.run()
    finally:
        sessions.remove(ws)
    return ws
