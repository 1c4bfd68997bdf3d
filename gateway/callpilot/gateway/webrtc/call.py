"""A browser call: up to one customer leg and one agent leg feeding ONE StreamCall.

How both legs reach one call: a StreamCall has one configuration and the
server refuses a second stream for a call that is already streaming, so the
gateway opens exactly one StreamCall per call, when the first leg joins,
with LINEAR16 16 kHz stereo audio and `channel_roles = [CUSTOMER, AGENT]`.
Each leg's audio is converted to 16 kHz mono and the `StereoMixer`
interleaves the two (silence for a leg that is not there), so the server
transcribes each party on its own channel, with its role, in one event log.

Lifecycle:

    waiting --first leg joins--> live --last leg ends--> ending --call_ended--> ended

* A call is *waiting* from `POST /api/calls/start` until a leg's offer is
  answered; one that nobody joins within `START_TIMEOUT_S` is ended with
  `EndCall`.
* While *live*, either party may leave and come back (a reloaded page); the
  other party keeps talking and being transcribed.
* When no leg is left, the mixer flushes and closes the audio, the SDK
  closes the request stream, and the server ends the call *after*
  transcribing and storing the finals of everything it was sent; the
  gateway waits for `call_ended` on the stream, so nothing is cut short.
* If the server ends the call first (EndCall, shutdown) or the stream
  fails, every leg is ended with `call-ended` / `server-error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import av
import grpc
from aiortc import RTCIceServer
from callpilot.client import AsyncCallpilot, CallpilotError, CallStream, IteratorAudio
from callpilot.gateway.webrtc.audio import AGENT, CHANNEL_ORDER, CUSTOMER, StereoMixer
from callpilot.gateway.webrtc.errors import ApiError
from callpilot.gateway.webrtc.leg import Leg
from callpilot.gateway.webrtc.logctx import CallLog
from callpilot.gateway.webrtc.validation import Candidate
from callpilot.v1 import call_pb2, common_pb2

START_TIMEOUT_S = 300.0
"""A started call that no leg joins within this is ended (the page went away before calling)."""

STREAM_START_TIMEOUT_S = 15.0
"""How long an offer waits for the server to accept the call's StreamCall."""

MAX_PENDING_CANDIDATES = 64
"""Trickled candidates kept per role until that role's offer arrives; more are refused."""

SUBSCRIBER_QUEUE = 64
"""Messages queued per websocket; a page that does not read 64 messages is disconnected."""

_CLOSING: set[asyncio.Task[None]] = set()
"""Per-call clients being closed (strong references until done)."""

ROLE_PB = {CUSTOMER: common_pb2.SPEAKER_ROLE_CUSTOMER, AGENT: common_pb2.SPEAKER_ROLE_AGENT}


def api_error_from(err: CallpilotError) -> ApiError:
    """Map a server error to what the page is told."""
    code = err.code
    if code == grpc.StatusCode.UNAUTHENTICATED:
        # A join token refused by the server: JOIN_TOKEN_EXPIRED, JOIN_TOKEN_USED, INVALID_JOIN_TOKEN...
        return ApiError(401, err.reason or "UNAUTHENTICATED", err.message)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return ApiError(403, err.reason or "PERMISSION_DENIED", err.message)
    if code == grpc.StatusCode.NOT_FOUND:
        return ApiError(404, "CALL_NOT_FOUND", err.message)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return ApiError(409, err.reason or "CALL_ENDED", err.message)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ApiError(400, err.reason or "INVALID_ARGUMENT", err.message)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ApiError(503, "SERVER_BUSY", err.message)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ApiError(503, "SERVER_UNAVAILABLE", f"the Callpilot server cannot be reached: {err.message}")
    return ApiError(502, "SERVER_ERROR", f"the Callpilot server failed: {err.message}")


class Subscriber:
    """A websocket of one page (one role) on one call: a bounded outbox."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.overflowed = False

    def send(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.outbox.get_nowait()
            self.outbox.put_nowait(None)  # tells the websocket handler to close


class BridgedCall:
    """One call's legs, mixer, StreamCall and page subscribers."""

    def __init__(
        self,
        call_id: str,
        customer_id: str,
        *,
        client: AsyncCallpilot,
        ice_servers: Callable[[], list[RTCIceServer]],
        silence_timeout_s: float,
        on_finished: Callable[[BridgedCall], None],
        owns_client: bool = False,
        client_addr: str = "",
        tenant_id: str = "",
    ) -> None:
        self.call_id = call_id
        self.customer_id = customer_id
        self.client_addr = client_addr
        self.tenant_id = tenant_id
        # The customer page's secret for its own leg (checked with auth on; see access.py).
        self.customer_token = secrets.token_urlsafe(24)
        self._owns_client = owns_client
        self.stream_error: CallpilotError | None = None  # what ended the StreamCall, if it failed
        self.state = "waiting"
        self.end_reason = ""
        self.created = time.time()
        self.legs: dict[str, Leg | None] = {CUSTOMER: None, AGENT: None}
        self.subscribers: set[Subscriber] = set()
        self.finished = asyncio.Event()
        self._client = client
        self._ice_servers = ice_servers
        self._silence_timeout_s = silence_timeout_s
        self._on_finished = on_finished
        self._mixer = StereoMixer()
        self._pending: dict[str, list[Candidate]] = {CUSTOMER: [], AGENT: []}
        self._stream: CallStream | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._stream_lock = asyncio.Lock()
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Offers await `_started`; one that gave up must not leave an unretrieved exception behind.
        self._started.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        self._tasks: set[asyncio.Task[None]] = set()
        self._start_timer = asyncio.get_running_loop().call_later(START_TIMEOUT_S, self._expire)
        self._log = CallLog(call_id)

    # -------------------------------------------------------------- snapshot

    def snapshot(self) -> dict[str, Any]:
        legs: dict[str, Any] = {}
        for role in CHANNEL_ORDER:
            leg = self.legs[role]
            legs[role] = None if leg is None else {"state": leg.state, "reason": leg.end_reason}
        return {
            "call_id": self.call_id,
            "customer_id": self.customer_id,
            "state": self.state,
            "end_reason": self.end_reason,
            "legs": legs,
        }

    def waiting_for_agent(self) -> bool:
        customer, agent = self.legs[CUSTOMER], self.legs[AGENT]
        return (
            self.state == "live"
            and customer is not None
            and not customer.ended
            and (agent is None or agent.ended)
        )

    def _broadcast_state(self) -> None:
        message = {"type": "state", "call": self.snapshot()}
        for sub in list(self.subscribers):
            sub.send(message)

    # ---------------------------------------------------------- subscribers

    def subscribe(self, role: str) -> Subscriber:
        sub = Subscriber(role)
        self.subscribers.add(sub)
        sub.send({"type": "state", "call": self.snapshot()})
        leg = self.legs[role]
        if leg is not None and not leg.ended:
            self._send_candidates(leg, [sub])
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _send_candidates(self, leg: Leg, subs: list[Subscriber]) -> None:
        for sub in subs:
            for candidate in leg.local_candidates:
                sub.send({"type": "candidate", **candidate})
            sub.send({"type": "end-of-candidates"})

    async def add_remote_candidate(self, role: str, candidate: Candidate) -> None:
        leg = self.legs[role]
        if leg is not None and not leg.ended and leg.state != "new":
            await leg.add_candidate(candidate)
            return
        pending = self._pending[role]
        if len(pending) >= MAX_PENDING_CANDIDATES:
            raise ApiError(
                429, "TOO_MANY_CANDIDATES", f"more than {MAX_PENDING_CANDIDATES} candidates before the offer"
            )
        pending.append(candidate)

    # ------------------------------------------------------------------ join

    async def join(self, role: str, offer_sdp: str) -> str:
        """Answer a leg's offer; raises ApiError (409 role taken / call ended, 400 bad SDP, 5xx server)."""
        self._check_open()
        previous = self.legs[role]
        if previous is not None and not previous.ended:
            who = "a customer" if role == CUSTOMER else "an agent"
            raise ApiError(
                409, "ROLE_TAKEN", f"this call already has {who} connected; hang up that {role} first"
            )
        leg = Leg(
            self.call_id,
            role,
            ice_servers=self._ice_servers(),
            silence_timeout_s=self._silence_timeout_s,
            on_audio=self._on_leg_audio,
            on_state=self._on_leg_state,
        )
        self.legs[role] = leg  # reserve the slot across the awaits below
        try:
            answer = await leg.negotiate(offer_sdp)
            await self._ensure_stream()
            self._check_open()
        except BaseException:
            if self.legs[role] is leg:
                self.legs[role] = previous
            await leg.discard()
            self._close_if_empty()  # the other party may have left while this offer was pending
            raise
        self._start_timer.cancel()
        self.state = "live"
        leg.start()
        pending, self._pending[role] = self._pending[role], []
        for candidate in pending:
            with contextlib.suppress(ApiError):
                await leg.add_candidate(candidate)
        self._log.info("%s leg joined", role)
        self._broadcast_state()
        self._send_candidates(leg, [s for s in self.subscribers if s.role == role])
        return answer

    def _check_open(self) -> None:
        if self.state in ("ending", "ended"):
            raise ApiError(409, "CALL_ENDED", f"call {self.call_id} has ended; start a new call")

    async def open(self) -> None:
        """Open the call's StreamCall now, before any leg joins (a join-token call).

        The server checks and consumes the token on this stream, so a refused
        token is reported to `POST /api/calls/start` (raises ApiError); the
        call's id and tenant come from `call_started`.
        """
        try:
            await self._ensure_stream()
        except BaseException:
            self._start_timer.cancel()
            if self._stream_task is not None and not self._stream_task.done():
                self._stream_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._stream_task
            await self._finish("server-error")
            raise

    async def _ensure_stream(self) -> None:
        async with self._stream_lock:
            if self._stream_task is None:
                audio_config = call_pb2.AudioConfig(
                    encoding=common_pb2.AUDIO_ENCODING_LINEAR16,
                    sample_rate_hertz=16_000,
                    channel_count=2,
                    channel_roles=[ROLE_PB[role] for role in CHANNEL_ORDER],
                )
                self._stream = self._client.stream_call(
                    IteratorAudio(self._mixer.chunks(), audio_config),
                    call_pb2.CallConfig(call_id=self.call_id),
                    end_when_audio_ends=True,
                )
                self._stream_task = asyncio.create_task(self._consume(self._stream))
        try:
            await asyncio.wait_for(asyncio.shield(self._started), STREAM_START_TIMEOUT_S)
        except TimeoutError:
            raise ApiError(
                503, "SERVER_UNAVAILABLE", "the Callpilot server did not start the call in time"
            ) from None

    async def _consume(self, stream: CallStream) -> None:
        """Read the call's events until `call_ended`: the stream only ends after the finals are stored."""
        reason = "call-ended"
        try:
            async for event in stream:
                if event.HasField("call_started") and not self._started.done():
                    started = event.call_started.call
                    self.call_id = started.call_id or self.call_id
                    self.tenant_id = started.tenant_id or self.tenant_id
                    self._log = CallLog(self.call_id)
                    self._started.set_result(None)
                elif event.HasField("call_ended"):
                    self.end_reason = call_pb2.CallEndReason.Name(event.call_ended.reason)
        except CallpilotError as err:
            self.stream_error = err
            reason = "server-error"
            self.end_reason = self.end_reason or f"{err.code.name}: {err.message}"
            self._log.warning("StreamCall failed: %s", err)
            if not self._started.done():
                self._started.set_exception(api_error_from(err))
        except asyncio.CancelledError:
            reason = "gateway-shutdown"
            raise
        except Exception as exc:
            reason = "server-error"
            self._log.exception("StreamCall failed")
            if not self._started.done():
                self._started.set_exception(ApiError(502, "SERVER_ERROR", f"the call stream failed: {exc}"))
        finally:
            if not self._started.done():
                self._started.set_exception(ApiError(409, "CALL_ENDED", "the call ended before it started"))
            await self._finish(reason)

    # ----------------------------------------------------------------- media

    def _on_leg_audio(self, role: str, pcm: bytes, frame: av.AudioFrame | None) -> None:
        self._mixer.push(role, pcm)
        if frame is None:
            return
        other = self.legs[AGENT if role == CUSTOMER else CUSTOMER]
        if other is not None and other.state == "connected":
            other.outbound.feed(frame)

    def _on_leg_state(self, leg: Leg) -> None:
        if leg.state == "ended":
            self._mixer.leg_ended(leg.role)
            self._close_if_empty()
        self._broadcast_state()

    def _close_if_empty(self) -> None:
        if self.state == "live" and all(other is None or other.ended for other in self.legs.values()):
            self._close_audio()

    def _close_audio(self) -> None:
        """No party is left: flush the audio and let the server end the call."""
        if self.state == "live":
            self.state = "ending"
            self._log.info("both legs ended; closing the call's audio")
        self._mixer.close()

    # ------------------------------------------------------------------- end

    def hang_up(self, role: str, reason: str = "hangup") -> bool:
        leg = self.legs[role]
        if leg is None or leg.ended:
            return False
        leg.hang_up(reason)
        return True

    async def end(self, reason: str) -> None:
        """End every leg and the call; returns once the server has ended it (bounded by the caller)."""
        if self.state == "waiting" and self._stream_task is None:
            self._start_timer.cancel()
            self.state = "ending"
            with contextlib.suppress(CallpilotError):
                await self._client.end_call(self.call_id, f"browser call ended: {reason}")
            await self._finish(reason)
            return
        tasks = [leg.hang_up(reason) for leg in self.legs.values() if leg is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.state == "waiting":  # streaming already (a join-token call), nobody joined
            self.state = "ending"
        self._close_audio()
        await self.finished.wait()

    def _expire(self) -> None:
        if self.state == "waiting":
            self._log.info("nobody joined within %.0fs; ending the call", START_TIMEOUT_S)
            task = asyncio.create_task(self.end("no-answer"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish(self, reason: str) -> None:
        if self.finished.is_set():
            return
        self._start_timer.cancel()
        self.state = "ended"
        self.end_reason = self.end_reason or reason
        self._mixer.close()
        legs = [leg.hang_up(reason) for leg in self.legs.values() if leg is not None]
        if legs:
            await asyncio.gather(*legs, return_exceptions=True)
        self._broadcast_state()
        for sub in list(self.subscribers):
            sub.send({"type": "ended", "call": self.snapshot()})
        self.finished.set()
        self._on_finished(self)
        if self._owns_client:
            # Closed from a task of its own, not from inside the task that read the channel's call.
            closing = asyncio.create_task(self._client.close())
            _CLOSING.add(closing)
            closing.add_done_callback(_CLOSING.discard)
        self._log.info("call finished (%s)", self.end_reason)
